"""XTREME / XTREME-R metrics, with the numbers of the official google-research/xtreme scorer.

Every score is a percentage. The functions mirror ``evaluate.py``, ``third_party/evaluate_squad.py``
(SQuAD v1.1), ``third_party/evaluate_mlqa.py`` (MLQA), ``third_party/utils_mewslix.py`` and
``third_party/utils_lareqa.py``; ``qa_scores(version_2=True)`` SQuAD's ``evaluate-v2.0.py``.
"""

from __future__ import annotations

import re
import string
import sys
import unicodedata
import warnings
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

from seqeval.metrics import f1_score as _seqeval_f1
from seqeval.metrics import precision_score as _seqeval_precision
from seqeval.metrics import recall_score as _seqeval_recall

MLQA_ARTICLES = {
    "en": r"\b(a|an|the)\b",
    "es": r"\b(un|una|unos|unas|el|la|los|las)\b",
    "vi": r"\b(của|là|cái|chiếc|những)\b",
    "de": r"\b(ein|eine|einen|einem|eines|einer|der|die|das|den|dem|des)\b",
    # Upstream's pattern: the first branch can never match, so every "ال" is removed.
    "ar": r"\sال^|ال",
    "hi": None,
    "zh": None,
}
_WHITESPACE_LANGS = ("en", "es", "hi", "vi", "de", "ar")
_CJK = re.compile(r"[\u4e00-\u9fa5]")
_ASCII_PUNCT = set(string.punctuation)


def accuracy(predictions: Sequence, labels: Sequence) -> float:
  """Percent of positions where prediction equals label (XNLI, PAWS-X, XCOPA, Tatoeba)."""
  if len(predictions) != len(labels):
    raise ValueError(f"{len(predictions)} predictions but {len(labels)} labels; "
                     "pass one per example")
  if not predictions:
    raise ValueError("no examples to score; pass at least one prediction")
  return 100.0 * sum(int(p == l) for p, l in zip(predictions, labels)) / len(predictions)


def tagging_scores(labels: list[list[str]], predictions: list[list[str]]) -> dict[str, float]:
  """seqeval micro chunk ``f1``/``precision``/``recall`` (default mode) plus token ``accuracy``.

  This is what ``evaluate.py`` reports for PAN-X and UD-POS. For UD-POS it is not a tagging
  accuracy: seqeval reads the first character of each UPOS tag as a chunk prefix (``NOUN`` is
  prefix ``N``, type ``OUN``), so consecutive identical tags merge into one chunk, tags starting
  with ``S`` (SCONJ, SYM) close a chunk after one token, and under seqeval>=1.0 ``CCONJ`` and
  ``SCONJ`` both become type ``CONJ``. XTREME's POS "F1" is this chunk F1; token accuracy is
  reported beside it.
  """
  if len(labels) != len(predictions):
    raise ValueError(f"{len(predictions)} predicted sentences but {len(labels)} gold sentences")
  for i, (gold, pred) in enumerate(zip(labels, predictions)):
    if len(gold) != len(pred):
      raise ValueError(f"sentence {i}: {len(pred)} predicted tags but {len(gold)} gold tags")
  tokens = sum(len(s) for s in labels)
  if not tokens:
    raise ValueError("no tokens to score; pass at least one tagged token")
  with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=".*seems not to be NE tag")
    scores = {"f1": 100.0 * _seqeval_f1(labels, predictions),
              "precision": 100.0 * _seqeval_precision(labels, predictions),
              "recall": 100.0 * _seqeval_recall(labels, predictions)}
  correct = sum(g == p for gold, pred in zip(labels, predictions) for g, p in zip(gold, pred))
  scores["accuracy"] = 100.0 * correct / tokens
  return scores


def _is_punct(ch: str) -> bool:
  return ch in _ASCII_PUNCT or unicodedata.category(ch).startswith("P")


