"""The real tokenizers of the families, built offline from vendored vocabularies.

Which family uses which (and its length) is said by the family modules
(`rationality_jax.models.families`); this module builds them:

* `clip_bpe` (CLIP): OpenAI's byte-level BPE from ``third_party/clip_bpe/
  bpe_simple_vocab_16e6.txt.gz`` (the merges file of OpenAI's
  ``simple_tokenizer``); vocabulary = 256 bytes, their ``</w>`` forms, the
  48,894 merges, ``<|startoftext|>`` 49406, ``<|endoftext|>`` 49407. Padded
  with 0 like ``clip.tokenize``.
* `bert_wordpiece` (ALBEF, BLIP): BERT uncased WordPiece,
  ``third_party/bert_vocab/vocab.txt`` (30,522 tokens); BLIP adds ``[DEC]``
  (30522, its bos) and ``[ENC]`` (30523).

The vocabularies are the repository's ``third_party/``, found by
`rationality_jax.resources` (inside an installed wheel, or in the checkout).
Both are built with Hugging Face's `tokenizers` alone, as the pipelines
`transformers` builds for them (same ids: tests/models/test_models_tokenize.py),
so that a command does not import transformers to tokenize.
"""

from __future__ import annotations

from collections.abc import Sequence
import dataclasses
import functools
import gzip

import numpy as np
import tokenizers
import tokenizers.models
import tokenizers.normalizers
import tokenizers.pre_tokenizers
import tokenizers.processors

from rationality_jax import resources


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


@dataclasses.dataclass(frozen=True)
class Tokenizer:
  """Texts -> fixed-length token ids and attention mask.

  Attributes:
    family: the name of the family it belongs to (``'clip'``).
    context_length: every output has this many positions (truncated/padded).
    backend: the `tokenizers.Tokenizer` doing the splitting, truncating to
      ``context_length`` with its special tokens.
  """

  family: str
  context_length: int
  backend: tokenizers.Tokenizer

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
    encoded = self.backend.encode_batch(texts, add_special_tokens=True)
    token_ids = np.zeros((len(texts), self.context_length), np.int32)
    mask = np.zeros((len(texts), self.context_length), np.int32)
    for row, encoding in enumerate(encoded):
      token_ids[row, : len(encoding.ids)] = encoding.ids
      mask[row, : len(encoding.ids)] = 1
    return token_ids, mask

  @property
  def vocab_size(self) -> int:
    return self.backend.get_vocab_size(with_added_tokens=True)


# The pre-tokenizer's split of OpenAI's ``simple_tokenizer`` (its ``pat``).
_CLIP_SPLIT = (
  r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+"
  r"|[\p{N}]|[^\s\p{L}\p{N}]+"
)


@functools.cache
def clip_bpe(family: str, context_length: int) -> Tokenizer:
  """OpenAI's CLIP BPE, ``context_length`` positions, labelled ``family``.

  ``clip_bpe('clip', 77)("a photo of a cat")[0][0, :7]`` is
  ``[49406, 320, 1125, 539, 320, 2368, 49407]``. The pipeline is the one
  `transformers.CLIPTokenizer` builds (NFC, whitespace runs to one space,
  lowercase; the split above, then byte-level; BPE with ``</w>`` ending a
  word; ``<|startoftext|>`` ... ``<|endoftext|>`` around), built here with
  `tokenizers` alone: the same ids (tests/models/test_models_tokenize.py)
  without importing transformers.
  """
  with gzip.open(
    resources.third_party("clip_bpe", "bpe_simple_vocab_16e6.txt.gz")
  ) as f:
    lines = f.read().decode("utf-8").split("\n")
  merges = [tuple(line.split()) for line in lines[1 : 49152 - 256 - 2 + 1]]
  symbols = list(_bytes_to_unicode().values())
  vocab = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges]
  start, end = "<|startoftext|>", "<|endoftext|>"
  vocab += [start, end]
  backend = tokenizers.Tokenizer(
    tokenizers.models.BPE(
      vocab={token: i for i, token in enumerate(vocab)},
      merges=merges,
      continuing_subword_prefix="",
      end_of_word_suffix="</w>",
      fuse_unk=False,
      unk_token=end,
    )
  )
  backend.normalizer = tokenizers.normalizers.Sequence(
    [
      tokenizers.normalizers.NFC(),
      tokenizers.normalizers.Replace(tokenizers.Regex(r"\s+"), " "),
      tokenizers.normalizers.Lowercase(),
    ]
  )
  backend.pre_tokenizer = tokenizers.pre_tokenizers.Sequence(
    [
      tokenizers.pre_tokenizers.Split(
        tokenizers.Regex(_CLIP_SPLIT), behavior="removed", invert=True
      ),
      tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False),
    ]
  )
  return Tokenizer(
    family,
    context_length,
    _finish(
      backend,
      [start, end],
      tokenizers.processors.RobertaProcessing(
        (end, len(vocab) - 1),
        (start, len(vocab) - 2),
        trim_offsets=False,
        add_prefix_space=False,
      ),
      context_length,
    ),
  )


@functools.cache
def bert_wordpiece(
  family: str,
  context_length: int,
  bos_token: str | None = None,
  extra_special_tokens: tuple[str, ...] = (),
) -> Tokenizer:
  """BERT uncased WordPiece, ``context_length`` positions, labelled ``family``.

  The pipeline `transformers.BertTokenizer` builds (BERT's normalizer:
  clean, split CJK characters, lowercase with accents stripped; BERT's
  pre-tokenizer; WordPiece; ``[CLS]`` ... ``[SEP]`` around), with
  `tokenizers` alone.

  Args:
    family: the label of the returned `Tokenizer`.
    context_length: positions of every output.
    bos_token: added as the beginning-of-sentence token (BLIP: ``'[DEC]'``,
      id 30522).
    extra_special_tokens: added after it (BLIP: ``('[ENC]',)``, id 30523).
  """
  backend = tokenizers.Tokenizer(
    tokenizers.models.WordPiece.from_file(
      str(resources.third_party("bert_vocab", "vocab.txt")), unk_token="[UNK]"
    )
  )
  backend.normalizer = tokenizers.normalizers.BertNormalizer(
    clean_text=True,
    handle_chinese_chars=True,
    strip_accents=None,
    lowercase=True,
  )
  backend.pre_tokenizer = tokenizers.pre_tokenizers.BertPreTokenizer()
  special = ["[UNK]", "[SEP]", "[PAD]", "[CLS]", "[MASK]"]
  special += [bos_token] if bos_token is not None else []
  special += list(extra_special_tokens)  # those not in vocab.txt: next ids
  cls, sep = backend.token_to_id("[CLS]"), backend.token_to_id("[SEP]")
  return Tokenizer(
    family,
    context_length,
    _finish(
      backend,
      special,
      tokenizers.processors.TemplateProcessing(
        single="[CLS]:0 $A:0 [SEP]:0",
        pair="[CLS]:0 $A:0 [SEP]:0 $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)],
      ),
      context_length,
    ),
  )


def _finish(backend, special, post_processor, context_length):
  """Special tokens (kept whole wherever they appear in a text), the
  post-processor adding them around a text, and truncation to
  ``context_length`` positions with them."""
  backend.add_special_tokens(special)
  backend.post_processor = post_processor
  backend.enable_truncation(max_length=context_length)
  return backend
