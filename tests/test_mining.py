"""BUCC mining against literal numpy ports of upstream, on corpora with planted translations."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from xtjax.metrics import bucc_scores
from xtjax.retrieval.mining import (BUCC_SPLITS, apply_threshold, bucc_optimize, margin_scores,
                                    mine, read_bucc)
from xtjax.sharding import make_mesh


def normalized(x):
  x = np.asarray(x, np.float32)
  return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float64)


def reference_margins(x, y, k):
  """Full-matrix numpy version of upstream's knn + score_candidates (ratio margin)."""
  sim = normalized(x) @ normalized(y).T
  fwd_idx = np.argsort(-sim, axis=1, kind="stable")[:, :min(k, len(y))]
  bwd_idx = np.argsort(-sim.T, axis=1, kind="stable")[:, :min(k, len(x))]
  fwd_mean = np.take_along_axis(sim, fwd_idx, 1).mean(1)
  bwd_mean = np.take_along_axis(sim.T, bwd_idx, 1).mean(1)
  fwd = np.array([[sim[i, j] / ((fwd_mean[i] + bwd_mean[j]) / 2) for j in row]
                  for i, row in enumerate(fwd_idx)])
  bwd = np.array([[sim[i, j] / ((bwd_mean[j] + fwd_mean[i]) / 2) for i in row]
                  for j, row in enumerate(bwd_idx)])
  return fwd, fwd_idx, bwd, bwd_idx


def reference_unify(sentences):
  """text_load_unify + unique_embeddings: per line its distinct sentence, and per distinct
  sentence the row of its last line."""
  index = {}
  inds = [index.setdefault(s, len(index)) for s in sentences]
  last = {u: i for i, u in enumerate(inds)}
  return inds, [last[u] for u in range(len(index))]


def reference_mined(src, trg, x, y, k=4):
  """Upstream mine_bitext(mode='mine', retrieval='max', margin='ratio'): (score, distinct source,
  distinct target) as written to the candidates file."""
  src_inds, src_rows = reference_unify(src)
  trg_inds, trg_rows = reference_unify(trg)
  fwd, fwd_idx, bwd, bwd_idx = reference_margins(x[src_rows], y[trg_rows], k)
  fwd_best = fwd_idx[np.arange(len(fwd)), fwd.argmax(1)]
  bwd_best = bwd_idx[np.arange(len(bwd)), bwd.argmax(1)]
  indices = np.stack([np.concatenate([np.arange(len(fwd)), bwd_best]),
                      np.concatenate([fwd_best, np.arange(len(bwd))])], axis=1)
  scores = np.concatenate([fwd.max(1), bwd.max(1)])
  seen_src, seen_trg, out = set(), set(), []
  for i in np.argsort(-scores, kind="stable"):
    s, t = indices[i]
    if s not in seen_src and t not in seen_trg:
      seen_src.add(s)
      seen_trg.add(t)
      if scores[i] > 0:
        out.append((scores[i], s, t))
  return out, src_inds, trg_inds


def reference_mine(src, trg, x, y, k=4):
  """The mined pairs expanded to every pair of lines holding them (xtjax's default)."""
  mined, src_inds, trg_inds = reference_mined(src, trg, x, y, k)
  return [(score, a, b) for score, s, t in mined for a in range(len(src)) if src_inds[a] == s
          for b in range(len(trg)) if trg_inds[b] == t]


def reference_upstream_ids(src, trg, x, y, k=4):
  """utils_retrieve.py read_candidate2score: candidate texts stripped and mapped back through
  read_sent2id, which drops every stripped text found on more than one line."""
  def sent2id(sentences):
    first, repeated = {}, set()
    for line, sentence in enumerate(sentences):
      sentence = sentence.strip()
      if sentence in first:
        repeated.add(sentence)
      else:
        first[sentence] = line
    return {s: line for s, line in first.items() if s not in repeated}
  mined, src_inds, trg_inds = reference_mined(src, trg, x, y, k)
  src_text = {src_inds[a]: src[a] for a in range(len(src))}
  trg_text = {trg_inds[b]: trg[b] for b in range(len(trg))}
  src_ids, trg_ids = sent2id(src), sent2id(trg)
  return [(score, src_ids[src_text[s].strip()], trg_ids[trg_text[t].strip()])
          for score, s, t in mined
          if src_text[s].strip() in src_ids and trg_text[t].strip() in trg_ids]


