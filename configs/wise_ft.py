r"""WiSE-FT: a finished training run interpolated with its start, per alpha.

    python -m rationality_jax.main \
        --config=configs/wise_ft.py:train_dir=/tmp/train_ft,alphas=0+0.5+1 \
        --workdir=/tmp/wise_ft

Arguments (``key=value`` after the colon, comma-separated):
  train_dir: a finished training workdir (configs/train.py; FT, FLCP, LP,
             CoOp or the adapter): its params and head at the end, and its
             config, which rebuilds the start (same checkpoint or seed, same
             head initialisation).
  alphas:    '+'-joined interpolation weights (default 0+0.25+0.5+0.75+1;
             0 is the start, 1 the fine-tuned model).

Writes ``<workdir>/alpha_<alpha>/`` per alpha, each a run directory like a
finished training run's; the console prints each one with the command that
evaluates it (``configs/evaluate.py:train_dir=<workdir>/alpha_<alpha>``).
Expected: alpha 1 evaluates exactly as the fine-tuned run, alpha 0 as its
starting point (for FT/LP: the zero-shot backbone with the initial head).
"""

import common


def get_config(arg=None):
  args = common.parse(arg, train_dir="", alphas="0+0.25+0.5+0.75+1")
  if not args["train_dir"]:
    raise ValueError("give train_dir=<a finished training workdir>.")
  config = common.run_config(mode="wise_ft")
  config.wise_ft.finetuned_workdir = args["train_dir"]
  config.wise_ft.alphas = tuple(float(a) for a in args["alphas"].split("+"))
  return config
