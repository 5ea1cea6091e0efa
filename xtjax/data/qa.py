"""Extractive QA in the SQuAD schema: windowed features with answer labels, and answer decoding.

Follows transformers' examples/pytorch/question-answering (run_qa.py prepare_train_features /
prepare_validation_features, utils_qa.py postprocess_qa_predictions) with a fast tokenizer's offset
mapping: question first, context second, only the context truncated into overlapping windows.
Answers are cut from the original context by character offsets (no English-only get_final_text),
so languages written without spaces come out exactly. SQuAD v2.0 unanswerable rows (empty answer
lists) are labelled at <s>, and ``decode`` can predict "" against a null-score threshold.

SentencePiece tokenizers such as XLM-R's emit a bare "▁" piece before a word that has no "▁word"
piece (common in zh/ja/th); its offsets copy the next character's, so it would overlap the word's
first token. Its offsets are made zero-width at the word start: it then never ends a span with
text, and a window that ends on it does not contain the word.
"""

from __future__ import annotations

import numpy as np

_CHUNK = 1000  # examples per tokenizer call, features per decoding step


def answer_problem(context: str, answers: dict, *, require_answer: bool = True) -> str:
  """Why the row's answers are malformed ("" when they are fine); an empty answer list is a problem
  only with ``require_answer`` (training rows)."""
  texts, starts = answers["text"], answers["answer_start"]
  if len(texts) != len(starts):
    return "answer text/answer_start count mismatch"
  if not texts:
    return "no answer" if require_answer else ""
  for text, start in zip(texts, starts):
    if not text:
      return "empty answer text"
    if start < 0 or start + len(text) > len(context):
      return "answer_start out of range"
    if context[start:start + len(text)] != text:
      return "answer not in context"
  return ""


def _encode(examples: dict, tokenizer, max_length: int, stride: int) -> dict[str, np.ndarray]:
  """All windows of all examples: ids, mask, context offsets (-1 elsewhere), example index."""
  space = tokenizer.convert_tokens_to_ids("▁")
  bare_space = space is not None and space != tokenizer.unk_token_id
  parts = []
  for lo in range(0, len(examples["context"]), _CHUNK):
    enc = tokenizer([q.lstrip() for q in examples["question"][lo:lo + _CHUNK]],
                    list(examples["context"][lo:lo + _CHUNK]), truncation="only_second",
                    max_length=max_length, stride=stride, return_overflowing_tokens=True,
                    return_offsets_mapping=True, padding="max_length", return_tensors="np")
    context = np.array([e.sequence_ids for e in enc.encodings], dtype=float) == 1
    offsets = np.where(context[..., None], enc["offset_mapping"], -1).astype(np.int32)
    if bare_space:
      bare = context & (enc["input_ids"] == space)
      offsets[..., 1] = np.where(bare, offsets[..., 0], offsets[..., 1])
    parts.append(dict(input_ids=enc["input_ids"].astype(np.int32),
                      attention_mask=enc["attention_mask"].astype(np.int32),
                      example_index=(enc["overflow_to_sample_mapping"] + lo).astype(np.int32),
                      offsets=offsets))
  return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def train_features(examples: dict[str, list], tokenizer, max_length: int = 384,
                   stride: int = 128) -> dict[str, np.ndarray]:
  """Training windows labelled with the first answer's first and last token; windows that do not
  hold the whole answer (and rows without answers) point both at the <s> token."""
  feats = _encode(examples, tokenizer, max_length, stride)
  offsets, sample = feats["offsets"], feats["example_index"]
  has = np.array([len(a["answer_start"]) > 0 for a in examples["answers"]], dtype=bool)[sample]
  begin = np.array([a["answer_start"][0] if a["answer_start"] else 0 for a in examples["answers"]])
  length = np.array([len(a["text"][0]) if a["text"] else 0 for a in examples["answers"]])
  start_char, end_char = begin[sample, None], (begin + length)[sample, None]
  context = offsets[..., 0] >= 0
  rows, seq = np.arange(len(sample)), offsets.shape[1]
  first_tok = np.argmax(context, axis=1)
  last_tok = seq - 1 - np.argmax(context[:, ::-1], axis=1)
  inside = (has & (offsets[rows, first_tok, 0] <= start_char[:, 0])
            & (offsets[rows, last_tok, 1] >= end_char[:, 0]))
  start = seq - 1 - np.argmax((context & (offsets[..., 0] <= start_char))[:, ::-1], axis=1)
  end = np.argmax(context & (offsets[..., 1] >= end_char), axis=1)
  cls = np.argmax(feats["input_ids"] == tokenizer.cls_token_id, axis=1)
  return dict(input_ids=feats["input_ids"], attention_mask=feats["attention_mask"],
              start_position=np.where(inside, start, cls).astype(np.int32),
              end_position=np.where(inside, end, cls).astype(np.int32))


def eval_features(examples: dict[str, list], tokenizer, max_length: int = 384,
                  stride: int = 128) -> dict[str, np.ndarray]:
  """Evaluation windows with their row in ``examples`` and context character offsets [F, L, 2]
  (-1 at every position that is not a context token)."""
  return _encode(examples, tokenizer, max_length, stride)