def _check_mlqa_lang(lang: str | None) -> None:
  if lang is not None and lang not in MLQA_ARTICLES:
    raise ValueError(f"no MLQA normalisation for language {lang!r}; use one of "
                     f"{', '.join(sorted(MLQA_ARTICLES))}, or lang=None for SQuAD v1.1")


def _mixed_segmentation(text: str) -> list[str]:
  """MLQA zh tokens: each CJK ideograph and punctuation mark alone, other runs whitespace-split."""
  tokens, run = [], ""
  for ch in text:
    if _CJK.search(ch) or _is_punct(ch):
      tokens.extend(run.split())
      run = ""
      tokens.append(ch)
    else:
      run += ch
  tokens.extend(run.split())
  return tokens


def normalize_answer(s: str, lang: str | None = None) -> str:
  """SQuAD v1.1 normalisation when ``lang`` is None, else MLQA's normalisation for ``lang``.

  SQuAD v1.1 (XQuAD, TyDiQA-GoldP): lowercase, drop ASCII punctuation, drop English a/an/the,
  collapse whitespace. MLQA: lowercase, drop Unicode punctuation (category P*) and ASCII
  punctuation, drop the language's articles (``MLQA_ARTICLES``), then whitespace tokens, or for zh
  one token per CJK character.
  """
  _check_mlqa_lang(lang)
  text = s.lower()
  if lang is None:
    text = "".join(ch for ch in text if ch not in _ASCII_PUNCT)
    return " ".join(re.sub(r"\b(a|an|the)\b", " ", text).split())
  text = "".join(ch for ch in text if not _is_punct(ch))
  if MLQA_ARTICLES[lang]:
    text = re.sub(MLQA_ARTICLES[lang], " ", text)
  tokens = text.split() if lang in _WHITESPACE_LANGS else _mixed_segmentation(text)
  return " ".join(t for t in tokens if t.strip())


def exact_match_score(prediction: str, ground_truth: str, lang: str | None = None) -> bool:
  """Whether the normalised strings are equal."""
  return normalize_answer(prediction, lang) == normalize_answer(ground_truth, lang)


def f1_score(prediction: str, ground_truth: str, lang: str | None = None) -> float:
  """Bag-of-tokens F1 in [0, 1] between the normalised strings (0 when nothing overlaps)."""
  pred = normalize_answer(prediction, lang).split()
  gold = normalize_answer(ground_truth, lang).split()
  same = sum((Counter(pred) & Counter(gold)).values())
  if same == 0:
    return 0.0
  precision, recall = same / len(pred), same / len(gold)
  return 2 * precision * recall / (precision + recall)


def _f1_v2(prediction: str, ground_truth: str) -> float:
  """evaluate-v2.0 compute_f1: as ``f1_score``, but 1 when both normalise to no tokens."""
  pred, gold = normalize_answer(prediction).split(), normalize_answer(ground_truth).split()
  if not pred or not gold:
    return float(pred == gold)
  return f1_score(prediction, ground_truth)


