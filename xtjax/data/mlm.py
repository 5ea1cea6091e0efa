"""Multilingual masked language modelling data: packed rows of text, and dynamic masking.

Text is packed as in RoBERTa/XLM-R pretraining ("full-sentences"): the token streams of
consecutive texts are concatenated, separated by ``</s>``, and cut into rows of
``<s>`` + max_length-2 tokens + ``</s>``. Masking is redrawn for every row each epoch, exactly as
Hugging Face's ``DataCollatorForLanguageModeling`` does it (same draws from the same generator), by
a grain random map whose generator depends only on the seed and the row's position in the
endless stream, so a restored iterator continues with the same masks.
"""

from __future__ import annotations

import dataclasses
import itertools

import grain
import numpy as np

from xtjax.data.tagging import IGNORE

MASK_SHARE = 0.8  # of the selected tokens, replaced by <mask> ...
RANDOM_SHARE = 0.1  # ... or by a random token; the rest stay unchanged
_CHUNK = 10_000  # texts per tokenizer call


def _stream(texts: list[str], tokenizer) -> np.ndarray:
  """The token ids of all texts, one after the other, separated by </s> (int32)."""
  parts = []
  for start in range(0, len(texts), _CHUNK):
    ids = tokenizer(texts[start:start + _CHUNK], add_special_tokens=False,
                    return_attention_mask=False, verbose=False)["input_ids"]
    lengths = np.fromiter(map(len, ids), np.int64, len(ids))
    lengths = lengths[lengths > 0]
    tokens = np.fromiter(itertools.chain.from_iterable(ids), np.int32, int(lengths.sum()))
    out = np.full(len(tokens) + len(lengths), tokenizer.eos_token_id, np.int32)
    keep = np.ones(len(out), bool)
    keep[np.cumsum(lengths + 1) - 1] = False  # a </s> after every text
    out[keep] = tokens
    parts.append(out)
  return np.concatenate(parts)[:-1] if parts else np.zeros(0, np.int32)


def mlm_features(texts: list[str], tokenizer, max_length: int) -> dict[str, np.ndarray]:
  """``texts`` tokenised and packed into rows of ``<s>`` + max_length-2 tokens + ``</s>``; the last
  row is shorter, padded (attention_mask 0). int32 ``input_ids`` and ``attention_mask``."""
  if max_length < 3:
    raise ValueError(f"max_length {max_length} leaves no room for tokens between <s> and </s>")
  stream, body = _stream(texts, tokenizer), max_length - 2
  n = -(-len(stream) // body)
  ids = np.full((n, max_length), tokenizer.pad_token_id, np.int32)
  mask = np.zeros((n, max_length), np.int32)
  ids[:, 0] = tokenizer.bos_token_id
  full = len(stream) // body
  ids[:full, 1:-1] = stream[:full * body].reshape(full, body)
  ids[:full, -1] = tokenizer.eos_token_id
  mask[:full] = 1
  if n > full:
    rest = stream[full * body:]
    ids[-1, 1:len(rest) + 1] = rest
    ids[-1, len(rest) + 1] = tokenizer.eos_token_id
    mask[-1, :len(rest) + 2] = 1
  return {"input_ids": ids, "attention_mask": mask}


def mask_tokens(input_ids, attention_mask, rng: np.random.Generator, *, mask_id: int,
                vocab_size: int, special_ids, probability: float = 0.15
                ) -> tuple[np.ndarray, np.ndarray]:
  """BERT masking as ``DataCollatorForLanguageModeling.numpy_mask_tokens`` (the same draws in the
  same order): each token other than ``special_ids`` and padding is selected with ``probability``;
  of those, 80% become ``mask_id``, 10% a uniformly drawn id below ``vocab_size``, 10% stay.
  Returns (masked ids, labels: the original id where selected, -100 elsewhere); inputs are kept."""
  ids = np.array(input_ids, np.int32)
  chance = np.full(ids.shape, probability)
  chance[np.isin(ids, list(special_ids)) | (np.asarray(attention_mask) == 0)] = 0
  selected = rng.binomial(1, chance, size=ids.shape).astype(bool)
  labels = np.where(selected, ids, IGNORE).astype(np.int32)
  replaced = rng.binomial(1, MASK_SHARE, size=ids.shape).astype(bool) & selected
  ids[replaced] = mask_id
  randomised = (rng.binomial(1, RANDOM_SHARE / (1 - MASK_SHARE), size=ids.shape).astype(bool)
                & selected & ~replaced)
  ids[randomised] = rng.integers(0, vocab_size, size=np.count_nonzero(randomised), dtype=np.int64)
  return ids, labels


@dataclasses.dataclass(frozen=True)
class MaskTokens(grain.transforms.RandomMap):
  """`mask_tokens` on a row dict (``input_ids``, ``attention_mask``, ...), adding ``labels``."""

  mask_id: int
  vocab_size: int
  special_ids: tuple[int, ...]
  probability: float = 0.15

  @classmethod
  def from_tokenizer(cls, tokenizer, probability: float = 0.15) -> MaskTokens:
    """Hugging Face's choices: <mask>, random ids over len(tokenizer), all special ids kept."""
    return cls(tokenizer.mask_token_id, len(tokenizer), tuple(tokenizer.all_special_ids),
               probability)

  def random_map(self, element: dict, rng: np.random.Generator) -> dict:
    ids, labels = mask_tokens(element["input_ids"], element["attention_mask"], rng,
                              mask_id=self.mask_id, vocab_size=self.vocab_size,
                              special_ids=self.special_ids, probability=self.probability)
    return {**element, "input_ids": ids, "labels": labels}
