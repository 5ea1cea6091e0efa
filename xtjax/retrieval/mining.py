"""BUCC 2018 bitext mining: LASER ``mine_bitexts.py`` / XTREME ``third_party/utils_retrieve.py``,
reimplemented on `xtjax.retrieval.search.knn` without upstream's bugs.

Pipeline for one language pair (threshold tuned on dev, applied to test)::

  dev = read_bucc(root, "de", "dev")
  cands = [(s, dev.src_ids[i], dev.trg_ids[j])
           for s, i, j in mine(dev.src_sentences, dev.trg_sentences, dev_src_emb, dev_trg_emb)]
  threshold, f1, precision, recall = bucc_optimize(cands, dev.gold)
  predictions = apply_threshold(test_cands, threshold)  # score with xtjax.metrics.bucc_scores

Upstream's mining (``mine_bitext(mode='mine', retrieval='max', margin='ratio', neighborhood=4,
dist='cosine')``) is kept exactly, up to float32 rounding of the similarities. Where upstream
errs, this module differs, as documented on each function:

- ``bucc_eval`` maps mined sentences back to ids by text and drops every sentence that occurs
  more than once in its file (``read_sent2id``, ``utils_retrieve.py`` lines 266-280), so gold
  pairs with such a sentence can never be found. Here each mined unique sentence maps back to
  every line (and so every id) that holds it; ``mine(..., duplicates="drop")`` (config
  ``data.bucc_duplicates``) reproduces upstream instead, to match published numbers exactly.
- ``bucc_optimize`` raises IndexError when the best cut is the last candidate, and can cut
  between equal scores, which a threshold cannot do. Here cuts are only between distinct scores,
  so the reported F1 is the one ``apply_threshold`` reproduces.
- The driver (``run_bucc2018.sh`` -> ``third_party/evaluate_retrieval.py``) writes dev and test
  candidates to one file name (test reuses dev's), passes a wrong target id file and an
  undefined ``threshold``; here mining, tuning and thresholding are separate calls.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
from jax.sharding import Mesh

from xtjax.data import utf8
from xtjax.retrieval.search import knn

DUPLICATES = ("expand", "drop")  # xtjax's fix, upstream's read_sent2id
# XTREME's names for the official archives: "sample" (with gold) is dev, and "training" (with
# gold) is test, because the official "test" gold was never released.
BUCC_SPLITS = {"dev": "sample", "test": "training"}


class Margins(NamedTuple):
  """Ratio-margin scores of the ``k`` nearest candidates, forward (x -> y) and backward."""
  fwd_scores: np.ndarray  # [n, k] float64: score of x_i with y_{fwd_indices[i, c]}
  fwd_indices: np.ndarray  # [n, k] int32, nearest first
  bwd_scores: np.ndarray  # [m, k] float64: score of y_j with x_{bwd_indices[j, c]}
  bwd_indices: np.ndarray  # [m, k] int32, nearest first


class BuccSplit(NamedTuple):
  """One BUCC split: sentences with their ids per side, and the gold (src_id, trg_id) pairs."""
  src_ids: list[str]
  src_sentences: list[str]
  trg_ids: list[str]
  trg_sentences: list[str]
  gold: set[tuple[str, str]]


def margin_scores(x, y, k: int = 4, *, mesh: Mesh | None = None,
                  block_size: int = 4096) -> Margins:
  """Ratio margin ``cos(x, y) / ((mean_fwd(x) + mean_bwd(y)) / 2)`` of every kNN candidate.

  As upstream: x and y are L2-normalised; ``mean_fwd(x)`` is the mean cosine of x's
  ``min(k, len(y))`` nearest y, and ``mean_bwd(y)`` that of y's ``min(k, len(x))`` nearest x.
  The candidates are the forward neighbours of each x and the backward neighbours of each y.
  The cosines come from the kNN search (float32); means and ratios are computed in float64.
  """
  fwd_sim, fwd_idx = knn(x, y, min(k, len(y)), mesh=mesh, block_size=block_size)
  bwd_sim, bwd_idx = knn(y, x, min(k, len(x)), mesh=mesh, block_size=block_size)
  fwd_sim, bwd_sim = fwd_sim.astype(np.float64), bwd_sim.astype(np.float64)
  fwd_mean, bwd_mean = fwd_sim.mean(axis=1), bwd_sim.mean(axis=1)
  return Margins(fwd_sim / ((fwd_mean[:, None] + bwd_mean[fwd_idx]) / 2), fwd_idx,
                 bwd_sim / ((bwd_mean[:, None] + fwd_mean[bwd_idx]) / 2), bwd_idx)


def max_retrieval(margins: Margins, threshold: float = 0.0) -> list[tuple[float, int, int]]:
  """Upstream's ``retrieval='max'``: one-to-one (score, x, y) pairs, best first.

  Each x proposes its best-scoring forward candidate and each y its best backward candidate
  (the first in kNN order on equal scores, as ``argmax``). The pooled proposals are visited by
  descending score, forward ones before backward ones and then by index on equal scores
  (upstream's unstable sort leaves that order open); a pair is kept when neither its x nor its
  y was already used, and reported when its score exceeds ``threshold``. As upstream, a pair at
  or below the threshold still uses up its x and y.
  """
  n, m = len(margins.fwd_scores), len(margins.bwd_scores)
  fwd_best = margins.fwd_indices[np.arange(n), margins.fwd_scores.argmax(axis=1)]
  bwd_best = margins.bwd_indices[np.arange(m), margins.bwd_scores.argmax(axis=1)]
  src = np.concatenate([np.arange(n), bwd_best])
  trg = np.concatenate([fwd_best, np.arange(m)])
  scores = np.concatenate([margins.fwd_scores.max(axis=1), margins.bwd_scores.max(axis=1)])
  seen_src, seen_trg, pairs = set(), set(), []
  for i in np.argsort(-scores, kind="stable"):
    s, t = int(src[i]), int(trg[i])
    if s not in seen_src and t not in seen_trg:
      seen_src.add(s)
      seen_trg.add(t)
      if scores[i] > threshold:
        pairs.append((float(scores[i]), s, t))
  return pairs


def _unify(sentences: Sequence[str], duplicates: str) -> tuple[list[list[int]], list[int]]:
  """Lines of each distinct sentence (first-occurrence order) and the row embedding each one.

  The row is the sentence's last line, as upstream's ``unique_embeddings``. With ``duplicates``
  "drop" a sentence keeps its line only when no other line holds the same stripped text, as
  upstream's ``read_sent2id``; its embedding still takes part in the search.
  """
  lines: dict[str, list[int]] = {}
  for i, sentence in enumerate(sentences):
    lines.setdefault(sentence, []).append(i)
  groups = list(lines.values())
  rows = [g[-1] for g in groups]
  if duplicates == "drop":
    stripped = Counter(s.strip() for s in sentences)
    groups = [g if stripped[sentences[g[0]].strip()] == 1 else [] for g in groups]
  return groups, rows


def mine(src_sentences: Sequence[str], trg_sentences: Sequence[str], src_emb, trg_emb, *,
         k: int = 4, threshold: float = 0.0, duplicates: str = "expand",
         mesh: Mesh | None = None, block_size: int = 4096) -> list[tuple[float, int, int]]:
  """Mined (score, src_line, trg_line) candidates, best first (upstream ``mode='mine'``).

  Embedding row i belongs to line i. Identical sentences are unified before the search, as
  upstream's ``--unify`` (which also changes the margins: a repeated sentence would otherwise
  fill its own neighbourhoods), then :func:`max_retrieval` pairs the distinct sentences with
  ratio margins over ``k`` neighbours. With ``duplicates`` "expand" each mined pair is expanded
  to every (src_line, trg_line) holding those two sentences, in line order; "drop" is upstream's
  ``bucc_eval``: a pair is kept only when each of its sentences, stripped, is on one line alone.
  """
  if duplicates not in DUPLICATES:
    raise ValueError(f"BUCC duplicates {duplicates!r}: use 'expand' (every line of a repeated "
                     "sentence) or 'drop' (upstream: repeated sentences never mined)")
  if len(src_sentences) != len(src_emb) or len(trg_sentences) != len(trg_emb):
    raise ValueError(f"mine: {len(src_sentences)} source sentences for {len(src_emb)} "
                     f"embeddings, {len(trg_sentences)} target sentences for {len(trg_emb)}")
  src_lines, src_rows = _unify(src_sentences, duplicates)
  trg_lines, trg_rows = _unify(trg_sentences, duplicates)
  margins = margin_scores(np.asarray(src_emb)[src_rows], np.asarray(trg_emb)[trg_rows], k,
                          mesh=mesh, block_size=block_size)
  return [(score, i, j) for score, s, t in max_retrieval(margins, threshold)
          for i in src_lines[s] for j in trg_lines[t]]


def _best_scores(candidates: Iterable[tuple[float, str, str]]) -> dict[tuple[str, str], float]:
  """Highest score per (src, trg) pair, in first-seen order (upstream ``read_candidate2score``)."""
  best: dict[tuple[str, str], float] = {}
  for score, src, trg in candidates:
    best[src, trg] = max(float(score), best.get((src, trg), -math.inf))
  return best


def bucc_optimize(candidates: Iterable[tuple[float, str, str]],
                  gold: Iterable[tuple[str, str]]) -> tuple[float, float, float, float]:
  """(threshold, F1, precision, recall) of the F1-best score cut; the last three in percent.

  As upstream ``bucc_optimize``: candidates (the highest score per pair) are sorted by
  descending score and every prefix is scored against ``gold``; the threshold is the midpoint
  between the last kept score and the next one, so ``apply_threshold`` keeps exactly that
  prefix. Unlike upstream, a cut never splits equal scores, the best cut may be the last
  candidate (threshold = its score), and with no correct candidate the threshold is +inf
  (nothing is extracted) instead of 0.
  """
  gold = {tuple(g) for g in gold}
  if not gold:
    raise ValueError("bucc_optimize needs at least one gold pair")
  items = sorted(_best_scores(candidates).items(), key=lambda item: -item[1])
  best, best_f1, correct = (math.inf, 0.0, 0.0, 0.0), 0.0, 0
  for i, (pair, score) in enumerate(items):
    correct += pair in gold
    following = items[i + 1][1] if i + 1 < len(items) else -math.inf
    if following == score or not correct:
      continue
    precision, recall = correct / (i + 1), correct / len(gold)
    f1 = 2 * precision * recall / (precision + recall)
    if f1 > best_f1:
      best_f1, middle = f1, (score + following) / 2
      threshold = middle if following < middle < score else score
      best = (threshold, 100 * f1, 100 * precision, 100 * recall)
  return best


def apply_threshold(candidates: Iterable[tuple[float, str, str]],
                    threshold: float) -> list[tuple[str, str]]:
  """Distinct (src, trg) pairs whose highest score is at least ``threshold`` (``bucc_extract``)."""
  return [pair for pair, score in _best_scores(candidates).items() if score >= threshold]


def _read_tsv(path: Path, what: str) -> list[tuple[str, str]]:
  rows = []
  for number, line in enumerate(utf8.read_lines(path), 1):
    fields = line.rstrip("\r\n").split("\t", 1)
    if len(fields) != 2:
      raise ValueError(f"{path}:{number}: expected '{what}' separated by a tab")
    rows.append((fields[0], fields[1]))
  return rows


def read_bucc(directory: str | Path, lang: str, split: str) -> BuccSplit:
  """One language pair of the official BUCC 2018 archives (``lang``-en, English as target).

  ``directory`` is the extracted ``bucc2018`` folder or the folder holding it; files are
  ``{lang}-en/{lang}-en.{name}.{lang|en}`` (``id<TAB>sentence`` lines) and ``.gold``
  (``src_id<TAB>trg_id``), where ``name`` is ``BUCC_SPLITS[split]``: XTREME's "dev" is the
  official "sample" set and its "test" the official "training" set.
  """
  if split not in BUCC_SPLITS:
    raise ValueError(f"BUCC split {split!r}: use 'dev' (official sample) or 'test' "
                     f"(official training)")
  root = Path(directory)
  if (root / "bucc2018").is_dir():
    root = root / "bucc2018"
  name = BUCC_SPLITS[split]
  prefix = root / f"{lang}-en" / f"{lang}-en.{name}"
  paths = [prefix.with_name(f"{prefix.name}.{ext}") for ext in (lang, "en", "gold")]
  for path in paths:
    if not path.is_file():
      raise FileNotFoundError(
          f"BUCC 2018 file {path} not found: download bucc2018-{lang}-en.{name}-gold.tar.bz2 "
          f"from https://comparable.limsi.fr/bucc2018/, extract it and pass the bucc2018 "
          f"folder (or its parent)")
  src, trg = _read_tsv(paths[0], "id, sentence"), _read_tsv(paths[1], "id, sentence")
  gold = set(_read_tsv(paths[2], "source id, target id"))
  return BuccSplit([i for i, _ in src], [s for _, s in src], [i for i, _ in trg],
                   [s for _, s in trg], gold)
