"""Extractive QA in the SQuAD schema: windows and answer decoding as XTREME's ``run_squad.py``.

Windows follow ``squad_convert_example_to_features`` (google-research/xtreme
``third_party/processors/squad.py`` lines 88-261; jiant's ``squad_style/core.py``
``to_feature_list`` is the same loop):

- the context is split into words at " \\t\\r\\n" and U+202F (``SquadExample``, lines 616-633),
  and each word is tokenized on its own;
- the question keeps its first ``max_query_length`` (64) tokens (line 129);
- a window is ``<s> question </s></s> context </s>``; its context slice holds at most
  ``max_length - len(question) - 4`` tokens, and slices start every ``doc_stride`` tokens until
  one reaches the context's end (lines 137-180: ``doc_stride`` is the step between window
  starts, not the overlap);
- training: the answer's first and last words give its tokens, narrowed to the first run of the
  answer's own tokens inside them (``_improve_answer_span``); a window that does not hold the
  whole answer points both labels at ``<s>``, and a row whose answer, whitespace-normalised, is
  not in its words is dropped (lines 95-100);
- decoding: a token may start an answer only in its "max context" window, the one where
  ``min(left, right context) + 0.01 * window length`` is highest, the first on ties
  (``_new_check_is_max_context``, lines 60-79, 182-190).

Answers are decoded as transformers' ``compute_predictions_logits``: the ``n_best`` highest start
and end positions of each window are paired; pairs outside the context, ending before they start
or longer than ``max_answer_length`` tokens are dropped; the highest start + end logit wins.
``postprocess`` turns the winning span into text:

- ``"offsets"`` (xtjax): the original context cut at the tokens' character offsets, exact in every
  language; spans without characters are skipped.
- ``"official"``: ``get_final_text`` as XTREME's ``run_squad.py``, through transformers
  ``squad_metrics.compute_predictions_logits``: the tokens' text aligned with the whitespace
  words they come from by BERT's basic tokenizer, or the whole words when that fails (most zh
  answers: whole sentences).
- ``"jiant"``: jiant's ``xtreme_submission.py`` / ``evaluate/core.py``: the tokens' text itself
  where the language is ``zh`` (``skip_get_final_text=(lang == "zh")``), ``get_final_text``
  elsewhere.

SQuAD v2.0 rows without answers are labelled at ``<s>``, and ``decode`` can predict "" against a
null-score threshold (transformers' ``utils_qa`` semantics).

SentencePiece tokenizers such as XLM-R's emit a bare "▁" piece before a word that has no "▁word"
piece (common in zh/ja/th); its offsets copy the next character's. They are made zero-width at the
word start: the piece then never ends a span with text, and no span of it alone has text.
"""

from __future__ import annotations

import re
import unicodedata
from typing import NamedTuple

import numpy as np

_CHUNK = 1000  # examples per tokenizer call, features per decoding step
_WORD = re.compile("[^ \t\r\n\u202f]+")  # squad.py _is_whitespace
_SPECIALS = 4  # <s> question </s></s> context </s>: XLM-R's pair layout
POSTPROCESS = ("offsets", "official", "jiant")


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


# --- windows ------------------------------------------------------------------------------------


class _Context(NamedTuple):
  """A context's whitespace words and their sub-tokens, tokenized word by word."""
  words: list[str]
  starts: np.ndarray  # [W] character where each word starts
  ids: np.ndarray  # [n] sub-token ids
  word: np.ndarray  # [n] word of each sub-token
  offsets: np.ndarray  # [n, 2] characters of each sub-token in the context
  first: np.ndarray  # [W] first sub-token of each word (squad.py orig_to_tok_index)


