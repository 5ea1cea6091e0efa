"""Masked-LM data: exact packing, Hugging Face's BERT masking, a reproducible grain pipeline, and
text from local files or a hub-layout mirror."""

from __future__ import annotations

import logging
import random

import datasets
import numpy as np
import pytest
from transformers import DataCollatorForLanguageModeling

from xtjax.data import synthetic
from xtjax import kinds
from xtjax.data.batches import INPUTS, train_batches
from xtjax.data.mlm import MaskTokens, mask_tokens, mlm_features
from xtjax.data.pipeline import load_text
from xtjax.models.loading import load_tokenizer

_WORDS = ("the cat sat on mat a dog ran to red house Anna has five apples today der Hund "
          "läuft schnell le chat dort bien").split()


def _texts(n, seed=0):
  rng = random.Random(seed)
  return [" ".join(rng.choices(_WORDS, k=rng.randint(1, 30))) for _ in range(n)]


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
  out = tmp_path_factory.mktemp("tok")
  synthetic.train_tokenizer(_texts(200), out, vocab_size=120)
  return load_tokenizer(str(out))


def _ids(tok, text):
  return tok(text, add_special_tokens=False)["input_ids"]


def _rows(features):
  return [ids[mask == 1] for ids, mask in zip(features["input_ids"], features["attention_mask"])]


