"""QA windows, labels and max-context flags equal a plain reimplementation of XTREME's
``squad_convert_example_to_features`` loop; decoding and its three post-processings."""

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


# --- the upstream loop, written out plainly (third_party/processors/squad.py) -------------------


def upstream_spans(n_doc, q_len, max_seq_length, doc_stride):
  """(start, paragraph_len, kept tokens) per window: lines 137-180 with transformers 2.x
  ``encode_plus(..., truncation_strategy="only_second", stride=...)`` overflow semantics."""
  doc = list(range(n_doc))
  pair_added = 4  # <s> A </s></s> B </s>
  stride = max_seq_length - doc_stride - q_len - pair_added
  spans, span_doc = [], doc
  while len(spans) * doc_stride < len(doc):
    total = q_len + len(span_doc) + pair_added
    overflow, kept = None, span_doc
    if total > max_seq_length:
      remove = total - max_seq_length
      kept = span_doc[:-remove]
      overflow = span_doc[-min(len(span_doc), stride + remove):]
    paragraph_len = min(n_doc - len(spans) * doc_stride, max_seq_length - q_len - pair_added)
    spans.append((len(spans) * doc_stride, paragraph_len, kept))
    if overflow is None:
      break
    span_doc = overflow
  return spans


def upstream_is_max_context(spans, index, position):
  best_score, best_index = None, None
  for i, (start, length, _) in enumerate(spans):
    end = start + length - 1
    if start <= position <= end:
      score = min(position - start, end - position) + 0.01 * length
      if best_score is None or score > best_score:
        best_score, best_index = score, i
  return index == best_index


def upstream_features(tok, question, context, answer, max_seq_length, doc_stride):
  """Windows of one example as (input_ids, max_context flags, start, end) lists; [] when the
  training answer is not in its words."""
  doc_tokens, char_to_word, prev_space = [], [], True
  for c in context:
    if c in " \t\r\n" or ord(c) == 0x202F:
      prev_space = True
    else:
      if prev_space:
        doc_tokens.append(c)
      else:
        doc_tokens[-1] += c
      prev_space = False
    char_to_word.append(len(doc_tokens) - 1)
  orig_to_tok, all_doc = [], []
  for word in doc_tokens:
    orig_to_tok.append(len(all_doc))
    all_doc += tok.tokenize(word)
  tok_start = tok_end = None
  if answer:
    start_char = context.index(answer)
    first = char_to_word[start_char]
    last = char_to_word[min(start_char + len(answer) - 1, len(char_to_word) - 1)]
    if " ".join(doc_tokens[first:last + 1]).find(" ".join(answer.strip().split())) == -1:
      return []
    tok_start = orig_to_tok[first]
    tok_end = orig_to_tok[last + 1] - 1 if last < len(doc_tokens) - 1 else len(all_doc) - 1
    wanted = " ".join(tok.tokenize(answer))
    found = [(a, b) for a in range(tok_start, tok_end + 1) for b in range(tok_end, a - 1, -1)
             if " ".join(all_doc[a:b + 1]) == wanted]
    tok_start, tok_end = found[0] if found else (tok_start, tok_end)
  query = tok.convert_tokens_to_ids(tok.tokenize(question))[:64]
  spans = upstream_spans(len(all_doc), len(query), max_seq_length, doc_stride)
  doc_ids = tok.convert_tokens_to_ids(all_doc)
  out = []
  for k, (start, length, kept) in enumerate(spans):
    assert kept == list(range(start, start + length))
    offset = len(query) + 3
    ids = [tok.cls_token_id] + query + [tok.sep_token_id] * 2 + doc_ids[start:start + length]
    ids = ids + [tok.sep_token_id] + [tok.pad_token_id] * (max_seq_length - len(ids) - 1)
    flags = [0] * max_seq_length
    for j in range(length):
      flags[offset + j] = int(upstream_is_max_context(spans, k, start + j))
    s = e = 0
    if tok_start is not None and tok_start >= start and tok_end <= start + length - 1:
      s, e = tok_start - start + offset, tok_end - start + offset
    out.append((ids, flags, s, e))
  return out


def _single_token_words(tok):
  return sorted({w for s in _SENTENCES for w in s.split() if len(tok.tokenize(w)) == 1})