def _contexts(contexts: list[str], tokenizer) -> dict[str, _Context]:
  """Each distinct context, its distinct words tokenized in one call."""
  found = {c: [(m.group(), m.start()) for m in _WORD.finditer(c)] for c in dict.fromkeys(contexts)}
  words = list(dict.fromkeys(w for pairs in found.values() for w, _ in pairs))
  enc = tokenizer(words, add_special_tokens=False, return_offsets_mapping=True) if words else {}
  space = tokenizer.convert_tokens_to_ids("▁")
  space = -1 if space is None or space == tokenizer.unk_token_id else space
  pieces = {}
  for w, ids, offs in zip(words, enc.get("input_ids", []), enc.get("offset_mapping", [])):
    ids, offs = np.asarray(ids, np.int32), np.asarray(offs, np.int64).reshape(-1, 2)
    offs[ids == space, 1] = offs[ids == space, 0]  # a bare "▁": zero-width
    pieces[w] = (ids, offs)
  out = {}
  for c, pairs in found.items():
    ids = [pieces[w][0] for w, _ in pairs] or [np.zeros(0, np.int32)]
    offsets = [pieces[w][1] for w, _ in pairs] or [np.zeros((0, 2), np.int64)]
    counts = np.array([len(i) for i in ids[:len(pairs)]], np.int64)
    starts = np.array([s for _, s in pairs], np.int64)
    word = np.repeat(np.arange(len(pairs)), counts)
    out[c] = _Context([w for w, _ in pairs], starts, np.concatenate(ids), word,
                      np.concatenate(offsets) + starts[word, None], np.cumsum(counts) - counts)
  return out