@pytest.mark.parametrize("max_length", [3, 8, 64])
def test_packing_recovers_the_stream(tok, max_length):
  texts = _texts(300, seed=1) + ["", "   "]  # texts without tokens add no separator
  stream = []
  for text in texts:
    ids = _ids(tok, text)
    stream += ([tok.eos_token_id] if stream and ids else []) + ids
  features = mlm_features(texts, tok, max_length)
  assert {k: (v.dtype, v.shape[1]) for k, v in features.items()} == {
      "input_ids": (np.int32, max_length), "attention_mask": (np.int32, max_length)}
  rows = _rows(features)
  assert all(r[0] == tok.bos_token_id and r[-1] == tok.eos_token_id for r in rows)
  assert all(len(r) == max_length for r in rows[:-1])
  assert np.concatenate([r[1:-1] for r in rows]).tolist() == stream
  assert len(rows) == -(-len(stream) // (max_length - 2))
  last, last_mask = features["input_ids"][-1], features["attention_mask"][-1]
  n = len(rows[-1])
  assert last_mask[:n].all() and not last_mask[n:].any()
  assert (last[n:] == tok.pad_token_id).all()


def test_packing_edges(tok):
  one = _ids(tok, "the cat")
  assert mlm_features(["the cat"], tok, len(one) + 2)["attention_mask"].tolist() == [
      [1] * (len(one) + 2)]
  assert mlm_features([], tok, 16)["input_ids"].shape == (0, 16)
  with pytest.raises(ValueError, match="max_length 2"):
    mlm_features(["the cat"], tok, 2)


def _random_batch(tok, shape, seed=0):
  """Random ids over the whole vocabulary (specials included), the last columns padded."""
  rng = np.random.default_rng(seed)
  ids = rng.integers(0, len(tok), shape).astype(np.int32)
  lengths = rng.integers(shape[1] // 2, shape[1] + 1, shape[0])
  mask = (np.arange(shape[1]) < lengths[:, None]).astype(np.int32)
  ids[mask == 0] = tok.pad_token_id
  return ids, mask


def _mask(tok, ids, mask, seed):
  return mask_tokens(ids, mask, np.random.default_rng(seed), mask_id=tok.mask_token_id,
                     vocab_size=len(tok), special_ids=tok.all_special_ids)


def test_masking_equals_hugging_face_collator(tok):
  ids, mask = _random_batch(tok, (64, 48))
  collator = DataCollatorForLanguageModeling(tok, return_tensors="np", seed=3)
  want = collator([{"input_ids": i, "attention_mask": m} for i, m in zip(ids, mask)])
  got_ids, got_labels = _mask(tok, ids, mask, seed=3)
  np.testing.assert_array_equal(got_ids, want["input_ids"])
  np.testing.assert_array_equal(got_labels, want["labels"])


def test_masking_statistics(tok):
  ids, mask = _random_batch(tok, (512, 256))
  masked, labels = _mask(tok, ids, mask, seed=0)
  np.testing.assert_array_equal(ids, _random_batch(tok, (512, 256))[0])  # inputs untouched
  special = np.isin(ids, tok.all_special_ids) | (mask == 0)
  selected = labels != -100
  assert not (selected & special).any()
  np.testing.assert_array_equal(labels[selected], ids[selected])
  np.testing.assert_array_equal(masked[~selected], ids[~selected])
  share = selected.sum() / (~special).sum()
  assert abs(share - 0.15) < 0.005
  n = selected.sum()
  to_mask = (masked[selected] == tok.mask_token_id).mean()
  changed = ((masked != ids) & (masked != tok.mask_token_id))[selected].mean()
  # Random draws equal to the original id (1 / vocab of the 10%) read as unchanged.
  kept = (masked[selected] == ids[selected]).mean()
  assert abs(to_mask - 0.8) < 0.02 and abs(changed - 0.1) < 0.015 and abs(kept - 0.1) < 0.015, n
  random_ids = masked[selected & (masked != ids) & (masked != tok.mask_token_id)]
  assert random_ids.min() >= 0 and random_ids.max() < len(tok)
  assert len(np.unique(random_ids)) > len(tok) * 0.9  # drawn from the whole vocabulary


def test_masking_is_seeded(tok):
  ids, mask = _random_batch(tok, (16, 64))
  a, b, c = (_mask(tok, ids, mask, seed) for seed in (5, 5, 6))
  np.testing.assert_array_equal(a[0], b[0])
  np.testing.assert_array_equal(a[1], b[1])
  assert (a[1] != c[1]).any()


def mlm_train_batches(features, global_batch_size, seed, *, tokenizer):
  """Training batches of packed MLM rows as a train phase builds them (the kind's masking)."""
  return train_batches([(features, INPUTS, kinds.get("masked_lm").augment(tokenizer))],
                       global_batch_size, seed)


def _take(iterator, n):
  return [next(iterator) for _ in range(n)]


def _assert_same(xs, ys):
  assert len(xs) == len(ys)
  for x, y in zip(xs, ys):
    assert x.keys() == y.keys()
    for k in x:
      np.testing.assert_array_equal(x[k], y[k])


def test_grain_pipeline_is_reproducible(tok):
  features = mlm_features(_texts(400, seed=2), tok, 32)
  rows = len(features["input_ids"])
  batches = _take(mlm_train_batches(features, 8, 0, tokenizer=tok), 3 * rows // 8)
  first = batches[0]
  assert {k: v.shape for k, v in first.items()} == {
      "input_ids": (8, 32), "attention_mask": (8, 32), "example_mask": (8,), "labels": (8, 32),
      "task": ()}
  assert first["labels"].dtype == np.int32 and (first["example_mask"] == 1).all()
  _assert_same(batches, _take(mlm_train_batches(features, 8, 0, tokenizer=tok), len(batches)))
  other = _take(mlm_train_batches(features, 8, 1, tokenizer=tok), 1)[0]
  assert (other["input_ids"] != first["input_ids"]).any()
  # Every selected label is the original token of its row; masks differ between epochs.
  originals = {tuple(r): i for i, r in enumerate(features["input_ids"].tolist())}
  seen = {}
  for batch in batches:
    for ids, labels in zip(batch["input_ids"], batch["labels"]):
      restored = np.where(labels != -100, labels, ids)
      key = tuple(np.where(labels == -100, ids, -1))
      seen.setdefault(originals.get(tuple(restored)), set()).add(key)
  assert None not in seen and len(seen) == rows
  assert all(len(masks) > 1 for masks in seen.values())


def test_grain_pipeline_restores(tok):
  features = mlm_features(_texts(200, seed=3), tok, 16)
  it = mlm_train_batches(features, 4, 7, tokenizer=tok)
  _take(it, 5)
  state = it.get_state()
  expected = _take(it, 6)
  fresh = mlm_train_batches(features, 4, 7, tokenizer=tok)
  fresh.set_state(state)
  _assert_same(_take(fresh, 6), expected)


def test_mask_tokens_transform_keeps_the_row(tok):
  features = mlm_features(_texts(50), tok, 16)
  row = {"input_ids": features["input_ids"][0], "attention_mask": features["attention_mask"][0],
         "example_mask": np.int32(1)}
  before = row["input_ids"].copy()
  out = MaskTokens.from_tokenizer(tok).random_map(row, np.random.default_rng(0))
  assert out.keys() == {"input_ids", "attention_mask", "example_mask", "labels"}
  np.testing.assert_array_equal(row["input_ids"], before)
  with pytest.raises(ValueError, match="fewer than one batch"):
    mlm_train_batches(features, len(features["input_ids"]) + 1, 0, tokenizer=tok)


def test_load_text_from_files(tmp_path, caplog):
  (tmp_path / "a.txt").write_text("first line\n\n  second line  \n", encoding="utf-8")
  (tmp_path / "b.txt").write_text("dritte Zeile\n   \nvierte\n", encoding="utf-8")
  with caplog.at_level(logging.INFO, logger="xtjax.data.pipeline"):
    texts = load_text(str(tmp_path / "*.txt"))
  assert texts == ["first line", "second line", "dritte Zeile", "vierte"]
  assert "4 texts, 2 blank lines skipped" in caplog.text and "(2 files)" in caplog.text
  assert load_text(str(tmp_path / "b.txt")) == ["dritte Zeile", "vierte"]
  assert load_text(str(tmp_path / "*.txt"), max_lines=3) == texts[:3]
  with pytest.raises(FileNotFoundError, match="no text files at .*missing.*repo\\[:config\\]"):
    load_text(str(tmp_path / "missing" / "*.txt"))


def test_load_text_from_hub_mirror(tmp_path, caplog):
  lines = ["Ein Satz.", "", "Noch ein Satz.", "Der dritte."]
  features = datasets.Features({"id": datasets.Value("string"), "text": datasets.Value("string")})
  ds = datasets.Dataset.from_dict({"id": [str(i) for i in range(len(lines))], "text": lines},
                                  features=features)
  synthetic.write_hub_config(tmp_path / "wikimedia" / "wikipedia", "20231101.de", {"train": ds})
  with caplog.at_level(logging.INFO, logger="xtjax.data.pipeline"):
    texts = load_text("wikimedia/wikipedia:20231101.de", hub_mirror=str(tmp_path))
  assert texts == ["Ein Satz.", "Noch ein Satz.", "Der dritte."]
  assert "3 texts, 1 blank lines skipped" in caplog.text
  assert load_text("wikimedia/wikipedia:20231101.de", hub_mirror=str(tmp_path),
                   max_lines=1) == ["Ein Satz."]
  with pytest.raises(ValueError, match="no column 'content'"):
    load_text("wikimedia/wikipedia:20231101.de", column="content", hub_mirror=str(tmp_path))
  with pytest.raises(FileNotFoundError, match="cc100 .*hub_mirror"):
    load_text("cc100:de", hub_mirror=str(tmp_path))
