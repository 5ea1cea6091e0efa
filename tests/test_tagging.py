"""Token classification features follow XTREME: first-sub-word tags, <unk> for words without
sub-words or too many, sentences split where its preprocessing splits them (checked against a
plain reimplementation of it), the extra </s> of XLM-R, and predictions joined back per word."""

from __future__ import annotations

import random

import numpy as np
import pytest

from xtjax.data import synthetic
from xtjax.data.tagging import check_row, decode, encode
from xtjax.models.loading import load_tokenizer

TEXTS = ["the cat sat on the mat .", "a dog ran to the red house", "Anna has five apples today"]
# Words of one to several sub-words, unknown characters, and one without any sub-word.
WORDS = ["the", "cat", "catmat", "dogs", "Anna", "mathouse", ".", "sat.", "xyz", "reddog", "qq",
         "apples", "\u3000"]


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
  out = tmp_path_factory.mktemp("tok")
  synthetic.train_tokenizer(TEXTS, out, vocab_size=100)
  return load_tokenizer(str(out))


def _ids(tok, word):
  """Sub-word ids as XTREME gets them: tokenizer.tokenize per word, <unk> when empty."""
  return tok.convert_tokens_to_ids(tok.tokenize(word)) or [tok.unk_token_id]


def upstream_segments(tok, sentences, tags, max_len):
  """(input_ids, label_ids) per segment: utils_preprocess.py udpos_tokenize_preprocess (the
  split, with special_tokens_count 3 for XLM-R), then utils_tag.py read_examples_from_file and
  convert_examples_to_features with sep_token_extra, written out plainly."""
  max_seq_len = max_len - 3
  segments = []
  for words, labels in zip(sentences, tags):
    counter = None
    for word, label in zip(words, labels):
      n = len(tok.tokenize(word))
      if n == 0 or n > max_seq_len:
        word, n = tok.unk_token, 1
      if counter is None or counter + n > max_seq_len:
        segments.append(([], []))
        counter = 0
      segments[-1][0].append(word)
      segments[-1][1].append(label)
      counter += n
  out = []
  for words, labels in segments:
    tokens, label_ids = [], []
    for word, label in zip(words, labels):
      pieces = tok.tokenize(word) or [tok.unk_token]
      tokens += pieces
      label_ids += [label] + [-100] * (len(pieces) - 1)
    ids = [tok.cls_token_id] + tok.convert_tokens_to_ids(tokens) + [tok.sep_token_id] * 2
    label_ids = [-100] + label_ids + [-100, -100]
    pad = max_len - len(ids)
    out.append((ids + [tok.pad_token_id] * pad, label_ids + [-100] * pad))
  return out


def _words_of(features, tok):
  """Per segment, the sub-word ids of each word, read back from word_start and </s>."""
  out = []
  for ids, starts in zip(features["input_ids"], features["word_start"]):
    end = list(ids).index(tok.sep_token_id)
    first = list(np.flatnonzero(starts)) + [end]
    out.append([list(ids[a:b]) for a, b in zip(first[:-1], first[1:])])
  return out


def _one_hot(features, num_tags, rng):
  """Logits whose argmax is the label on first sub-words and a random wrong tag elsewhere."""
  labels = features["labels"]
  noise = rng.integers(0, num_tags, labels.shape)
  target = np.where(labels >= 0, labels, noise)
  return np.eye(num_tags, dtype=np.float32)[target] * 5.0


def test_first_subword_carries_the_tag(tok):
  assert [tok.tokenize(w) for w in ("the", "catmat", "sat.")] == [
      ["▁the"], ["▁cat", "mat"], ["▁sat", "."]]
  f = encode([["the", "catmat", "sat."]], [[1, 2, 3]], tok, max_length=10)
  the, cat, mat, sat, dot = tok.convert_tokens_to_ids(["▁the", "▁cat", "mat", "▁sat", "."])
  bos, eos, pad = tok.cls_token_id, tok.sep_token_id, tok.pad_token_id
  assert tok.convert_ids_to_tokens([bos, eos, pad]) == ["<s>", "</s>", "<pad>"]
  np.testing.assert_array_equal(f["input_ids"],
                                [[bos, the, cat, mat, sat, dot, eos, eos, pad, pad]])
  np.testing.assert_array_equal(f["labels"], [[-100, 1, 2, -100, 3, -100, -100, -100, -100, -100]])
  np.testing.assert_array_equal(f["word_start"], [[0, 1, 1, 0, 1, 0, 0, 0, 0, 0]])
  np.testing.assert_array_equal(f["attention_mask"], [[1, 1, 1, 1, 1, 1, 1, 1, 0, 0]])
  np.testing.assert_array_equal(f["sentence_index"], [0])
  np.testing.assert_array_equal(f["word_offset"], [0])
  assert all(v.dtype == np.int32 for v in f.values())
  logits = _one_hot(f, 4, np.random.default_rng(0))
  assert decode(f, logits, [3]) == decode(f, logits[:, :6], [3]) == [[1, 2, 3]]