def assert_same_candidates(got, want):
  assert [(s, t) for _, s, t in got] == [(s, t) for _, s, t in want]
  np.testing.assert_allclose([c[0] for c in got], [c[0] for c in want], rtol=1e-5)


def planted_corpus(seed, n_src=300, n_planted=200, n_distract=150, d=32, noise=0.1):
  """Sources are random; targets are noisy copies of n_planted sources among distractors."""
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(n_src, d)).astype(np.float32)
  planted = rng.permutation(n_src)[:n_planted]
  y = np.concatenate([x[planted] + noise * rng.normal(size=(n_planted, d)),
                      rng.normal(size=(n_distract, d))]).astype(np.float32)
  order = rng.permutation(len(y))
  y = y[order]
  gold = {(f"s{planted[j]}", f"t{i}") for i, j in enumerate(order) if j < n_planted}
  return x, y, gold


@pytest.mark.parametrize("n,m,k", [(60, 45, 4), (30, 3, 4), (5, 40, 1)])
def test_margin_scores_match_numpy(n, m, k):
  rng = np.random.default_rng(n + m)
  x = rng.normal(size=(n, 16)).astype(np.float32)
  y = rng.normal(size=(m, 16)).astype(np.float32)
  got = margin_scores(x, y, k, block_size=8)
  want = reference_margins(x, y, k)
  for g, w in zip(got, want):
    assert g.shape == w.shape
    np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(got.fwd_indices, want[1])
  np.testing.assert_array_equal(got.bwd_indices, want[3])


def test_mining_finds_planted_pairs():
  x, y, gold = planted_corpus(0)
  src = [f"src {i}" for i in range(len(x))]
  trg = [f"trg {j}" for j in range(len(y))]
  got = mine(src, trg, x, y)
  assert_same_candidates(got, reference_mine(src, trg, x, y))
  cands = [(score, f"s{i}", f"t{j}") for score, i, j in got]
  assert {(s, t) for _, s, t in cands[:len(gold)]} == gold
  threshold, f1, precision, recall = bucc_optimize(cands, gold)
  assert (f1, precision, recall) == (100.0, 100.0, 100.0)
  assert cands[len(gold)][0] < threshold < cands[len(gold) - 1][0]
  assert set(apply_threshold(cands, threshold)) == gold


@pytest.mark.parametrize("mesh,block_size", [
    (lambda: None, 7), (lambda: make_mesh([("keys", 8)]), 7),
    (lambda: make_mesh([("keys", 8)]), 64), (lambda: make_mesh([("data", 2), ("fsdp", 4)]), 5)])
def test_mesh_and_block_size_do_not_change_mining(mesh, block_size):
  x, y, _ = planted_corpus(1, n_src=90, n_planted=50, n_distract=40)
  src, trg = [str(i) for i in range(len(x))], [str(j) for j in range(len(y))]
  base = mine(src, trg, x, y)
  got = mine(src, trg, x, y, mesh=mesh(), block_size=block_size)
  assert_same_candidates(got, base)
  base_margins = margin_scores(x, y)
  got_margins = margin_scores(x, y, mesh=mesh(), block_size=block_size)
  for g, b in zip(got_margins, base_margins):
    np.testing.assert_allclose(g, b, rtol=1e-6)


def test_duplicate_sentences_are_unified_then_expanded():
  x, y, _ = planted_corpus(2, n_src=40, n_planted=30, n_distract=10, d=16)
  src = [f"src {i}" for i in range(len(x))]
  trg = [f"trg {j}" for j in range(len(y))]
  # Source lines 0, 5 and 17 are one sentence (the same embedding, as a deterministic encoder
  # gives), and target lines 3 and 8 another one, a noisy translation of it.
  for i in (5, 17):
    src[i], x[i] = src[0], x[0]
  trg[3] = trg[8] = "the translation"
  y[3] = y[8] = x[0] + 0.05
  got = mine(src, trg, x, y)
  assert_same_candidates(got, reference_mine(src, trg, x, y))
  dup = [c for c in got if c[1] in (0, 5, 17)]
  assert [(s, t) for _, s, t in dup] == [(0, 3), (0, 8), (5, 3), (5, 8), (17, 3), (17, 8)]
  assert len({score for score, _, _ in dup}) == 1
  # Without unification the repeated sentence fills its own neighbourhoods: margins differ.
  assert not np.allclose(margin_scores(x, y).fwd_scores[0],
                         reference_margins(x[[i for i in range(40) if i not in (5, 17)]],
                                           y[[j for j in range(len(y)) if j != 8]], 4)[0][0])


