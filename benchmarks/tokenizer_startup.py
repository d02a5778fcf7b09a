"""The families' tokenizers: ours (`tokenizers` alone) beside transformers'.

    python benchmarks/tokenizer_startup.py [--prompts 1000] [--rounds 3]

Each measurement runs in a fresh interpreter (what a command pays): import
and build the tokenizer, then tokenize --prompts prompts ("a photo of a
<class>.") once. Ours is `models.tokenize.clip_bpe` / `bert_wordpiece`;
the reference is `transformers.CLIPTokenizer` / `BertTokenizer` built from
the same vendored vocabulary (the construction tests/models/
test_models_tokenize.py checks the ids against). Prints a markdown table of
median seconds over --rounds interleaved rounds. (Not named tokenize.py:
benchmarks/ is on the path of the scripts run from it, and a tokenize.py
there would stand in for the standard library's.)
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

# Runs in the fresh interpreter: {'build': s, 'tokenize': s}.
_CODE = r"""
import json, sys, time
start = time.perf_counter()
import numpy as np
from rationality_jax import resources
family, impl, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
length = {"clip": 77, "albef": 30}[family]
if impl == "ours":
  from rationality_jax.models import tokenize
  tok = (tokenize.clip_bpe("clip", 77) if family == "clip"
         else tokenize.bert_wordpiece("albef", 30))
  call = tok
else:
  import gzip
  import transformers
  from rationality_jax.models import tokenize
  if family == "clip":
    with gzip.open(resources.third_party("clip_bpe", "bpe_simple_vocab_16e6.txt.gz")) as f:
      lines = f.read().decode("utf-8").split("\n")
    merges = [tuple(l.split()) for l in lines[1 : 49152 - 256 - 2 + 1]]
    symbols = list(tokenize._bytes_to_unicode().values())
    vocab = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    backend = transformers.CLIPTokenizer(
      vocab={t: i for i, t in enumerate(vocab)}, merges=merges)
  else:
    backend = transformers.BertTokenizer(
      vocab=str(resources.third_party("bert_vocab", "vocab.txt")), do_lower_case=True)
  def call(texts):
    return backend(texts, truncation=True, max_length=length)["input_ids"]
built = time.perf_counter()
call([f"a photo of a class number {i}." for i in range(n)])
done = time.perf_counter()
print(json.dumps({"build": built - start, "tokenize": done - built}))
"""


def _measure(family: str, impl: str, prompts: int) -> dict:
  out = subprocess.run(
    [sys.executable, "-c", _CODE, family, impl, str(prompts)],
    capture_output=True,
    text=True,
    check=True,
  )
  return json.loads(out.stdout.strip().splitlines()[-1])


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--prompts", type=int, default=1000)
  parser.add_argument("--rounds", type=int, default=3)
  args = parser.parse_args()
  cases = [(f, i) for f in ("clip", "albef") for i in ("ours", "transformers")]
  times = {case: [] for case in cases}
  for _ in range(args.rounds):
    for case in cases:
      times[case].append(_measure(*case, args.prompts))
  print(
    f"| tokenizer | import + build s, ours | transformers | "
    f"{args.prompts} prompts s, ours | transformers |"
  )
  print("|---|---|---|---|---|")
  for family in ("clip", "albef"):
    cells = []
    for key in ("build", "tokenize"):
      for impl in ("ours", "transformers"):
        cells.append(statistics.median(t[key] for t in times[(family, impl)]))
    print(
      f"| {family} | {cells[0]:.2f} | {cells[1]:.2f} | {cells[2]:.3f} | "
      f"{cells[3]:.3f} |"
    )


if __name__ == "__main__":
  main()
