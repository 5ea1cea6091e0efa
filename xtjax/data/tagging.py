"""Token classification (UD-POS, PAN-X) features as XTREME builds them, and predictions per word.

As google-research/xtreme: ``utils_preprocess.py`` ``udpos_tokenize_preprocess`` /
``panx_tokenize_preprocess`` (lines 39-76, 130-166) split sentences before training, and
``third_party/utils_tag.py`` ``convert_examples_to_features`` (lines 136-205) encodes the pieces:

- every word is tokenized on its own; a word whose tokenization is empty, or longer than a whole
  segment, becomes one ``<unk>`` (the preprocessing writes ``<unk>`` in its place);
- a segment holds at most ``max_length - 3`` sub-words (``special_tokens_count`` 3 for XLM-R): a
  word that would overflow it starts the next segment, so sentences are split greedily at word
  boundaries and never truncated;
- a segment is ``<s> sub-words </s> </s>`` then padding (``sep_token_extra`` for XLM-R);
- the first sub-word of each word carries its tag, the others -100.

`decode` joins the segments' predictions back into one tag per word, as ``run_tag.py``
``save_predictions`` does with the ``.idx`` files.
"""

from __future__ import annotations

import numpy as np

IGNORE = -100  # the label of positions without one: later sub-words, unmasked MLM tokens


def _pieces(words: list[str], tokenizer, room: int) -> list[list[int]]:
  """Sub-word ids of each word, exactly as ``tokenizer(word, add_special_tokens=False)`` gives
  them, from one batched call over the distinct words; [unk] for none or more than ``room``."""
  unique = list(dict.fromkeys(words))
  if not unique:
    return []
  ids = tokenizer(unique, add_special_tokens=False, return_attention_mask=False)["input_ids"]
  table = {w: (p if 0 < len(p) <= room else [tokenizer.unk_token_id]) for w, p in zip(unique, ids)}
  return [table[w] for w in words]


def encode(tokens: list[list[str]], tags: list[list[int]] | None, tokenizer,
           max_length: int) -> dict[str, np.ndarray]:
  """Segments S of ``max_length`` tokens (``<s>`` sub-words ``</s> </s>`` then padding).

  Returns int32 ``input_ids`` and ``attention_mask`` [S, L], ``word_start`` [S, L] (1 on each
  word's first sub-word: the positions `decode` reads), ``sentence_index`` [S] and ``word_offset``
  [S] (index in its sentence of the segment's first word), and with ``tags`` also ``labels``
  [S, L] (the tag on first sub-words, -100 elsewhere). L is ``max_length``; segments come in
  sentence order, and a sentence without words has none.
  """
  room = max_length - 3
  if room < 1:
    raise ValueError(f"max_length {max_length} leaves no room between <s> and </s> </s>")
  if tags is not None and [len(t) for t in tags] != [len(s) for s in tokens]:
    raise ValueError("tokens and tags differ in shape: check each row with check_row first")
  pieces = _pieces([w for sentence in tokens for w in sentence], tokenizer, room)
  segments, seg, pos = [], [], []  # (sentence, first word); per word: segment, first position
  w = 0
  for i, sentence in enumerate(tokens):
    used = room
    for j in range(len(sentence)):
      n = len(pieces[w])
      if used + n > room:
        segments.append((i, j))
        used = 0
      seg.append(len(segments) - 1)
      pos.append(1 + used)
      used += n
      w += 1
  count = np.array([len(p) for p in pieces], np.int64)
  seg, pos = np.array(seg, np.int64), np.array(pos, np.int64)
  shape = (len(segments), max_length)
  input_ids = np.full(shape, tokenizer.pad_token_id, np.int32)
  input_ids[:, 0] = tokenizer.cls_token_id
  end = np.zeros(len(segments), np.int64)  # position of the first </s>
  np.maximum.at(end, seg, pos + count)
  input_ids[np.arange(len(segments)), end] = tokenizer.sep_token_id
  input_ids[np.arange(len(segments)), end + 1] = tokenizer.sep_token_id
  flat = np.fromiter((i for p in pieces for i in p), np.int32, int(count.sum()))
  within = np.arange(len(flat)) - np.repeat(np.cumsum(count) - count, count)
  input_ids[np.repeat(seg, count), np.repeat(pos, count) + within] = flat
  word_start = np.zeros(shape, np.int32)
  word_start[seg, pos] = 1
  segments = np.array(segments, np.int32).reshape(-1, 2)
  out = dict(input_ids=input_ids,
             attention_mask=(np.arange(max_length) <= end[:, None] + 1).astype(np.int32),
             word_start=word_start, sentence_index=segments[:, 0], word_offset=segments[:, 1])
  if tags is not None:
    labels = np.full(shape, IGNORE, np.int32)
    labels[seg, pos] = np.fromiter((t for row in tags for t in row), np.int32, len(seg))
    out["labels"] = labels
  return out


def decode(features: dict, logits: np.ndarray, lengths: list[int]) -> list[list[int]]:
  """The argmax tag of each word's first sub-word, segments joined back: one list per sentence.

  ``logits`` [S, L', T] follow the rows of ``features``; L' may be shorter than the encoded length
  as long as every word start lies within it.
  """
  logits = np.asarray(logits)
  starts = np.asarray(features["word_start"])
  if logits.shape[0] != starts.shape[0]:
    raise ValueError(f"logits have {logits.shape[0]} rows but the features {starts.shape[0]}")
  kept = starts[:, :logits.shape[1]].astype(bool)
  if kept.sum() != starts.sum():
    raise ValueError(f"logits of length {logits.shape[1]} cut off word starts")
  offsets = np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)])
  rows, cols = np.nonzero(kept)
  sentence = np.asarray(features["sentence_index"])[rows]
  if (sentence >= len(lengths)).any():
    raise ValueError(f"the features have sentences past the {len(lengths)} lengths given")
  rank = (np.cumsum(kept, axis=1) - 1)[rows, cols]
  index = offsets[sentence] + np.asarray(features["word_offset"])[rows] + rank
  if (len(index) != offsets[-1] or (index >= offsets[-1]).any()
      or (np.bincount(index, minlength=offsets[-1]) != 1).any()):
    raise ValueError("the features' words do not match the sentence lengths")
  words = np.empty(offsets[-1], np.int64)
  words[index] = np.argmax(logits[rows, cols], axis=-1)
  return [words[a:b].tolist() for a, b in zip(offsets[:-1], offsets[1:])]


def check_row(tokens, tags, num_tags: int) -> str:
  """An empty string for a well-formed row, else a short reason for the malformed-row report."""
  if not tokens:
    return "no tokens"
  if tags is not None and len(tags) != len(tokens):
    return "tokens and tags differ in length"
  if any(not t for t in tokens):
    return "empty token"
  for tag in tags or ():
    if not 0 <= tag < num_tags:
      return f"tag {tag} outside 0..{num_tags - 1}"
  return ""
