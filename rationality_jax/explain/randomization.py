"""Model-parameter randomisation (Adebayo et al., "Sanity Checks for Saliency
Maps", NeurIPS 2018): parameter trees with the image tower's blocks
re-initialised, from the top down.

Cascading (the paper's main test): step 1 re-initialises the last block
(``block_{L-1}``), step 2 the last two, ..., step L every block; the
patch embedding, the position embeddings, the final LayerNorm, the
projection and the head stay trained. A heatmap that explains the model
changes as the blocks lose their training; one that does not (an edge
detector) stays the same. Compare each step's maps with the trained model's
(`metrics.spearman`, `metrics.ssim`). ``cascading=False`` gives the paper's
independent variant: step j re-initialises block L - j alone.

Re-initialisation draws every block's parameters from the tower's own
initialisers (`VisionTransformer.init`: Flax's defaults, LeCun normal
kernels, zero biases, LayerNorm scales 1 and offsets 0), one fresh tower from
`key`, cast to each parameter's stored dtype. The returned trees share every
untouched array with `params` (nothing is copied); `params` is not modified.
Adebayo et al. also start from the logit layer; here the head is not part of
the parameters (`targets`), so a caller who wants that step re-initialises
the head it passes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp

from rationality_jax.explain.explainer import _vision
from rationality_jax.models.vit import VisionTransformer


def _at(tree: Mapping, path: tuple[str, ...]) -> Mapping:
  for key in path:
    if key not in tree:
      raise KeyError(
        f"the parameters have no {'/'.join(path)!r} (missing {key!r}); "
        "pass the module's own params, or vision_path."
      )
    tree = tree[key]
  return tree


def _replace(tree: Mapping, path: tuple[str, ...], blocks: dict) -> dict:
  """A copy of `tree` along `path` whose subtree there has `blocks` set."""
  if not path:
    return {**tree, **blocks}
  return {**tree, path[0]: _replace(tree[path[0]], path[1:], blocks)}


def fresh_blocks(module, key: jax.Array, vision_path=None) -> dict[str, Any]:
  """{'block_<i>': parameters} of a freshly initialised copy of the tower."""
  config, _ = _vision(module, vision_path)
  size = config.image_size
  tower = VisionTransformer(config)
  params = tower.init(key, jnp.zeros((1, size, size, 3)))["params"]
  return {f"block_{i}": params[f"block_{i}"] for i in range(config.depth)}


def cascading_randomization(
  module,
  params: Mapping,
  key: jax.Array,
  *,
  vision_path: tuple[str, ...] | None = None,
  cascading: bool = True,
) -> list[tuple[int, dict]]:
  """The sequence of parameter trees of the randomisation test.

  Args:
    module: a `VisionLanguageModel` (tower at ``params['vision']``), a bare
      `VisionTransformer` (at the root), or any module whose config has
      ``.vision`` (as `make_explainer`).
    params: the trained parameters (``params['vision']['block_<i>']``).
    key: a `jax.random` key; the same key gives the same trees.
    vision_path: where the tower sits in `params` (default as
      `make_explainer`).
    cascading: True (default): step j re-initialises blocks L-1 .. L-j;
      False: block L-j alone.

  Returns:
    [(L - j, params_j) for j = 1 .. L]: the lowest re-initialised block and
    the full parameter tree of step j, in order (the top block first).

  Raises:
    ValueError: a block of `params` whose structure or shapes differ from
      the fresh tower's (the module and the parameters do not match).
  """
  config, path = _vision(module, vision_path)
  tower = _at(params, path)
  fresh = fresh_blocks(module, key, vision_path)
  for name, block in fresh.items():
    trained = _at(tower, (name,))
    shapes = jax.tree.map(jnp.shape, trained)
    if jax.tree.map(jnp.shape, block) != shapes:
      raise ValueError(
        f"{'/'.join((*path, name))} does not match a fresh block of the "
        "module's tower (structure or shapes differ)."
      )
    fresh[name] = jax.tree.map(
      lambda new, old: new.astype(old.dtype), block, trained
    )
  steps = []
  for j in range(1, config.depth + 1):
    lowest = config.depth - j
    chosen = range(lowest, config.depth) if cascading else (lowest,)
    blocks = {f"block_{i}": fresh[f"block_{i}"] for i in chosen}
    steps.append((lowest, _replace(params, path, blocks)))
  return steps
