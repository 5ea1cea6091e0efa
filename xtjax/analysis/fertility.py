"""Tokenizer fertility and padding cost per language.

- Fertility: sub-words (special tokens excluded) per whitespace word and per character (spaces
  excluded), as corpus ratios (total sub-words / total words). Per character is the fair one for
  scripts written without spaces (zh, ja, th), where a "word" is a whole clause. ``relative``
  divides each by English's (on parallel test sets this is the tokenisation premium).
- Padding: real tokens (attention mask) against the tokens a model runs on when every row is
  padded to ``max_length``, and when it is padded to its length bucket (the shortest bound that
  holds it, as `xtjax.data.batches` evaluates).
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np


def count_words(text: str) -> int:
  return len(text.split())


def count_chars(text: str) -> int:
  return sum(not c.isspace() for c in text)


def subword_counter(tokenizer) -> Callable[[list[str]], list[int]]:
  """Sub-word counts of texts under a Hugging Face tokenizer, special tokens excluded."""
  return lambda texts: [len(ids) for ids in
                        tokenizer(list(texts), add_special_tokens=False)["input_ids"]]


def fertility(texts: Sequence[str], count_subwords: Callable[[list[str]], list[int]]) -> dict:
  """Totals and ratios for ``texts``; ``count_subwords`` gives each text's sub-word count."""
  texts = [t for t in texts if t.strip()]
  if not texts:
    raise ValueError("fertility needs at least one non-empty text")
  subwords = int(np.sum(count_subwords(texts)))
  words = sum(count_words(t) for t in texts)
  chars = sum(count_chars(t) for t in texts)
  return {"texts": len(texts), "words": words, "chars": chars, "subwords": subwords,
          "per_word": subwords / words, "per_char": subwords / chars}


def relative(stats: dict[str, dict], reference: str = "en") -> dict[str, dict]:
  """``stats`` (per language, from `fertility`) with ``per_word_rel`` and ``per_char_rel``: the
  ratio to the reference language's (None without it)."""
  ref = stats.get(reference)
  return {lang: {**s, **{f"{k}_rel": s[k] / ref[k] if ref else None
                         for k in ("per_word", "per_char")}}
          for lang, s in stats.items()}


def padding(attention_mask, bounds: Sequence[int]) -> dict:
  """Real and padded token counts of feature rows ``attention_mask`` [n, ..., max_length]
  (a multiple-choice row holds several sequences; it is bucketed by its longest one)."""
  mask = np.asarray(attention_mask)
  max_length = mask.shape[-1]
  per_row = mask.reshape(len(mask), -1, max_length)
  sequences = per_row.shape[1]
  lengths = per_row.sum(-1)
  bounds = sorted(bounds)
  if bounds[-1] < max_length:
    raise ValueError(f"bucket bounds {bounds} must reach the features' length {max_length}")
  bucket = np.asarray(bounds)[np.searchsorted(bounds, lengths.max(-1))]
  real = int(lengths.sum())
  fixed = len(mask) * sequences * max_length
  bucketed = int(bucket.sum()) * sequences
  return {"rows": len(mask), "real_tokens": real, "tokens_per_row": real / max(len(mask), 1),
          "padded_fixed": fixed, "padded_bucketed": bucketed,
          "pad_share_fixed": 1 - real / fixed, "pad_share_bucketed": 1 - real / bucketed,
          "full_rows": float(np.mean(lengths.max(-1) >= max_length))}
