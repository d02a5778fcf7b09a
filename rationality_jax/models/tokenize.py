"""The families' real tokenizers, built offline from vendored vocabularies.

* CLIP: OpenAI's byte-level BPE from ``third_party/clip_bpe/
  bpe_simple_vocab_16e6.txt.gz`` (the merges file of OpenAI's
  ``simple_tokenizer``); vocabulary = 256 bytes, their ``</w>`` forms, the
  48,894 merges, ``<|startoftext|>`` 49406, ``<|endoftext|>`` 49407. Padded
  with 0 to 77 like ``clip.tokenize``.
* ALBEF: BERT uncased WordPiece, ``third_party/bert_vocab/vocab.txt``
  (30,522 tokens), padded to 30 (ALBEF's retrieval evaluation).
* BLIP: the same plus ``[DEC]`` (30522, bos) and ``[ENC]`` (30523), padded
  to 35 (BLIP's retrieval evaluation).

The vocabularies are the repository's ``third_party/``, found by
`rationality_jax.resources` (inside an installed wheel, or in the checkout).
"""

from __future__ import annotations

from collections.abc import Sequence
import dataclasses
import functools
import gzip

import numpy as np

from rationality_jax import resources

CONTEXT_LENGTH = {"clip": 77, "albef": 30, "blip": 35}


def _bytes_to_unicode() -> dict[int, str]:
  """OpenAI's byte -> printable unicode map (printable bytes map to themselves)."""
  printable = (
    list(range(ord("!"), ord("~") + 1))
    + list(range(ord("¡"), ord("¬") + 1))
    + list(range(ord("®"), ord("ÿ") + 1))
  )
  codes = printable[:]
  extra = 0
  for byte in range(256):
    if byte not in printable:
      printable.append(byte)
      codes.append(256 + extra)
      extra += 1
  return dict(zip(printable, map(chr, codes)))


def _clip_backend():
  from transformers import CLIPTokenizer

  with gzip.open(
    resources.third_party("clip_bpe", "bpe_simple_vocab_16e6.txt.gz")
  ) as f:
    lines = f.read().decode("utf-8").split("\n")
  merges = [tuple(line.split()) for line in lines[1 : 49152 - 256 - 2 + 1]]
  symbols = list(_bytes_to_unicode().values())
  vocab = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges]
  vocab += ["<|startoftext|>", "<|endoftext|>"]
  return CLIPTokenizer(
    vocab={token: i for i, token in enumerate(vocab)}, merges=merges
  )


def _bert_backend(blip: bool):
  from transformers import BertTokenizer

  backend = BertTokenizer(
    vocab=str(resources.third_party("bert_vocab", "vocab.txt")),
    do_lower_case=True,
  )
  if blip:
    backend.add_special_tokens({"bos_token": "[DEC]"})
    backend.add_special_tokens({"additional_special_tokens": ["[ENC]"]})
  return backend


@dataclasses.dataclass(frozen=True)
class Tokenizer:
  """Texts -> fixed-length token ids and attention mask.

  Attributes:
    family: 'clip', 'albef' or 'blip'.
    context_length: every output has this many positions (truncated/padded).
    backend: the transformers tokenizer doing the splitting.
  """

  family: str
  context_length: int
  backend: object

  def __call__(
    self, texts: str | Sequence[str]
  ) -> tuple[np.ndarray, np.ndarray]:
    """Tokenize.

    Args:
      texts: one string or a list of B strings.

    Returns:
      token_ids: [B, context_length] int32, padded with 0 (CLIP: after
        ``<|endoftext|>``, like ``clip.tokenize``; BERT: ``[PAD]`` = 0).
      attention_mask: [B, context_length] int32, 1 = real token.
    """
    texts = [texts] if isinstance(texts, str) else list(texts)
    encoded = self.backend(
      texts,
      truncation=True,
      max_length=self.context_length,
      add_special_tokens=True,
    )
    token_ids = np.zeros((len(texts), self.context_length), np.int32)
    mask = np.zeros((len(texts), self.context_length), np.int32)
    for row, ids in enumerate(encoded["input_ids"]):
      token_ids[row, : len(ids)] = ids
      mask[row, : len(ids)] = 1
    return token_ids, mask

  @property
  def vocab_size(self) -> int:
    return len(self.backend)


@functools.cache
def tokenizer(family: str, context_length: int | None = None) -> Tokenizer:
  """The real tokenizer of ``family`` ('clip', 'albef', 'blip'), offline.

  ``tokenizer('clip')("a photo of a cat")[0][0, :7]`` is
  ``[49406, 320, 1125, 539, 320, 2368, 49407]``.
  """
  if family not in CONTEXT_LENGTH:
    raise ValueError(
      f"unknown family {family!r}; expected one of {sorted(CONTEXT_LENGTH)}."
    )
  backend = (
    _clip_backend() if family == "clip" else _bert_backend(family == "blip")
  )
  return Tokenizer(family, context_length or CONTEXT_LENGTH[family], backend)