def qa_scores(predictions: Mapping[str, str], gold: Mapping[str, Sequence[str]],
              lang: str | None = None, version_2: bool = False) -> dict[str, float]:
  """``exact_match`` and ``f1`` over the gold questions, each the max over that question's answers.

  ``lang=None`` uses SQuAD v1.1 normalisation, a language code MLQA's. As upstream, a question
  without a prediction scores 0 and is reported on stderr; predictions for unknown ids are ignored.

  ``version_2`` scores SQuAD v2.0 as ``evaluate-v2.0.py`` (SQuAD normalisation only): gold answers
  that normalise to "" are dropped, a question left without one has the gold answer "" (an empty
  list marks an unanswerable question), and F1 is 1 when both sides have no tokens. It adds
  ``has_ans_exact_match``/``has_ans_f1`` and ``no_ans_exact_match``/``no_ans_f1`` over the
  questions with and without gold answers, where there are any. Unlike upstream (which fails or
  drops them), missing predictions score 0 here too.
  """
  if not gold:
    raise ValueError("no gold questions to score; pass at least one question id")
  _check_mlqa_lang(lang)
  if version_2 and lang is not None:
    raise ValueError(f"SQuAD v2.0 scoring uses SQuAD normalisation; pass lang=None, not {lang!r}")
  em, f1 = {}, {}
  missing = []
  for qid, answers in gold.items():
    if version_2:
      answers = [a for a in answers if normalize_answer(a)] or [""]
    elif not answers:
      raise ValueError(f"question {qid!r} has no gold answer; every question needs at least one")
    if qid not in predictions:
      missing.append(qid)
      em[qid] = f1[qid] = 0.0
      continue
    pred = predictions[qid]
    em[qid] = max(float(exact_match_score(pred, a, lang)) for a in answers)
    f1[qid] = max(_f1_v2(pred, a) if version_2 else f1_score(pred, a, lang) for a in answers)
  if missing:
    print(f"{len(missing)} of {len(gold)} questions have no prediction and score 0 "
          f"(first: {missing[0]})", file=sys.stderr)

  def mean(qids: list[str], prefix: str = "") -> dict[str, float]:
    return {f"{prefix}exact_match": 100.0 * sum(em[q] for q in qids) / len(qids),
            f"{prefix}f1": 100.0 * sum(f1[q] for q in qids) / len(qids)}

  scores = mean(list(gold))
  if version_2:
    for prefix, has_answer in (("has_ans_", True), ("no_ans_", False)):
      qids = [q for q, answers in gold.items() if bool(answers) == has_answer]
      if qids:
        scores.update(mean(qids, prefix))
  return scores


def bucc_scores(predictions: Iterable[tuple[str, str]],
                gold: Iterable[tuple[str, str]]) -> dict[str, float]:
  """``f1``/``precision``/``recall`` of the predicted (src_id, trg_id) pair set against gold."""
  pred, ref = {tuple(p) for p in predictions}, {tuple(g) for g in gold}
  correct = len(pred & ref)
  if not correct:
    return {"f1": 0.0, "precision": 0.0, "recall": 0.0}
  precision, recall = correct / len(pred), correct / len(ref)
  return {"f1": 200.0 * precision * recall / (precision + recall),
          "precision": 100.0 * precision, "recall": 100.0 * recall}


def mewslix_map(predictions: Mapping[str, Sequence[str]], gold: Mapping[str, Sequence[str]],
                k: int = 20) -> float:
  """Mewsli-X "mAP@20": mean reciprocal rank of the single gold entity in the top ``k``.

  ``gold`` maps each example id to a singleton list (its first entry, stripped, is the gold id); a
  missing prediction scores 0. With one gold entity per mention MRR@k equals mAP@k.
  """
  ranks = []
  for example_id, labels in gold.items():
    target = labels[0].strip()
    top = list(predictions.get(example_id, []))[:k]
    ranks.append(1.0 / (top.index(target) + 1) if target in top else 0.0)
  return 100.0 * sum(ranks) / len(ranks) if ranks else 0.0


def _average_precision_at_k(targets: set, ranked: Sequence, k: int) -> float:
  top = list(ranked)[:k]
  score = hits = 0.0
  for i, pred in enumerate(top):
    if pred in targets and pred not in top[:i]:
      hits += 1.0
      score += hits / (i + 1.0)
  return score / min(len(targets), k)


def lareqa_map(predictions: Mapping[str, Sequence[str]], gold: Mapping[str, Sequence[str]],
               k: int = 20) -> float:
  """LAReQA mAP@k: mean over gold questions of AP@k = sum of precision at each hit / min(#gold, k).

  Repeated candidates count once; a question without a prediction scores 0.
  """
  if not gold:
    raise ValueError("no gold questions to score; pass at least one question id")
  total = 0.0
  for qid, targets in gold.items():
    if not targets:
      raise ValueError(f"question {qid!r} has no gold answer; every question needs at least one")
    total += _average_precision_at_k(set(targets), predictions.get(qid, []), k)
  return 100.0 * total / len(gold)
