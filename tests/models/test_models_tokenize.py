"""The families' tokenizers give transformers' ids, without transformers.

`models.tokenize` builds OpenAI's CLIP BPE and BERT's WordPiece with
`tokenizers` alone; the reference is `transformers.CLIPTokenizer` /
`transformers.BertTokenizer` built from the same vendored vocabularies, on
texts that exercise each step (normalization, the split, byte-level BPE,
CJK, accents, special tokens written in the text, truncation) and on random
unicode text.
"""

import gzip
import subprocess
import sys

import hypothesis
from hypothesis import strategies as st
import numpy as np
import pytest

from rationality_jax import resources
from rationality_jax.models import tokenize

TEXTS = [
  "a photo of a cat",
  "word " * 100,
  "A Photo OF   a\tDOG!!",
  "it's the cat's toy, isn't it? I'll go; we've 12,345.67 cats",
  "café naïve résumé Ångström",
  "中文字符 and 日本語",
  "emoji 😀🐱 test",
  "<|endoftext|> inside <|startoftext|>",
  "[MASK] and [SEP] in text [CLS] [DEC] [ENC]",
  "",
  "   ",
  "hyper-parameter/under_score #tag @user",
  "x" * 300,
  "a photo of a black-footed albatross.",
  "\u00a0nbsp\u2003em ﬁ ligature Ⅻ",
  "tab\there\nnewline\r\n",
  "Ελληνικά Русский عربى",
  " ".join(["antidisestablishmentarianism"] * 30),
]
# (ours, the length, transformers' tokenizer of the same vocabulary)
CASES = {
  "clip": (lambda: tokenize.clip_bpe("clip", 77), 77),
  "albef": (lambda: tokenize.bert_wordpiece("albef", 30), 30),
  "blip": (
    lambda: tokenize.bert_wordpiece("blip", 35, "[DEC]", ("[ENC]",)),
    35,
  ),
}


def _reference(family):
  transformers = pytest.importorskip("transformers")
  if family == "clip":
    with gzip.open(
      resources.third_party("clip_bpe", "bpe_simple_vocab_16e6.txt.gz")
    ) as f:
      lines = f.read().decode("utf-8").split("\n")
    merges = [tuple(line.split()) for line in lines[1 : 49152 - 256 - 2 + 1]]
    symbols = list(tokenize._bytes_to_unicode().values())
    vocab = (
      symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges]
    )
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    return transformers.CLIPTokenizer(
      vocab={t: i for i, t in enumerate(vocab)}, merges=merges
    )
  backend = transformers.BertTokenizer(
    vocab=str(resources.third_party("bert_vocab", "vocab.txt")),
    do_lower_case=True,
  )
  if family == "blip":
    backend.add_special_tokens({"bos_token": "[DEC]"})
    backend.add_special_tokens({"additional_special_tokens": ["[ENC]"]})
  return backend


_REFERENCES = {}


def _expected(family, texts):
  """transformers' ids, padded with 0 to the length, and the mask."""
  if family not in _REFERENCES:
    _REFERENCES[family] = _reference(family)
  length = CASES[family][1]
  encoded = _REFERENCES[family](
    list(texts), truncation=True, max_length=length, add_special_tokens=True
  )["input_ids"]
  ids = np.zeros((len(texts), length), np.int32)
  for row, values in enumerate(encoded):
    ids[row, : len(values)] = values
  return ids, (
    np.arange(length) < np.asarray([len(v) for v in encoded])[:, None]
  )


@pytest.mark.parametrize("family", sorted(CASES))
def test_the_ids_are_transformers(family):
  ours = CASES[family][0]()
  ids, mask = ours(TEXTS)
  expected_ids, expected_mask = _expected(family, TEXTS)
  np.testing.assert_array_equal(ids, expected_ids)
  np.testing.assert_array_equal(mask, expected_mask.astype(np.int32))
  assert ours.vocab_size == len(_REFERENCES[family])
  # Truncated with the special tokens kept: the last position ends the text.
  assert mask[1].all() and ids[1, -1] == ids[0, mask[0].sum() - 1]


@hypothesis.settings(max_examples=60, deadline=None)
@hypothesis.given(
  family=st.sampled_from(sorted(CASES)),
  texts=st.lists(st.text(max_size=120), min_size=1, max_size=4),
)
def test_random_text_gives_transformers_ids(family, texts):
  ids, _ = CASES[family][0]()(texts)
  np.testing.assert_array_equal(ids, _expected(family, texts)[0])


def test_building_a_tokenizer_does_not_import_transformers():
  code = (
    "import sys; from rationality_jax.models import tokenize; "
    "tokenize.clip_bpe('clip', 77)('a cat'); "
    "tokenize.bert_wordpiece('blip', 35, '[DEC]', ('[ENC]',))('a cat'); "
    "print('transformers' in sys.modules)"
  )
  out = subprocess.run(
    [sys.executable, "-c", code], capture_output=True, text=True, check=True
  )
  assert out.stdout.strip() == "False"