def test_word_without_subwords_becomes_unk_and_keeps_its_tag(tok):
  assert tok.tokenize("\u3000") == [] and tok("\u3000", add_special_tokens=False)["input_ids"] == []
  f = encode([["the", "\u3000", "cat"]], [[1, 4, 2]], tok, max_length=8)
  the, cat = tok.convert_tokens_to_ids(["▁the", "▁cat"])
  np.testing.assert_array_equal(f["input_ids"][0, :6], [tok.cls_token_id, the, tok.unk_token_id,
                                                        cat, tok.sep_token_id, tok.sep_token_id])
  np.testing.assert_array_equal(f["labels"][0, :6], [-100, 1, 4, 2, -100, -100])
  assert decode(f, _one_hot(f, 5, np.random.default_rng(0)), [3]) == [[1, 4, 2]]


def test_batched_pieces_equal_per_word_tokenization(tok):
  rng = random.Random(0)
  tokens = [[rng.choice(WORDS) for _ in range(n)] for n in (5, 40, 1, 12, 27)]
  f = encode(tokens, None, tok, max_length=20)
  assert "labels" not in f
  got = {}
  for row, words in zip(range(len(f["input_ids"])), _words_of(f, tok)):
    i, j = f["sentence_index"][row], f["word_offset"][row]
    for k, ids in enumerate(words):
      got[i, j + k] = ids
  want = {(i, j): _ids(tok, w) for i, s in enumerate(tokens) for j, w in enumerate(s)}
  assert got == want
  assert any(len(v) > 1 for v in want.values()) and [tok.unk_token_id] in want.values()


def test_long_sentences_split_at_word_boundaries_and_join_back(tok):
  rng, nrng = random.Random(1), np.random.default_rng(1)
  lengths = [50, 3, 0, 17, 1, 33]
  tokens = [[rng.choice(WORDS) for _ in range(n)] for n in lengths]
  tags = [[rng.randrange(7) for _ in range(n)] for n in lengths]
  max_length = 16
  f = encode(tokens, tags, tok, max_length)
  assert f["input_ids"].shape[1] == max_length
  assert f["attention_mask"].sum(1).max() <= max_length
  counts = f["word_start"].sum(1)
  for i, n in enumerate(lengths):
    rows = np.flatnonzero(f["sentence_index"] == i)
    assert len(rows) >= (n > 0) + (n == 50)  # the 50-word sentence needs several segments
    # Consecutive segments take consecutive words: none lost, none repeated.
    np.testing.assert_array_equal(f["word_offset"][rows], np.cumsum(counts[rows]) - counts[rows])
    assert counts[rows].sum() == n
    for r in rows[:-1]:  # greedy: the next segment's first word did not fit
      nxt = tokens[i][f["word_offset"][r] + counts[r]]
      assert f["attention_mask"][r].sum() - 3 + len(_ids(tok, nxt)) > max_length - 3
  assert list(f["sentence_index"]) == sorted(f["sentence_index"])
  logits = _one_hot(f, 7, nrng)
  assert decode(f, logits, lengths) == tags
  short = int(np.flatnonzero(f["word_start"].any(0)).max()) + 1  # past the last word start
  assert short < max_length
  assert decode(f, logits[:, :short], lengths) == tags
  with pytest.raises(ValueError, match="cut off word starts"):
    decode(f, logits[:, :short - 1], lengths)
  with pytest.raises(ValueError, match="do not match"):
    decode(f, logits, [50, 3, 0, 16, 1, 34])


def test_word_longer_than_a_segment_becomes_unk(tok):
  long_word = "xyzxyz"
  assert len(tok.tokenize(long_word)) > 3
  f = encode([["the", long_word, "cat"]], [[1, 2, 3]], tok, max_length=6)
  the, cat = tok.convert_tokens_to_ids(["▁the", "▁cat"])
  bos, eos, unk = tok.cls_token_id, tok.sep_token_id, tok.unk_token_id
  np.testing.assert_array_equal(f["input_ids"], [[bos, the, unk, cat, eos, eos]])
  np.testing.assert_array_equal(f["labels"], [[-100, 1, 2, 3, -100, -100]])
  assert decode(f, _one_hot(f, 4, np.random.default_rng(2)), [3]) == [[1, 2, 3]]


@pytest.mark.parametrize("max_length", [6, 8, 13, 128])
def test_segments_equal_xtremes_preprocessing(tok, max_length):
  rng = random.Random(max_length)
  lengths = [1, 7, 30, 0, 64, 3, 200]
  tokens = [[rng.choice(WORDS + ["xyzxyz", "catmathouse"]) for _ in range(n)] for n in lengths]
  tags = [[rng.randrange(7) for _ in range(n)] for n in lengths]
  f = encode(tokens, tags, tok, max_length)
  want = upstream_segments(tok, tokens, tags, max_length)
  assert f["input_ids"].tolist() == [ids for ids, _ in want]
  assert f["labels"].tolist() == [labels for _, labels in want]
  assert decode(f, _one_hot(f, 7, np.random.default_rng(0)), lengths) == tags


def test_check_row_reasons():
  assert check_row(["a", "b"], [0, 2], 3) == ""
  assert check_row(["a", "b"], None, 3) == ""
  assert check_row([], [], 3) == "no tokens"
  assert check_row(["a", "b"], [0], 3) == "tokens and tags differ in length"
  assert check_row(["a", ""], [0, 1], 3) == "empty token"
  assert check_row(["a", "b"], [0, 3], 3) == "tag 3 outside 0..2"
  assert check_row(["a"], [-1], 3) == "tag -1 outside 0..2"