def _windows(features: dict, start_logits, end_logits, n_best: int, max_answer_length: int):
  """Per window: its example, best valid span score (-inf when none) with that pair's start and end
  logits and character offsets, and its null score (<s> start + end logit, position 0)."""
  offsets, example = np.asarray(features["offsets"]), np.asarray(features["example_index"])
  start_logits = np.asarray(start_logits, dtype=np.float32)
  end_logits = np.asarray(end_logits, dtype=np.float32)
  if start_logits.shape != offsets.shape[:2] or end_logits.shape != offsets.shape[:2]:
    raise ValueError(f"logits {start_logits.shape}/{end_logits.shape} do not match offsets "
                     f"{offsets.shape[:2]}")
  n = min(n_best, offsets.shape[1])
  score = np.full(len(example), -np.inf, dtype=np.float32)
  span = np.zeros((len(example), 2), dtype=np.int64)
  logits = np.zeros((len(example), 2), dtype=np.float32)
  for lo in range(0, len(example), _CHUNK):
    hi = lo + _CHUNK
    s_tok = np.argsort(-start_logits[lo:hi], axis=1, kind="stable")[:, :n]
    e_tok = np.argsort(-end_logits[lo:hi], axis=1, kind="stable")[:, :n]
    s_char = np.take_along_axis(offsets[lo:hi, :, 0], s_tok, axis=1)[:, :, None]
    e_char = np.take_along_axis(offsets[lo:hi, :, 1], e_tok, axis=1)[:, None, :]
    tokens = e_tok[:, None, :] - s_tok[:, :, None] + 1
    valid = ((s_char >= 0) & (e_char > s_char) & (tokens >= 1) & (tokens <= max_answer_length))
    s_logit = np.take_along_axis(start_logits[lo:hi], s_tok, axis=1)
    e_logit = np.take_along_axis(end_logits[lo:hi], e_tok, axis=1)
    pair = np.where(valid, s_logit[:, :, None] + e_logit[:, None, :], -np.inf)
    best = np.argmax(pair.reshape(len(s_tok), -1), axis=1)
    rows, s_best, e_best = np.arange(len(s_tok)), best // n, best % n
    score[lo:hi] = pair[rows, s_best, e_best]
    logits[lo:hi] = np.stack([s_logit[rows, s_best], e_logit[rows, e_best]], axis=1)
    span[lo:hi] = np.stack([s_char[rows, s_best, 0], e_char[rows, 0, e_best]], axis=1)
  return example, score, logits, span, start_logits[:, 0] + end_logits[:, 0]


def _best(n_examples: int, example, score, logits, null):
  """Per example: the window of its best valid span (-1 when none) and its lowest null score over
  its windows minus that span's start and end logits, in utils_qa's float32 order (+inf when it
  has no valid span)."""
  order = np.lexsort((-score, example))  # by example, best window first
  _, first = np.unique(example[order], return_index=True)
  top = order[first][np.isfinite(score[order[first]])]
  window = np.full(n_examples, -1, dtype=np.int64)
  window[example[top]] = top
  best = np.tile(np.array([-np.inf, 0.0], dtype=np.float32), (n_examples, 1))
  best[example[top]] = logits[top]
  min_null = np.full(n_examples, np.inf, dtype=np.float32)
  np.minimum.at(min_null, example, null)
  return window, min_null - best[:, 0] - best[:, 1]


def decode(contexts: list[str], ids: list[str], features: dict, start_logits, end_logits,
           n_best: int = 20, max_answer_length: int = 30,
           null_score_diff_threshold: float | None = None) -> dict[str, str]:
  """Best answer text per example id over all its windows ("" when none has a valid span).

  Like utils_qa: the n_best highest start and end positions of each window are paired, pairs
  outside the context, with end < start, longer than max_answer_length tokens or without
  characters are dropped, and the highest start + end logit wins. The sequence length is the
  offsets' (features may be trimmed, consistently with the logits).

  ``null_score_diff_threshold`` None is SQuAD v1.1 (always the best span); a float is SQuAD v2.0
  as utils_qa with version_2_with_negative: the answer is "" where ``null_score_diffs`` exceeds it.
  """
  example, score, logits, span, null = _windows(features, start_logits, end_logits, n_best,
                                                max_answer_length)
  window, diff = _best(len(ids), example, score, logits, null)
  answers = {}
  for i, (f, d) in enumerate(zip(window, diff)):
    null_wins = null_score_diff_threshold is not None and d > null_score_diff_threshold
    answers[ids[i]] = "" if f < 0 or null_wins else contexts[i][span[f, 0]:span[f, 1]].strip()
  return answers


def null_score_diffs(ids: list[str], features: dict, start_logits, end_logits, n_best: int = 20,
                     max_answer_length: int = 30) -> dict[str, float]:
  """Per example id, utils_qa's null score minus best span score (its null_odds.json), to tune
  ``decode``'s null_score_diff_threshold on.

  The null score is the lowest <s> (position 0) start + end logit over the example's windows; the
  best span is ``decode``'s v1.1 answer. Where no window has a valid span the difference is +inf
  (utils_qa would score a placeholder "empty" answer at 0).
  """
  example, score, logits, _, null = _windows(features, start_logits, end_logits, n_best,
                                             max_answer_length)
  _, diff = _best(len(ids), example, score, logits, null)
  return {i: float(d) for i, d in zip(ids, diff)}