def test_upstream_duplicates_switch_drops_repeated_sentences():
  x, y, _ = planted_corpus(2, n_src=40, n_planted=30, n_distract=10, d=16)
  src = [f"src {i}" for i in range(len(x))]
  trg = [f"trg {j}" for j in range(len(y))]
  for i in (5, 17):  # one sentence on three lines
    src[i], x[i] = src[0], x[0]
  trg[3] = trg[8] = "the translation"
  y[3] = y[8] = x[0] + 0.05
  # Two lines that differ only by a trailing space: distinct when mined, one text once stripped.
  src[21] = src[20] + " "
  got = mine(src, trg, x, y, duplicates="drop")
  assert_same_candidates(got, reference_upstream_ids(src, trg, x, y))
  assert not {s for _, s, _ in got} & {0, 5, 17, 20, 21}
  assert not {t for _, _, t in got} & {3, 8}
  expanded = mine(src, trg, x, y)
  assert {(s, t) for _, s, t in got} < {(s, t) for _, s, t in expanded}
  assert {s for _, s, _ in expanded} >= {0, 5, 17}
  with pytest.raises(ValueError, match="'expand'.*'drop'"):
    mine(src, trg, x, y, duplicates="keep")


def test_mine_checks_lengths():
  with pytest.raises(ValueError, match="3 source sentences for 2 embeddings"):
    mine(["a", "b", "c"], ["x"], np.ones((2, 4)), np.ones((1, 4)))


def test_bucc_optimize_hand_example():
  cands = [(0.9, "a", "x"), (0.8, "b", "y"), (0.7, "c", "z"), (0.6, "d", "w"), (0.5, "e", "v")]
  gold = {("a", "x"), ("b", "y"), ("d", "w"), ("f", "u")}
  # Prefix F1: 0.4, 0.667, 0.571, 0.75 (3 correct of 4 kept, 3 of 4 gold), 0.667.
  threshold, f1, precision, recall = bucc_optimize(cands, gold)
  assert threshold == pytest.approx(0.55)
  assert (f1, precision, recall) == pytest.approx((75.0, 75.0, 75.0))
  kept = apply_threshold(cands, threshold)
  assert kept == [("a", "x"), ("b", "y"), ("c", "z"), ("d", "w")]
  assert bucc_scores(kept, gold) == pytest.approx(
      {"f1": 75.0, "precision": 75.0, "recall": 75.0})


def test_bucc_optimize_edge_cases():
  # Equal scores cannot be split by a threshold: upstream would report F1 100 at 0.5 here,
  # but thresholding at 0.5 keeps all four pairs (F1 66.7); the first cut is as good.
  cands = [(0.9, "a", "x"), (0.5, "b", "y"), (0.5, "c", "z"), (0.5, "d", "w")]
  gold = {("a", "x"), ("b", "y")}
  threshold, f1, precision, recall = bucc_optimize(cands, gold)
  assert threshold == pytest.approx(0.7) and f1 == pytest.approx(200 / 3)
  assert bucc_scores(apply_threshold(cands, threshold), gold)["f1"] == pytest.approx(f1)
  # The best cut is the last candidate (upstream: IndexError).
  assert bucc_optimize([(0.9, "a", "x"), (0.8, "b", "y")], gold) == (0.8, 100.0, 100.0, 100.0)
  # Repeated pairs keep their highest score; no correct pair extracts nothing.
  assert bucc_optimize([(0.3, "a", "x"), (0.9, "a", "x"), (0.5, "q", "r")], gold)[0] == 0.7
  assert bucc_optimize([(0.9, "q", "r")], gold) == (float("inf"), 0.0, 0.0, 0.0)
  assert apply_threshold([(0.9, "q", "r")], float("inf")) == []
  with pytest.raises(ValueError, match="gold"):
    bucc_optimize(cands, set())


