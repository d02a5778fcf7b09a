"""Process-level settings that must be made before anything is imported.

XLA on CPU allocates all temporaries of one execution as a single block
(about 3 GB for a ViT-B/16 all-blocks heatmap at batch 16 or an FLCP
training step). glibc serves a block that large from a fresh ``mmap`` and
unmaps it when it is freed, so every execution touches hundreds of
thousands of new pages that the kernel must zero: 15-25% of a step's time
(docs/benchmarks.md). `reuse_host_memory` re-executes the process with glibc
told to serve large blocks from its heap and keep them (``GLIBC_TUNABLES``:
one arena, no mmap, no trimming), so the next execution reuses the same,
already mapped pages. The price: memory is not returned to the system while
the process lives, and allocation-heavy threads share one arena.
"""

from __future__ import annotations

import glob
import os
import sys

HOST_MEMORY_TUNABLES = (
  "glibc.malloc.arena_max=1:glibc.malloc.mmap_max=0:"
  "glibc.malloc.trim_threshold=137438953472"
)
HOST_MEMORY_CHOICES = ("auto", "reuse", "fresh")


def cpu_only() -> bool:
  """Whether jax will compute on the CPU (from JAX_PLATFORMS or the devices).

  Without JAX_PLATFORMS, a machine with NVIDIA or TPU device files is taken
  to compute on them.
  """
  platforms = os.environ.get("JAX_PLATFORMS", "")
  if platforms:
    return {p.strip() for p in platforms.split(",")} <= {"cpu"}
  return not (glob.glob("/dev/nvidia[0-9]*") or glob.glob("/dev/accel[0-9]*"))


def reuse_host_memory(choice: str = "reuse") -> None:
  """Re-executes this process with `HOST_MEMORY_TUNABLES` (Linux/glibc).

  Args:
    choice: 'reuse' always; 'auto' when `cpu_only()` (on an accelerator the
      large temporaries live on the device, and the input pipeline's threads
      keep their own arenas); 'fresh' never.

  Call first thing in a main, before heavy imports; does nothing when
  ``GLIBC_TUNABLES`` is already set (by the re-executed process itself or by
  the caller).
  """
  if choice not in HOST_MEMORY_CHOICES:
    raise ValueError(
      f"host memory {choice!r}; choose one of {HOST_MEMORY_CHOICES}."
    )
  if choice == "fresh" or (choice == "auto" and not cpu_only()):
    return
  if not sys.platform.startswith("linux") or "GLIBC_TUNABLES" in os.environ:
    return
  env = dict(os.environ, GLIBC_TUNABLES=HOST_MEMORY_TUNABLES)
  os.execve(sys.executable, [sys.executable, *sys.argv], env)
