"""Training batches cut to their longest row (``data.train_buckets``): the same rows in the same
order, one length per global batch in every process, and the same loss and gradients as the
batch padded to ``max_length``, dropout included."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from xtjax import kinds
from xtjax.data import batches

MAX = 48
BUCKETS = (16, 32)


def tagging_features(n=64, seed=0):
  rng = np.random.default_rng(seed)
  lengths = rng.integers(4, 30, n)
  lengths[rng.choice(n, 3, replace=False)] = MAX  # a few full rows
  mask = (np.arange(MAX) < lengths[:, None]).astype(np.int32)
  ids = np.where(mask, rng.integers(5, 99, (n, MAX)), 1)
  labels = np.where(mask, rng.integers(0, 5, (n, MAX)), -100)
  return {"input_ids": ids, "attention_mask": mask, "labels": labels,
          "label": rng.integers(0, 3, n)}


KEYS = ("input_ids", "attention_mask", "labels", "label")


def take(features, n_batches, *, buckets, processes=(1, 0), batch=8, monkeypatch=None):
  if monkeypatch is not None:
    monkeypatch.setattr(jax, "process_count", lambda: processes[0])
    monkeypatch.setattr(jax, "process_index", lambda: processes[1])
  it = batches.train_batches([(features, KEYS, None)], batch, seed=3, buckets=[buckets])
  return [next(it) for _ in range(n_batches)]


def test_cut_batches_hold_the_same_rows_cut_to_the_global_longest(monkeypatch):
  features = tagging_features()
  padded = take(features, 24, buckets=())
  cut = take(features, 24, buckets=BUCKETS)
  halves = [take(features, 24, buckets=BUCKETS, processes=(2, p), monkeypatch=monkeypatch)
            for p in range(2)]
  lengths = set()
  for j, (full, short) in enumerate(zip(padded, cut)):
    longest = batches.row_lengths(full["attention_mask"]).max()
    length = short["input_ids"].shape[1]
    assert length == min(b for b in (*BUCKETS, MAX) if b >= longest)
    lengths.add(length)
    for k in ("input_ids", "attention_mask", "labels"):
      np.testing.assert_array_equal(short[k], full[k][:, :length])
      assert (full["attention_mask"][:, length:] == 0).all()
    np.testing.assert_array_equal(short["label"], full["label"])
    # Two processes: each holds every other row of the global batch, cut to the same length,
    # though its own rows may all be shorter.
    for p, half in enumerate(halves):
      np.testing.assert_array_equal(half[j]["input_ids"], short["input_ids"][p::2])
  assert lengths == {32, MAX}  # both kinds of batch occur in 24


def test_cut_batches_resume_from_a_saved_iterator_state():
  features = tagging_features()
  it = batches.train_batches([(features, KEYS, None)], 8, seed=3, buckets=[BUCKETS])
  for _ in range(5):
    next(it)
  state = it.get_state()
  ahead = [next(it) for _ in range(6)]
  again = batches.train_batches([(features, KEYS, None)], 8, seed=3, buckets=[BUCKETS])
  again.set_state(state)
  for a, b in zip(ahead, [next(again) for _ in range(6)]):
    assert a["input_ids"].shape == b["input_ids"].shape
    np.testing.assert_array_equal(a["input_ids"], b["input_ids"])


def test_multiple_choice_rows_are_cut_on_their_position_axis():
  mask = np.zeros((16, 2, MAX), np.int32)
  mask[:, 0, :10] = 1
  mask[:, 1, :20] = 1
  mask[5, 1, :25] = 1
  features = {"input_ids": np.where(mask, 7, 1), "attention_mask": mask,
              "label": np.zeros(16, np.int32)}
  assert batches.row_lengths(mask)[5] == 25 and batches.row_lengths(mask)[0] == 20
  assert batches.row_lengths(np.zeros((1, MAX)))[0] == 0
  it = batches.train_batches([(features, ("input_ids", "attention_mask", "label"), None)], 16,
                             seed=0, buckets=[(24, 32)])
  batch = next(it)
  assert batch["input_ids"].shape == (16, 2, 32) and batch["label"].shape == (16,)


def test_every_kind_but_extractive_qa_may_cut_its_padding():
  assert {k: kinds.get(k).cut_padding for k in kinds.KINDS} == {
      "classification": True, "multiple_choice": True, "token_classification": True,
      "question_answering": False, "masked_lm": True}


@pytest.mark.parametrize("prefix", [False, True])
def test_a_cut_batch_has_the_padded_batchs_loss_and_gradients(prefix):
  """Dropout (hidden and attention) is drawn by position, so cutting the padding changes no
  number: the tagging and sentence-classification losses and every gradient agree."""
  from xtjax.models.heads import ClassificationHead, TaskModel, TokenClassificationHead
  from xtjax.models.prefix import PrefixConfig
  from xtjax.models.xlmr import XLMRConfig
  from xtjax.params import Model

  cfg = XLMRConfig(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                   intermediate_size=37, max_position_embeddings=64)
  model = Model.create(lambda rngs: TaskModel(
      cfg, {"tag": (TokenClassificationHead, 5), "cls": (ClassificationHead, 3)},
      prefix=PrefixConfig(length=3) if prefix else None, rngs=rngs))
  params = model.init(jax.random.key(0))
  full = next(b for b in take(tagging_features(seed=1), 10, buckets=())
              if batches.row_lengths(b["attention_mask"]).max() < 32)
  full = {**full, "example_mask": np.ones(8, np.int32)}
  cut = batches.cut(full, 32)

  def loss(p, batch, seed=7):
    bound = model.bind(p)
    tag = kinds.get("token_classification").loss(
        bound(batch, task="tag", rng=jax.random.key(seed)), batch)[0]
    cls = kinds.get("classification").loss(
        bound(batch, task="cls", rng=jax.random.key(seed + 1)), batch)[0]
    return tag + cls

  to_device = lambda b: {k: jnp.asarray(v) for k, v in b.items()}  # noqa: E731
  value, grads = jax.value_and_grad(loss)(params, to_device(full))
  cut_value, cut_grads = jax.value_and_grad(loss)(params, to_device(cut))
  np.testing.assert_allclose(cut_value, value, rtol=1e-6)
  for k in grads:
    np.testing.assert_allclose(cut_grads[k], grads[k], rtol=1e-4, atol=1e-7, err_msg=k)
  # A different dropout key gives a different loss: the masks are in play.
  assert abs(float(loss(params, to_device(full), seed=9)) - float(value)) > 1e-4