def write_bucc(root, lang, split, src, trg, gold):
  folder = root / "bucc2018" / f"{lang}-en"
  folder.mkdir(parents=True, exist_ok=True)
  prefix = folder / f"{lang}-en.{BUCC_SPLITS[split]}"
  for ext, rows in ((lang, src), ("en", trg), ("gold", sorted(gold))):
    (folder / f"{prefix.name}.{ext}").write_text("".join(f"{a}\t{b}\n" for a, b in rows),
                                                 encoding="utf-8")


def test_read_bucc_official_layout(tmp_path):
  src = [("de-000001", "Ein Satz.\tmit Tab"), ("de-000002", "Zwei.")]
  trg = [("en-000001", "Two."), ("en-000002", "A sentence.")]
  write_bucc(tmp_path, "de", "dev", src, trg, {("de-000001", "en-000002")})
  write_bucc(tmp_path, "de", "test", src[:1], trg[:1], {("de-000001", "en-000001")})
  for root in (tmp_path, tmp_path / "bucc2018"):
    dev = read_bucc(root, "de", "dev")
    assert dev.src_ids == ["de-000001", "de-000002"]
    assert dev.src_sentences == ["Ein Satz.\tmit Tab", "Zwei."]
    assert dev.trg_ids == ["en-000001", "en-000002"] and dev.trg_sentences[1] == "A sentence."
    assert dev.gold == {("de-000001", "en-000002")}
  assert (tmp_path / "bucc2018/de-en/de-en.training.de").is_file()
  assert read_bucc(tmp_path, "de", "test").gold == {("de-000001", "en-000001")}


def test_read_bucc_errors(tmp_path):
  with pytest.raises(FileNotFoundError) as error:
    read_bucc(tmp_path, "fr", "test")
  message = str(error.value)
  assert "\n" not in message and "fr-en/fr-en.training.fr" in message
  assert "comparable.limsi.fr/bucc2018" in message and "bucc2018-fr-en.training-gold" in message
  with pytest.raises(ValueError, match="'dev'"):
    read_bucc(tmp_path, "fr", "training")
  write_bucc(tmp_path, "fr", "dev", [("fr-1", "a")], [("en-1", "b")], set())
  (tmp_path / "bucc2018/fr-en/fr-en.sample.en").write_text("no tab here\n")
  with pytest.raises(ValueError, match=r"fr-en.sample.en:1: expected 'id, sentence'"):
    read_bucc(tmp_path, "fr", "dev")


def test_dev_threshold_applied_to_test(tmp_path):
  """The full protocol on files: mine both splits, tune on dev, score test."""
  rng = np.random.default_rng(3)
  embeddings = {}
  for split, seed in (("dev", 4), ("test", 5)):
    x, y, gold = planted_corpus(seed, n_src=80, n_planted=50, n_distract=40)
    src = [(f"de-{i:06d}", f"satz {split} {i}") for i in range(len(x))]
    trg = [(f"en-{j:06d}", f"sentence {split} {j}") for j in range(len(y))]
    gold = {(f"de-{s[1:]:0>6}", f"en-{t[1:]:0>6}") for s, t in gold}
    write_bucc(tmp_path, "de", split, src, trg, gold)
    embeddings[split] = (x, y + 0.02 * rng.normal(size=y.shape).astype(np.float32))

  def candidates(split):
    data = read_bucc(tmp_path, "de", split)
    return data, [(s, data.src_ids[i], data.trg_ids[j])
                  for s, i, j in mine(data.src_sentences, data.trg_sentences, *embeddings[split],
                                      mesh=make_mesh([("keys", len(jax.devices()))]))]

  dev, dev_cands = candidates("dev")
  threshold, f1, _, _ = bucc_optimize(dev_cands, dev.gold)
  assert f1 == 100.0
  test, test_cands = candidates("test")
  assert bucc_scores(apply_threshold(test_cands, threshold), test.gold)["f1"] == 100.0