def _spans(q_len: int, n: int, max_length: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
  """Start and length of each window's context slice (squad.py lines 137-180)."""
  room = max_length - q_len - _SPECIALS
  if room < stride:
    raise ValueError(f"doc_stride {stride} exceeds the {room} context tokens a window holds at "
                     f"max_length {max_length} after a {q_len}-token question: tokens between "
                     "windows would be skipped")
  count = 0 if n == 0 else 1 + max(0, -(-(n - room) // stride))
  starts = np.arange(count, dtype=np.int64) * stride
  return starts, np.minimum(n - starts, room)


def _max_context(starts: np.ndarray, lengths: np.ndarray, n: int) -> np.ndarray:
  """Per context token, the window where it has the most context (the first on ties)."""
  d = np.arange(n)
  s, e = starts[:, None], (starts + lengths - 1)[:, None]
  score = np.minimum(d - s, e - d) + 0.01 * lengths[:, None]
  return np.argmax(np.where((d >= s) & (d <= e), score, -np.inf), axis=0)


def _answer_words(words: list[str], starts, start: int, text: str,
                  context: str) -> tuple[int, int] | None:
  """The first and last whitespace word of an answer, or None when the answer, whitespace-
  normalised, is not within them (squad.py lines 90-100: XTREME then drops the example)."""
  to_word = lambda c: int(np.searchsorted(starts, c, side="right")) - 1
  first_w, last_w = to_word(start), to_word(min(start + len(text) - 1, len(context) - 1))
  if " ".join(words[first_w:last_w + 1]).find(" ".join(text.split())) == -1:
    return None
  return first_w, last_w


def answer_in_words(context: str, start: int, text: str) -> bool:
  """Whether a training answer lies within the context words it covers (else XTREME drops the
  example; xtjax reports it as a malformed row)."""
  found = [(m.group(), m.start()) for m in _WORD.finditer(context)]
  return _answer_words([w for w, _ in found], np.array([p for _, p in found], np.int64), start,
                       text, context) is not None


def _answer_tokens(ctx: _Context, start: int, text: str, context: str,
                   answer_ids: list[int]) -> tuple[int, int] | None:
  """First and last sub-token of the training answer (squad.py lines 90-125), or None when the
  example is dropped because the answer is not in its words."""
  words = _answer_words(ctx.words, ctx.starts, start, text, context)
  if words is None:
    return None
  first_w, last_w = words
  lo = int(ctx.first[first_w])
  hi = int(ctx.first[last_w + 1]) - 1 if last_w < len(ctx.words) - 1 else len(ctx.ids) - 1
  m = len(answer_ids)
  for s in range(lo, hi - m + 2) if m else ():  # _improve_answer_span: the first run inside
    if ctx.ids[s:s + m].tolist() == answer_ids:
      return s, s + m - 1
  return lo, hi


def _windows(question: list[int], ctx: _Context, tokenizer, max_length: int,
             stride: int) -> dict[str, np.ndarray]:
  """One example's windows: ids, mask and, per position, its context token (-1 elsewhere)."""
  starts, lengths = _spans(len(question), len(ctx.ids), max_length, stride)
  w, q0 = len(starts), len(question) + 3
  j = np.arange(max_length)[None, :]
  doc = np.where((j >= q0) & (j < q0 + lengths[:, None]), starts[:, None] + j - q0, -1)
  ids = np.full((w, max_length), tokenizer.pad_token_id, np.int32)
  ids[:, 0] = tokenizer.cls_token_id
  ids[:, 1:q0 - 2] = question
  ids[:, q0 - 2:q0] = tokenizer.sep_token_id
  ids[doc >= 0] = ctx.ids[doc[doc >= 0]]
  ids[np.arange(w), q0 + lengths] = tokenizer.sep_token_id
  best = _max_context(starts, lengths, len(ctx.ids))
  return dict(input_ids=ids, attention_mask=(j <= q0 + lengths[:, None]).astype(np.int32),
              doc=doc, max_context=(doc >= 0) & (best[np.maximum(doc, 0)] == np.arange(w)[:, None]))


def _encode(examples: dict, tokenizer, max_length: int, stride: int, max_query_length: int, *,
            training: bool) -> dict[str, np.ndarray]:
  out = []
  for lo in range(0, len(examples["context"]), _CHUNK):
    contexts = list(examples["context"][lo:lo + _CHUNK])
    answers = list(examples["answers"][lo:lo + _CHUNK])
    ctxs = _contexts(contexts, tokenizer)
    questions = tokenizer(list(examples["question"][lo:lo + _CHUNK]), add_special_tokens=False,
                          truncation=True, max_length=max_query_length)["input_ids"]
    texts = [a["text"][0] if a["text"] else "" for a in answers] if training else []
    answer_ids = tokenizer(texts, add_special_tokens=False)["input_ids"] if training else []
    for i, (context, question) in enumerate(zip(contexts, questions)):
      ctx, span = ctxs[context], None
      if training and texts[i]:
        span = _answer_tokens(ctx, answers[i]["answer_start"][0], texts[i], context,
                              answer_ids[i])
        if span is None:
          continue
      win = _windows(question, ctx, tokenizer, max_length, stride)
      out.append(_labels(win, span) if training else _eval_arrays(win, ctx, lo + i))
  if not out:
    raise ValueError("no QA windows: every example has an empty context or an answer outside "
                     "its words")
  return {k: np.concatenate([o[k] for o in out]) for k in out[0]}


def _labels(win: dict, span: tuple[int, int] | None) -> dict[str, np.ndarray]:
  """The answer's positions in each window holding all of it, <s> (0) elsewhere."""
  doc = win["doc"]
  hit_start, hit_end = (doc == span[0], doc == span[1]) if span else (doc < -1, doc < -1)
  whole = hit_start.any(1) & hit_end.any(1)
  return dict(input_ids=win["input_ids"], attention_mask=win["attention_mask"],
              start_position=np.where(whole, hit_start.argmax(1), 0).astype(np.int32),
              end_position=np.where(whole, hit_end.argmax(1), 0).astype(np.int32))


def _eval_arrays(win: dict, ctx: _Context, example: int) -> dict[str, np.ndarray]:
  doc = win["doc"]
  inside, at = doc >= 0, np.maximum(doc, 0)
  return dict(input_ids=win["input_ids"], attention_mask=win["attention_mask"],
              example_index=np.full(len(doc), example, np.int32),
              offsets=np.where(inside[..., None], ctx.offsets[at], -1).astype(np.int32),
              word_index=np.where(inside, ctx.word[at], -1).astype(np.int32),
              max_context=win["max_context"].astype(np.int32))


def train_features(examples: dict[str, list], tokenizer, max_length: int = 384, stride: int = 128,
                   max_query_length: int = 64) -> dict[str, np.ndarray]:
  """Training windows with the answer's first and last token (both 0, ``<s>``, in windows that do
  not hold the whole answer and for rows without answers); rows whose answer is not in their
  whitespace words have no windows."""
  return _encode(examples, tokenizer, max_length, stride, max_query_length, training=True)


def eval_features(examples: dict[str, list], tokenizer, max_length: int = 384, stride: int = 128,
                  max_query_length: int = 64) -> dict[str, np.ndarray]:
  """Evaluation windows with their row in ``examples`` (``example_index``) and, per position
  [F, L]: context character ``offsets`` [F, L, 2], whitespace ``word_index`` and
  ``max_context`` (1 where the token may start an answer); -1 / 0 outside the context."""
  return _encode(examples, tokenizer, max_length, stride, max_query_length, training=False)


# --- decoding -----------------------------------------------------------------------------------


def _best_spans(features: dict, start_logits, end_logits, n_best: int, max_answer_length: int,
                require_text: bool):
  """Per window: its example, best valid span score (-inf when none) with that pair's start and
  end logits and token positions, and its null score (<s> start + end logit, position 0)."""
  offsets, example = np.asarray(features["offsets"]), np.asarray(features["example_index"])
  may_start = np.asarray(features["max_context"]).astype(bool)
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
    starts_ok = np.take_along_axis(may_start[lo:hi], s_tok, axis=1)[:, :, None]
    tokens = e_tok[:, None, :] - s_tok[:, :, None] + 1
    valid = ((s_char >= 0) & (e_char >= 0) & starts_ok & (tokens >= 1)
             & (tokens <= max_answer_length) & ((e_char > s_char) | (not require_text)))
    s_logit = np.take_along_axis(start_logits[lo:hi], s_tok, axis=1)
    e_logit = np.take_along_axis(end_logits[lo:hi], e_tok, axis=1)
    pair = np.where(valid, s_logit[:, :, None] + e_logit[:, None, :], -np.inf)
    best = np.argmax(pair.reshape(len(s_tok), -1), axis=1)
    rows, s_best, e_best = np.arange(len(s_tok)), best // n, best % n
    score[lo:hi] = pair[rows, s_best, e_best]
    logits[lo:hi] = np.stack([s_logit[rows, s_best], e_logit[rows, e_best]], axis=1)
    span[lo:hi] = np.stack([s_tok[rows, s_best], e_tok[rows, e_best]], axis=1)
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


def _is_punctuation(c: str) -> bool:
  cp = ord(c)
  return (33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126
          or unicodedata.category(c).startswith("P"))


def _is_cjk(cp: int) -> bool:
  return any(a <= cp <= b for a, b in ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF),
                                       (0x2A700, 0x2B73F), (0x2B740, 0x2B81F), (0x2B820, 0x2CEAF),
                                       (0xF900, 0xFAFF), (0x2F800, 0x2FA1F)))


def _basic_tokens(text: str) -> list[str]:
  """BERT's ``BasicTokenizer(do_lower_case=False)`` as transformers had it in 2020 (XLM-R is
  cased): control characters dropped, other spaces made " ", CJK characters and punctuation
  split off, then split on whitespace."""
  chars = []
  for c in text:
    if c in " \t\n\r" or unicodedata.category(c) == "Zs":
      chars.append(" ")
    elif not (ord(c) in (0, 0xFFFD) or unicodedata.category(c).startswith("C")):
      chars.append(f" {c} " if _is_cjk(ord(c)) or _is_punctuation(c) else c)
  return "".join(chars).split()


def _without_spaces(text: str) -> tuple[str, list[int]]:
  kept = [i for i, c in enumerate(text) if c != " "]
  return "".join(text[i] for i in kept), kept


def get_final_text(pred_text: str, orig_text: str) -> str:
  """transformers ``squad_metrics.get_final_text`` (do_lower_case False): ``pred_text`` mapped onto
  ``orig_text`` through the basic tokenizer's output, or ``orig_text`` when they do not align."""
  tok_text = " ".join(_basic_tokens(orig_text))
  start = tok_text.find(pred_text)
  if start == -1:
    return orig_text
  end = start + len(pred_text) - 1
  orig_ns, orig_map = _without_spaces(orig_text)
  tok_ns, tok_map = _without_spaces(tok_text)
  if len(orig_ns) != len(tok_ns):
    return orig_text
  to_ns = {s: ns for ns, s in enumerate(tok_map)}
  if start not in to_ns or end not in to_ns:
    return orig_text
  return orig_text[orig_map[to_ns[start]]:orig_map[to_ns[end]] + 1]


def _answer_text(postprocess: str, language: str | None, tokenizer, context: str, features: dict,
                 f: int, s: int, e: int) -> str:
  """The text of the span of tokens s..e of window f under ``postprocess``."""
  if postprocess == "offsets":
    offsets = features["offsets"]
    return context[offsets[f][s, 0]:offsets[f][e, 1]].strip()
  tokens = tokenizer.convert_ids_to_tokens([int(i) for i in features["input_ids"][f][s:e + 1]])
  tok_text = " ".join(tokenizer.convert_tokens_to_string(tokens).split())
  if postprocess == "jiant" and language == "zh":
    return tok_text
  word = features["word_index"][f]
  orig_text = " ".join(_WORD.findall(context)[word[s]:word[e] + 1])
  return get_final_text(tok_text, orig_text)


def decode(contexts: list[str], ids: list[str], features: dict, start_logits, end_logits,
           n_best: int = 20, max_answer_length: int = 30,
           null_score_diff_threshold: float | None = None, *, postprocess: str = "offsets",
           language: str | None = None, tokenizer=None) -> dict[str, str]:
  """Best answer text per example id over all its windows ("" when none has a valid span).

  Spans start only at tokens in their max-context window; ``postprocess`` ("offsets",
  "official", "jiant": see the module docstring) makes the text; "official" and "jiant" need the
  ``tokenizer``, "jiant" the ``language``. The sequence length is the offsets' (features may be
  trimmed, consistently with the logits).

  ``null_score_diff_threshold`` None is SQuAD v1.1 (always the best span); a float is SQuAD v2.0
  as utils_qa with version_2_with_negative: the answer is "" where ``null_score_diffs`` exceeds it.
  """
  if postprocess not in POSTPROCESS:
    raise ValueError(f"unknown QA postprocess {postprocess!r}: use {', '.join(POSTPROCESS)}")
  if postprocess != "offsets" and tokenizer is None:
    raise ValueError(f"QA postprocess {postprocess!r} reads the span's tokens: pass the tokenizer")
  example, score, logits, span, null = _best_spans(
      features, start_logits, end_logits, n_best, max_answer_length, postprocess == "offsets")
  window, diff = _best(len(ids), example, score, logits, null)
  answers = {}
  for i, (f, d) in enumerate(zip(window, diff)):
    null_wins = null_score_diff_threshold is not None and d > null_score_diff_threshold
    answers[ids[i]] = "" if f < 0 or null_wins else _answer_text(
        postprocess, language, tokenizer, contexts[i], features, f, *span[f])
  return answers


def null_score_diffs(ids: list[str], features: dict, start_logits, end_logits, n_best: int = 20,
                     max_answer_length: int = 30) -> dict[str, float]:
  """Per example id, utils_qa's null score minus best span score (its null_odds.json), to tune
  ``decode``'s null_score_diff_threshold on.

  The null score is the lowest <s> (position 0) start + end logit over the example's windows; the
  best span is ``decode``'s v1.1 answer ("offsets"). Where no window has a valid span the
  difference is +inf (utils_qa would score a placeholder "empty" answer at 0).
  """
  example, score, logits, _, null = _best_spans(features, start_logits, end_logits, n_best,
                                                max_answer_length, True)
  _, diff = _best(len(ids), example, score, logits, null)
  return {i: float(d) for i, d in zip(ids, diff)}
