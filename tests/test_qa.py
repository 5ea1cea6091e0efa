"""QA windows carry exact answer labels, and decoding recovers the original-context substring."""

from __future__ import annotations

import re

import numpy as np
import pytest

from xtjax.data import qa, synthetic
from xtjax.models.loading import load_tokenizer

_SENTENCES = ("The river flows past the old mill near the northern town.",
              "A small fox sleeps under the green bridge every night.",
              "Farmers bring fresh bread and cheese to the market on Monday.",
              "The tower clock was built by a carpenter named Walter Brown.",
              "Children swim in the cold lake when summer finally arrives.")
LONG = " ".join(_SENTENCES * 2)
_QUESTIONS = ("Where does the fox sleep?", "Who built the clock?", "What do farmers bring?",
              "When is the market?", "Who swims?")
_ZH = ("他说“北京是中国的首都”。", "据说上海是中国最大的城市。", "我们知道北京很大，上海也很大。",
       "他们说首都是北京。", "中国的首都在哪里？", "哪里是中国最大的城市？")
ZH_QUESTION = "中国的首都在哪里？"
L, STRIDE = 32, 8


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
  """Word pieces for English with punctuation split off, single characters for zh (written with
  spaces for training only). 北 never starts a training word, so a context starting with 北京
  tokenises as a bare "▁" then 北, as XLM-R does for many zh/ja/th words."""
  out = tmp_path_factory.mktemp("tok")
  en = [re.sub(r"([^\w\s])", r" \1 ", s) for s in _SENTENCES + _QUESTIONS]
  zh = [" ".join(s).replace("北 京", "在北京") for s in _ZH]
  synthetic.train_tokenizer((en + zh) * 3, out, vocab_size=400)
  return load_tokenizer(str(out))


def _batch(rows):
  """SQuAD-schema batch from (question, context, answer text or None) rows."""
  answers = [{"text": [a], "answer_start": [c.index(a)]} if a else {"text": [], "answer_start": []}
             for _, c, a in rows]
  return dict(id=[f"q{i}" for i in range(len(rows))], question=[q for q, _, _ in rows],
              context=[c for _, c, _ in rows], answers=answers)


def _context(offsets):
  return offsets[offsets[:, 0] >= 0]


def _covers(offsets, start, end):
  ctx = _context(offsets)
  return ctx[0, 0] <= start and ctx[-1, 1] >= end


def test_long_context_windows_label_only_windows_with_the_whole_answer(tok):
  windows = qa.eval_features(_batch([("Where does the fox sleep?", LONG, None)]), tok, L, STRIDE)
  offs = windows["offsets"]
  assert len(offs) >= 4 and (windows["example_index"] == 0).all()
  for a, b in zip(offs, offs[1:]):  # consecutive windows share exactly `stride` context tokens
    assert (_context(a)[-STRIDE:] == _context(b)[:STRIDE]).all()
    assert _context(b)[STRIDE, 0] > _context(a)[-1, 0]
  # An answer from window 0's second-to-last token to the first token past it straddles the
  # boundary; window 1 holds it whole because the stride overlap covers its start.
  w0, w1 = _context(offs[0]), _context(offs[1])
  lo, hi = w0[-2, 0], w1[STRIDE, 1]
  straddle = LONG[lo:hi]
  assert not _covers(offs[0], lo, hi) and _covers(offs[1], lo, hi)
  inner = "green bridge every night"
  batch = _batch([("Where does the fox sleep?", LONG, straddle),
                  ("Where does the fox sleep?", LONG, inner)])
  feats = qa.train_features(batch, tok, L, STRIDE)
  assert (feats["input_ids"] == np.concatenate([windows["input_ids"]] * 2)).all()
  assert feats["input_ids"].dtype == np.int32 and feats["start_position"].shape == (2 * len(offs),)
  for row, answer in enumerate([straddle, inner]):
    start = LONG.index(answer)
    labelled = []
    for w in range(len(offs)):
      f = row * len(offs) + w
      s, e = feats["start_position"][f], feats["end_position"][f]
      if _covers(offs[w], start, start + len(answer)):
        assert 0 < s <= e
        assert LONG[offs[w][s, 0]:offs[w][e, 1]] == answer
        labelled.append(w)
      else:
        assert s == e == 0
    assert labelled
  assert feats["start_position"][0] == 0 and feats["start_position"][1] > 0