def test_window_counts_and_contents_equal_the_upstream_loop(tok):
  """Contexts of 150 to 1,200 tokens at XTREME's 384 tokens and doc stride 128, around every
  window boundary, with a question of 5 tokens and one cut to 64."""
  words = _single_token_words(tok)
  short_q, long_q = "Who built the clock?", " ".join(["Who built the clock?"] * 20)
  assert len(tok.tokenize(long_q)) > 64
  room = 384 - len(tok.tokenize(short_q)) - 4
  sizes = [150, room - 1, room, room + 1, room + 128, room + 129, 700, room + 3 * 128, 1200]
  rows = []
  for q in (short_q, long_q):
    for n in sizes:
      rows.append((q, " ".join(words[i % len(words)] for i in range(n)), None))
  feats = qa.eval_features(_batch(rows), tok, 384, 128)
  counts = []
  for i, (q, context, _) in enumerate(rows):
    want = upstream_features(tok, q, context, None, 384, 128)
    mine = np.flatnonzero(feats["example_index"] == i)
    counts.append(len(mine))
    assert len(mine) == len(want), (i, len(context.split()))
    for f, (ids, flags, _, _) in zip(mine, want):
      assert feats["input_ids"][f].tolist() == ids
      assert feats["max_context"][f].tolist() == flags
      assert feats["attention_mask"][f].tolist() == [int(t != tok.pad_token_id) for t in ids]
  # 1 window up to `room` tokens, then one more per 128 tokens: stride is the step, not overlap.
  assert counts[:len(sizes)] == [1, 1, 1, 2, 2, 3, 4, 4, 8]


def test_training_labels_equal_the_upstream_loop(tok):
  rows = [("Who built the clock?", LONG, "Walter Brown"),  # words "Walter" "Brown."
          ("Where does the fox sleep?", LONG, "under the green bridge"),
          ("When is the market?", _SENTENCES[2], "Monday"),  # inside the word "Monday."
          ("Who swims?", _SENTENCES[4], "arrives."),  # the context's last word
          (ZH_QUESTION, "他说：“北京”是中国的首都，上海很大。", "北京"),  # inside one long word
          ("Where?", "A river in the 10\u00a0000 lakes.", "10\u00a0000"),  # not in its words
          ("Who swims?", LONG, None)]
  batch = _batch(rows)
  for length, stride in ((L, STRIDE), (64, 16), (384, 128)):
    feats = qa.train_features(batch, tok, length, stride)
    want = [w for q, c, a in rows for w in upstream_features(tok, q, c, a, length, stride)]
    assert feats["input_ids"].tolist() == [ids for ids, _, _, _ in want]
    assert list(zip(feats["start_position"].tolist(), feats["end_position"].tolist())) == [
        (s, e) for _, _, s, e in want]
  # The zh answer is labelled as its whole whitespace word, as upstream; the NBSP row has none.
  feats = qa.train_features(batch, tok, 384, 128)
  evals = qa.eval_features(batch, tok, 384, 128)
  (zh,) = np.flatnonzero(evals["example_index"] == 4)  # rows before the dropped row 5 align
  s, e = feats["start_position"][zh], feats["end_position"][zh]
  assert rows[4][1][evals["offsets"][zh][s, 0]:evals["offsets"][zh][e, 1]] == rows[4][1]
  assert len(feats["input_ids"]) == len(evals["input_ids"]) - 1


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


def _covers(offsets, start, end):
  ctx = offsets[offsets[:, 0] >= 0]
  return ctx[0, 0] <= start and ctx[-1, 1] >= end


