#!/usr/bin/env bash
# The accelerator table in one command (docs/scale.md, docs/benchmarks.md).
#
#   bash benchmarks/accelerator.sh [--budget SECONDS] [--out DIR] [--wheels DIR]
#                                  [--python PY] [--no-install] [--dry-run]
#                                  [-- more arguments of benchmarks/accelerator.py]
#   bash benchmarks/accelerator.sh --download-wheels DIR [--wheel-python 3.12]
#
# On a machine with a GPU or a TPU: installs what is missing, then measures the
# rows of benchmarks/accelerator.py in order of importance until the budget
# (default 540 s, counted from the start of this script, installing included)
# is spent, writing each row as it is measured to DIR/accelerator.md,
# DIR/accelerator.json and DIR/accelerator.log (DIR: --out, else $OUT when set,
# else ./accelerator_out).
#
# Installing (skipped with --no-install and in the dry run):
#   --wheels DIR  pip install --no-index --no-deps --target from the wheels in
#                 DIR (a machine that cannot reach an index: carry them there);
#                 they go first on PYTHONPATH.
#   then, if jax does not see the accelerator, the matching extra:
#                 pip install -e '.[cuda12]' on a GPU, '.[tpu]' on a TPU (with
#                 --wheels: from DIR only, --no-index);
#   then, without --wheels, whatever setup.cfg asks for that is missing
#                 (pip install -e '.[torch]' when torch is missing too).
# --dry-run: the same driver on the CPU with tiny models and one repetition
# (tests/test_accelerator_dry_run.py), nothing installed.
# --download-wheels DIR (here, where an index is reachable; then exit): the
# wheels of benchmarks/accelerator_wheels.txt for --wheel-python (default
# 3.12, the lent machines') on manylinux x86-64, to carry with --wheels DIR.
set -uo pipefail
start=$(date +%s)
caller=$PWD
repo=$(cd "$(dirname "$0")/.." && pwd) || exit 1

budget=540
out="${OUT:-accelerator_out}"
wheels=""
python="${PYTHON:-python3}"
install=1
dry=""
download=""
wheel_python=3.12
extra_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --budget) budget="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --wheels) wheels="$2"; shift 2 ;;
    --python) python="$2"; shift 2 ;;
    --no-install) install=0; shift ;;
    --dry-run) dry="--dry-run"; install=0; shift ;;
    --download-wheels) download="$2"; shift 2 ;;
    --wheel-python) wheel_python="$2"; shift 2 ;;
    --) shift; extra_args+=("$@"); break ;;
    -h|--help) sed -n '2,31p' "$0"; exit 0 ;;
    *) extra_args+=("$1"); shift ;;
  esac
done
absolute() { case "$1" in /*) echo "$1" ;; *) echo "$caller/$1" ;; esac; }

if [ -n "$download" ]; then
  download=$(absolute "$download")
  mkdir -p "$download"
  platforms=()
  for p in manylinux_2_28 manylinux_2_27 manylinux_2_24 manylinux_2_17 manylinux2014 manylinux1; do
    platforms+=(--platform "${p}_x86_64")
  done
  grep -v -e '^#' -e '^$' -e '^promise==' "$repo/benchmarks/accelerator_wheels.txt" |
    xargs "$python" -m pip download -q --no-deps --only-binary=:all: \
      --python-version "$wheel_python" --implementation cp "${platforms[@]}" \
      -d "$download" || exit 1
  # No wheel on PyPI: built here (pure Python, any platform).
  grep '^promise==' "$repo/benchmarks/accelerator_wheels.txt" |
    xargs "$python" -m pip wheel -q --no-deps -w "$download" || exit 1
  ls -l "$download"
  exit 0
fi

out=$(absolute "$out")
[ -n "$wheels" ] && wheels=$(absolute "$wheels")
cd "$repo" || exit 1
mkdir -p "$out"
log="$out/accelerator.log"
say() { echo "accelerator.sh: $*" | tee -a "$log"; }
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
[ -n "$dry" ] && export JAX_PLATFORMS=cpu

if [ "$install" = 1 ]; then
  hardware=none
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    hardware=gpu; extra=cuda12
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm \
      --format=csv >>"$log" 2>&1
  elif ls /dev/accel* >/dev/null 2>&1 || ls /dev/vfio/[0-9]* >/dev/null 2>&1; then
    hardware=tpu; extra=tpu
  fi
  say "hardware: $hardware; python: $(command -v "$python") ($("$python" --version 2>&1))"
  pip=("$python" -m pip install -q --no-cache-dir --disable-pip-version-check)
  if [ -n "$wheels" ]; then
    site="${TMPDIR:-/tmp}/accelerator_site"
    say "installing $(ls "$wheels"/*.whl 2>/dev/null | wc -l) wheels from $wheels into $site"
    "${pip[@]}" --no-index --no-deps --no-compile --upgrade --target "$site" \
      "$wheels"/*.whl >>"$log" 2>&1 || say "installing the wheels failed (log)"
    export PYTHONPATH="$site:$PYTHONPATH"
  fi
  backend=$("$python" -c 'import jax; print(jax.default_backend())' 2>>"$log" || echo none)
  say "jax backend: $backend"
  if [ "$hardware" != none ] && [ "$backend" != "$hardware" ]; then
    say "jax does not see the $hardware: pip install -e '.[$extra]'"
    if [ -n "$wheels" ]; then
      "${pip[@]}" --no-index --find-links "$wheels" --no-build-isolation \
        -e ".[$extra]" >>"$log" 2>&1 || say "that failed (log)"
    else
      "${pip[@]}" -e ".[$extra]" >>"$log" 2>&1 || say "that failed (log)"
    fi
  fi
  missing=$("$python" benchmarks/accelerator.py --missing 2>>"$log")
  if [ -n "$missing" ]; then
    say "missing: $(echo $missing)"
    if [ -z "$wheels" ]; then
      spec="."
      echo "$missing" | grep -q '^torch' && spec=".[torch]"
      "${pip[@]}" --retries 1 -e "$spec" >>"$log" 2>&1 || say "pip install -e '$spec' failed (log)"
    else
      say "(not among the wheels: the rows that need them fail)"
    fi
  fi
fi

deadline=$((start + ${budget%.*}))
say "measuring until $(date -d "@$deadline" +%H:%M:%S 2>/dev/null || echo "$deadline") ($((deadline - $(date +%s))) s left)"
exec "$python" benchmarks/accelerator.py --budget "$budget" --deadline "$deadline" \
  --out "$out" $dry "${extra_args[@]}"