def _logits(feats, spans, value=8.0):
  """Zero logits with (feature, start token, end token, bonus) spans raised."""
  start = np.zeros(feats["offsets"].shape[:2], np.float32)
  end = np.zeros_like(start)
  for f, s, e, bonus in spans:
    start[f, s] += value + bonus
    end[f, e] += value + bonus
  return start, end


def _token(offsets, char, side):
  """Position of the context token whose start (side 0) or end (side 1) is at ``char``."""
  (pos,) = np.nonzero(offsets[:, side] == char)
  assert len(pos) == 1, (char, offsets)
  return int(pos[0])


def test_decode_picks_the_best_window_in_any_feature_order(tok):
  rows = [("Where does the fox sleep?", LONG, None), ("Who built the clock?", _SENTENCES[3], None)]
  feats = qa.eval_features(_batch(rows), tok, L, STRIDE)
  long_feats = np.nonzero(feats["example_index"] == 0)[0]
  offs = feats["offsets"]
  weak, strong = "old mill", "Walter Brown"
  f_weak = long_feats[0]
  f_strong = next(f for f in long_feats if _covers(offs[f], LONG.index(strong),
                                                    LONG.index(strong) + len(strong)))
  assert f_strong != f_weak
  spans = []
  for f, text, bonus in [(f_weak, weak, 1.0), (f_strong, strong, 2.0)]:
    a = LONG.index(text)
    spans.append((f, _token(offs[f], a, 0), _token(offs[f], a + len(text), 1), bonus))
  (short,) = np.nonzero(feats["example_index"] == 1)[0]
  start, end = _logits(feats, spans)
  # The short example peaks at <s>, outside the context: only lower pairs (-2) are valid.
  start[short] = end[short] = -1.0
  start[short, 0] = end[short, 0] = 50.0
  ids, contexts = ["long", "short"], [LONG, _SENTENCES[3]]
  got = qa.decode(contexts, ids, feats, start, end)
  assert got["long"] == strong
  assert got["short"] != "" and got["short"] in _SENTENCES[3]
  perm = np.random.default_rng(0).permutation(len(start))
  shuffled = {k: v[perm] for k, v in feats.items()}
  assert qa.decode(contexts, ids, shuffled, start[perm], end[perm]) == got
  # With one candidate per side the short example has no valid pair left, but still an entry.
  none = qa.decode(contexts, ids, feats, start, end, n_best=1)
  assert none == {"long": strong, "short": ""}
  trimmed = {k: (v[:, :20] if v.ndim > 1 else v) for k, v in feats.items()}
  assert qa.decode(contexts, ids, trimmed, start[:, :20], end[:, :20])["short"] != ""
  with pytest.raises(ValueError):
    qa.decode(contexts, ids, trimmed, start, end)


def test_zh_answers_are_exact_substrings_of_the_original_context(tok):
  inner_ctx = "他说：“北京”是中国的首都，上海很大。"
  start_ctx = "北京是中国的首都。上海很大。"
  batch = _batch([(ZH_QUESTION, inner_ctx, "北京"), (ZH_QUESTION, start_ctx, "北京"),
                  (ZH_QUESTION, start_ctx, "上海")])
  feats = qa.train_features(batch, tok, 64, 16)
  evals = qa.eval_features(batch, tok, 64, 16)
  assert len(evals["offsets"]) == 3
  first_ctx = np.argmax(evals["offsets"][1][:, 0] >= 0)
  # The bare "▁" before 北 gets the zero-width offsets (0, 0); 北 is the labelled start token.
  assert tok.convert_ids_to_tokens(int(evals["input_ids"][1][first_ctx])) == "▁"
  assert tuple(evals["offsets"][1][first_ctx]) == (0, 0)
  for f, (ctx, answer) in enumerate(zip(batch["context"], ["北京", "北京", "上海"])):
    s, e = feats["start_position"][f], feats["end_position"][f]
    offs = evals["offsets"][f]
    assert 0 < s <= e and ctx[offs[s, 0]:offs[e, 1]] == answer
    start, end = _logits(evals, [(f, s, e, 0.0)])
    assert qa.decode(batch["context"], batch["id"], evals, start, end)[batch["id"][f]] == answer
  assert feats["start_position"][1] == first_ctx + 1
  # A span starting on the bare "▁" still cuts 北京; one ending on it has no text and is skipped.
  s, e = feats["start_position"][1], feats["end_position"][1]
  start, end = _logits(evals, [(1, first_ctx, e, 0.0)])
  assert qa.decode(batch["context"], batch["id"], evals, start, end)["q1"] == "北京"
  start, end = _logits(evals, [(1, first_ctx, first_ctx, 5.0), (1, s, e, 0.0)])
  assert qa.decode(batch["context"], batch["id"], evals, start, end)["q1"] == "北京"