def test_answers_start_only_in_their_max_context_window(tok):
  feats = qa.eval_features(_batch([("Who built the clock?", LONG, None)]), tok, L, STRIDE)
  offs, flags = feats["offsets"], feats["max_context"]
  answer = "Walter Brown"
  a = LONG.index(answer)
  windows = [f for f in range(len(offs)) if _covers(offs[f], a, a + len(answer))]
  assert len(windows) >= 2
  owner = [f for f in windows if flags[f, _token(offs[f], a, 0)]]
  other = [f for f in windows if f not in owner]
  assert len(owner) == 1 and other
  # The higher-scoring copy is in a window where "Walter" is not max-context: it is skipped.
  spans = [(other[0], _token(offs[other[0]], a, 0), _token(offs[other[0]], a + len(answer), 1),
            5.0), (owner[0], _token(offs[owner[0]], a, 0),
                   _token(offs[owner[0]], a + len(answer), 1), 0.0)]
  start, end = _logits(feats, spans)
  assert qa.decode([LONG], ["x"], feats, start, end)["x"] == answer
  start, end = _logits(feats, spans[:1])
  assert qa.decode([LONG], ["x"], feats, start, end)["x"] != answer


def test_decode_picks_the_best_window_in_any_feature_order(tok):
  rows = [("Where does the fox sleep?", LONG, None), ("Who built the clock?", _SENTENCES[3], None)]
  feats = qa.eval_features(_batch(rows), tok, L, STRIDE)
  offs, flags = feats["offsets"], feats["max_context"]
  long_feats = np.nonzero(feats["example_index"] == 0)[0]
  spans = []
  for text, bonus in [("old mill", 1.0), ("Walter Brown", 2.0)]:
    a = LONG.index(text)
    f = next(f for f in long_feats if _covers(offs[f], a, a + len(text))
             and flags[f, _token(offs[f], a, 0)])
    spans.append((f, _token(offs[f], a, 0), _token(offs[f], a + len(text), 1), bonus))
  assert spans[0][0] != spans[1][0]
  (short,) = np.nonzero(feats["example_index"] == 1)[0]
  start, end = _logits(feats, spans)
  # The short example peaks at <s>, outside the context: only lower pairs (-2) are valid.
  start[short] = end[short] = -1.0
  start[short, 0] = end[short, 0] = 50.0
  ids, contexts = ["long", "short"], [LONG, _SENTENCES[3]]
  got = qa.decode(contexts, ids, feats, start, end)
  assert got["long"] == "Walter Brown"
  assert got["short"] != "" and got["short"] in _SENTENCES[3]
  perm = np.random.default_rng(0).permutation(len(start))
  shuffled = {k: v[perm] for k, v in feats.items()}
  assert qa.decode(contexts, ids, shuffled, start[perm], end[perm]) == got
  # With one candidate per side the short example has no valid pair left, but still an entry.
  assert qa.decode(contexts, ids, feats, start, end, n_best=1) == {"long": "Walter Brown",
                                                                   "short": ""}
  trimmed = {k: (v[:, :20] if v.ndim > 1 else v) for k, v in feats.items()}
  assert qa.decode(contexts, ids, trimmed, start[:, :20], end[:, :20])["short"] != ""
  with pytest.raises(ValueError, match="do not match"):
    qa.decode(contexts, ids, trimmed, start, end)


def test_decode_skips_reversed_and_overlong_spans(tok):
  ctx = _SENTENCES[2]
  feats = qa.eval_features(_batch([("What do farmers bring?", ctx, None)]), tok, 64, 16)
  offs = feats["offsets"][0]
  pos = {w: (_token(offs, ctx.index(w), 0), _token(offs, ctx.index(w) + len(w), 1))
         for w in ["Farmers", "bread", "cheese", "market", "Monday"]}
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


def test_get_final_text_aligns_tokens_with_the_original_words():
  assert qa.get_final_text("Walter Brown", "Walter Brown.") == "Walter Brown"
  assert qa.get_final_text("Steve Smith", "Steve Smith's") == "Steve Smith"
  assert qa.get_final_text("1976", "(1976),") == "1976"
  assert qa.get_final_text("walter", "Walter Brown.") == "Walter Brown."  # cased: not found
  assert qa.get_final_text("Brown", "Walter\u200bBrown") == "Walter\u200bBrown"  # lengths differ
  assert qa.get_final_text("北京", "他说北京很大。") == "他说北京很大。"  # CJK split: not found
  assert qa.get_final_text("北 京", "他说北京很大。") == "北京"
  assert qa.get_final_text("", "Walter") == "Walter"