def test_decode_skips_reversed_and_overlong_spans(tok):
  ctx = _SENTENCES[2]
  feats = qa.eval_features(_batch([("What do farmers bring?", ctx, None)]), tok, 64, 16)
  offs = feats["offsets"][0]
  pos = {w: (_token(offs, ctx.index(w), 0), _token(offs, ctx.index(w) + len(w), 1))
         for w in ["Farmers", "bread", "cheese", "market", "Monday."]}
  start = np.zeros((1, offs.shape[0]), np.float32)
  end = np.zeros_like(start)
  start[0, 0] = end[0, 0] = 100.0  # <s>: not a context token
  start[0, pos["market"][0]] = 10.0  # best start ...
  end[0, pos["bread"][1]] = 9.0  # ... and best end, but before it
  end[0, pos["market"][1]] = 1.0
  assert qa.decode([ctx], ["x"], feats, start, end)["x"] == "market"
  end[0, pos["bread"][1]] = 0.0
  start[0, pos["bread"][0]] = 10.5  # bread ... market beats market alone but is too long for 3
  end[0, pos["market"][1]] = 8.0
  assert pos["market"][1] - pos["bread"][0] + 1 > 3
  assert qa.decode([ctx], ["x"], feats, start, end)["x"] == "bread and cheese to the market"
  assert qa.decode([ctx], ["x"], feats, start, end, max_answer_length=3)["x"] == "market"


def test_answer_problem_reports_malformed_rows():
  ctx = "Anna has 5 red apples."
  assert qa.answer_problem(ctx, {"text": ["5 red apples"], "answer_start": [9]}) == ""
  assert qa.answer_problem(ctx, {"text": ["5 red apples"], "answer_start": [8]}) == (
      "answer not in context")
  assert qa.answer_problem(ctx, {"text": ["Anna", "apples"], "answer_start": [0, 14]}) == (
      "answer not in context")
  assert qa.answer_problem(ctx, {"text": ["apples"], "answer_start": [40]}) == (
      "answer_start out of range")
  assert qa.answer_problem(ctx, {"text": [], "answer_start": []}) == "no answer"
  assert qa.answer_problem(ctx, {"text": [], "answer_start": []}, require_answer=False) == ""


def test_train_positions_decode_back_to_the_gold_answers(tok):
  rows = [("Who built the clock?", LONG, "Walter Brown"),
          ("Where does the fox sleep?", LONG, "under the green bridge"),
          ("When is the market?", _SENTENCES[2], "Monday"),
          (ZH_QUESTION, "他们说首都是北京。", "北京"),
          (ZH_QUESTION, "据说上海是中国最大的城市。", "上海"),
          ("Who swims?", _SENTENCES[4], "Children")]
  batch = _batch(rows)
  assert all(qa.answer_problem(c, a) == "" for c, a in zip(batch["context"], batch["answers"]))
  feats = qa.train_features(batch, tok, L, STRIDE)
  evals = qa.eval_features(batch, tok, L, STRIDE)
  assert (feats["input_ids"] == evals["input_ids"]).all()
  assert len(evals["example_index"]) > len(rows)
  rows_ = np.arange(len(evals["example_index"]))
  start = np.zeros(evals["offsets"].shape[:2], np.float32)
  end = np.zeros_like(start)
  start[rows_, feats["start_position"]] = 10.0
  end[rows_, feats["end_position"]] = 10.0
  got = qa.decode(batch["context"], batch["id"], evals, start, end)
  assert got == {i: a for i, (_, _, a) in zip(batch["id"], rows)}


def test_unanswerable_rows_are_labelled_at_s_and_decode_to_null(tok):
  rows = [("Where does the fox sleep?", LONG, None), ("Who built the clock?", LONG, "Walter Brown"),
          ("Who swims?", _SENTENCES[2], None)]
  batch = _batch(rows)
  assert [qa.answer_problem(c, a, require_answer=False)
          for c, a in zip(batch["context"], batch["answers"])] == ["", "", ""]
  assert qa.answer_problem(LONG, batch["answers"][0]) == "no answer"
  feats = qa.train_features(batch, tok, L, STRIDE)
  evals = qa.eval_features(batch, tok, L, STRIDE)
  assert (feats["input_ids"][:, 0] == tok.cls_token_id).all()
  example = evals["example_index"]
  assert (example == 0).sum() >= 4 and (example == 2).sum() == 1
  for label in (feats["start_position"], feats["end_position"]):
    assert (label[example != 1] == 0).all()
    assert (label[example == 1] == 0).any() and (label[example == 1] > 0).any()
  # Logits 10 at the labels: unanswerable rows have null 20 in every window and best span 0 + 0;
  # the answerable row's null is 0 + 0 in the window holding the answer, its span 10 + 10.
  rows_ = np.arange(len(example))
  start = np.zeros(evals["offsets"].shape[:2], np.float32)
  end = np.zeros_like(start)
  start[rows_, feats["start_position"]] = 10.0
  end[rows_, feats["end_position"]] = 10.0
  assert qa.null_score_diffs(batch["id"], evals, start, end) == {"q0": 20.0, "q1": -20.0,
                                                                 "q2": 20.0}
  got = qa.decode(batch["context"], batch["id"], evals, start, end, null_score_diff_threshold=0.0)
  assert got == {"q0": "", "q1": "Walter Brown", "q2": ""}
  v1 = qa.decode(batch["context"], batch["id"], evals, start, end)
  assert v1["q1"] == "Walter Brown" and v1["q0"] != "" and v1["q2"] != ""


def test_null_answer_wins_only_above_the_threshold(tok):
  ctx, answer = _SENTENCES[3], "Walter Brown"
  feats = qa.eval_features(_batch([("Who built the clock?", ctx, None)]), tok, 64, 16)
  a, offs = ctx.index(answer), feats["offsets"][0]
  start, end = _logits(feats, [(0, _token(offs, a, 0), _token(offs, a + len(answer), 1), 0.0)], 3.0)
  start[0, 0] = end[0, 0] = 4.0
  # null 4 + 4 = 8, best span 3 + 3 = 6 (a raised side with a zero one gives 3): difference 2
  assert qa.null_score_diffs(["x"], feats, start, end) == {"x": 2.0}
  got = {t: qa.decode([ctx], ["x"], feats, start, end, null_score_diff_threshold=t)["x"]
         for t in (1.5, 2.0, 2.5)}
  assert got == {1.5: "", 2.0: answer, 2.5: answer}  # "" only when strictly above
  assert qa.decode([ctx], ["x"], feats, start, end) == {"x": answer}
  # With one candidate per side only <s> is left: no span, so null at any threshold.
  assert qa.null_score_diffs(["x"], feats, start, end, n_best=1) == {"x": np.inf}
  assert qa.decode([ctx], ["x"], feats, start, end, n_best=1, null_score_diff_threshold=1e9) == {
      "x": ""}


def test_null_score_is_the_minimum_over_an_examples_windows(tok):
  feats = qa.eval_features(_batch([("Who built the clock?", LONG, None)]), tok, L, STRIDE)
  answer = "Walter Brown"
  a = LONG.index(answer)
  w_ans = next(w for w, o in enumerate(feats["offsets"]) if _covers(o, a, a + len(answer)))
  w_other = 0 if w_ans else 1
  two = {k: v[[w_ans, w_other]] for k, v in feats.items()}
  offs = two["offsets"][0]
  start, end = _logits(two, [(0, _token(offs, a, 0), _token(offs, a + len(answer), 1), 0.0)], 3.0)
  start[0, 0] = end[0, 0] = 5.0
  start[1, 0] = end[1, 0] = 2.0
  # nulls 10 (answer window) and 4, best span 6: min(10, 4) - 6 = -2 (the maximum or the answer
  # window's own null would give 4).
  assert qa.null_score_diffs(["x"], two, start, end) == {"x": -2.0}
  swapped = {k: v[::-1] for k, v in two.items()}
  assert qa.null_score_diffs(["x"], swapped, start[::-1], end[::-1]) == {"x": -2.0}
  got = {t: qa.decode([LONG], ["x"], two, start, end, null_score_diff_threshold=t)["x"]
         for t in (-2.5, -2.0, 3.0)}
  assert got == {-2.5: "", -2.0: answer, 3.0: answer}