def test_postprocess_official_jiant_and_offsets(tok):
  rows = [("Who built the clock?", _SENTENCES[3], None),
          (ZH_QUESTION, "他说：“北京”是中国的首都，上海很大。", None)]
  feats = qa.eval_features(_batch(rows), tok, 64, 16)
  offs = feats["offsets"]
  en_ctx, zh_ctx = rows[0][1], rows[1][1]
  a, z = en_ctx.index("Walter Brown"), zh_ctx.index("北京")
  start, end = _logits(feats, [(0, _token(offs[0], a, 0), _token(offs[0], a + 12, 1), 0.0),
                               (1, _token(offs[1], z, 0), _token(offs[1], z + 2, 1), 0.0)])
  ids, contexts = ["en", "zh"], [en_ctx, zh_ctx]
  got = {p: {lang: qa.decode(contexts, ids, feats, start, end, postprocess=p, language=lang,
                             tokenizer=tok) for lang in ("en", "zh")} for p in qa.POSTPROCESS}
  assert got["offsets"]["zh"] == got["offsets"]["en"] == {"en": "Walter Brown", "zh": "北京"}
  # get_final_text trims "Brown." to the tokens, but zh spans give the whole whitespace word.
  assert got["official"]["zh"] == got["official"]["en"] == {"en": "Walter Brown", "zh": zh_ctx}
  # jiant skips get_final_text only for zh: the tokens' own text.
  assert got["jiant"]["en"] == got["official"]["en"]
  assert got["jiant"]["zh"] == {"en": "Walter Brown", "zh": "北京"}
  with pytest.raises(ValueError, match="unknown QA postprocess 'exact': use offsets, official"):
    qa.decode(contexts, ids, feats, start, end, postprocess="exact")
  with pytest.raises(ValueError, match="pass the tokenizer"):
    qa.decode(contexts, ids, feats, start, end, postprocess="official")


def test_a_stride_past_the_window_is_an_error(tok):
  with pytest.raises(ValueError, match="doc_stride 30 exceeds the 23 context tokens"):
    qa.eval_features(_batch([("Who built the clock?", LONG, None)]), tok, L, 30)


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
          ("Who swims?", _SENTENCES[4], "Children")]
  batch = _batch(rows)
  feats = qa.train_features(batch, tok, L, STRIDE)
  evals = qa.eval_features(batch, tok, L, STRIDE)
  assert (feats["input_ids"] == evals["input_ids"]).all()
  assert len(evals["example_index"]) > len(rows)
  rows_ = np.arange(len(evals["example_index"]))
  start = np.zeros(evals["offsets"].shape[:2], np.float32)
  end = np.zeros_like(start)
  start[rows_, feats["start_position"]] = 10.0
  end[rows_, feats["end_position"]] = 10.0
  for postprocess in qa.POSTPROCESS:
    got = qa.decode(batch["context"], batch["id"], evals, start, end, postprocess=postprocess,
                    language="en", tokenizer=tok)
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
  # the answerable row's null is 0 + 0 in the windows holding the answer, its span 10 + 10.
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
  w_ans = next(w for w, o in enumerate(feats["offsets"]) if _covers(o, a, a + len(answer))
               and feats["max_context"][w, _token(o, a, 0)])
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


def test_a_bare_space_piece_is_zero_width(tok):
  ctx = "北京是中国的首都。上海很大。"
  feats = qa.eval_features(_batch([(ZH_QUESTION, ctx, None)]), tok, 64, 16)
  offs = feats["offsets"][0]
  bare = int(np.argmax(offs[:, 0] >= 0))
  assert tok.convert_ids_to_tokens(int(feats["input_ids"][0][bare])) == "▁"
  assert tuple(offs[bare]) == (0, 0)
  jing = _token(offs, 2, 1)
  start, end = _logits(feats, [(0, bare, jing, 0.0)])
  decode = lambda p: qa.decode([ctx], ["x"], feats, start, end, postprocess=p, language="zh",
                               tokenizer=tok)["x"]
  assert (decode("offsets"), decode("jiant"), decode("official")) == ("北京", "北京", ctx)
  # A span of the bare piece alone has no text: skipped by "offsets", kept by upstream's decoding.
  start, end = _logits(feats, [(0, bare, bare, 5.0), (0, bare + 1, jing, 0.0)])
  assert decode("offsets") == "北京" and decode("official") == ctx
