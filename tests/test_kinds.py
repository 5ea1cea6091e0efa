"""A new task kind is one record: sentence-pair regression, registered here and nowhere else,
trains and evaluates end to end through a config (data in the hub layout, pretrained phase,
train phase, zero-shot eval phase in two languages)."""

import json

import datasets
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import configs.demo as demo_config
from xtjax import kinds, runner
from xtjax.config import base_config
from xtjax.data import synthetic
from xtjax.data.tasks import TASKS, Source, Task
from xtjax.models.heads import encode
from xtjax.models.xlmr import EMBED, dense
from xtjax.phases.demo_assets import write_model

WORDS = ("red", "green", "blue", "cat", "dog", "house", "tree", "river", "moon", "sun")


class RegressionHead(nnx.Module):
  """One number per pair from <s>."""

  def __init__(self, cfg, num_labels, dtype, rngs):
    self.out = dense(cfg, cfg.hidden_size, 1, (EMBED, None), dtype, rngs)

  def __call__(self, encoder, batch, rng=None):
    return self.out(encode(encoder, batch, rng)[:, 0])[:, 0].astype(jnp.float32)


def convert(row, source, task, names, training):
  a, b, score = row["sentence1"], row["sentence2"], row["score"]
  if not isinstance(score, float) or not 0 <= score <= 1:
    return None, "score outside [0, 1]"
  return {"text_a": a, "text_b": b, "target": score}, ""


def features(rows, tokenizer, data, *, training, pair):
  enc = tokenizer(rows["text_a"], rows["text_b"], truncation=True, max_length=data.max_length,
                  padding="max_length", return_tensors="np")
  return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"],
          "target": np.asarray(rows["target"], np.float32)}


def mse(prediction, batch):
  mask = batch["example_mask"]
  err = (prediction - batch["target"]) ** 2
  n = mask.sum()
  return ((err * mask).sum() / jnp.maximum(n, 1),
          {"correct": ((err < 0.01) & (mask > 0)).sum(), "count": n})


def scores(task, predicted, gold, language):
  p, g = np.asarray(predicted), np.asarray(gold)
  return {"pearson": 100 * float(np.corrcoef(p, g)[0, 1]), "mse": float(np.mean((p - g) ** 2))}


REGRESSION = kinds.Kind(
    name="regression", fields={"text_a": "", "text_b": "", "target": 0.0}, convert=convert,
    encode=features, targets=("target",), head=RegressionHead, loss=mse,
    predictions=lambda task, rows, features, logits, data, language, tokenizer:
        [float(x) for x in logits],
    gold=lambda task, rows: list(rows["target"]), score=scores)


def pairs(rng, n):
  """Pairs whose score is the share of the word "sun" among the second sentence's four words."""
  out = {"sentence1": [], "sentence2": [], "score": []}
  for _ in range(n):
    suns = int(rng.integers(0, 5))
    second = ["sun"] * suns + list(rng.choice(WORDS[:-2], 4 - suns))
    out["sentence1"].append(" ".join(rng.choice(WORDS[:-2], 4)))
    out["sentence2"].append(" ".join(rng.permutation(second)))
    out["score"].append(suns / 4)
  return out


@pytest.fixture
def regression_task(tmp_path, monkeypatch):
  rng = np.random.default_rng(0)
  splits = {s: datasets.Dataset.from_dict(pairs(rng, n))
            for s, n in (("train", 256), ("validation", 32), ("test", 32))}
  synthetic.write_hub_config(tmp_path / "hub" / "toy" / "sts", "default", splits)
  texts = [t for ds in splits.values() for t in list(ds["sentence1"]) + list(ds["sentence2"])]
  spec = demo_config.get_config().demo
  spec.update(vocab_size=200, hidden_size=32, num_layers=1, num_heads=2, max_positions=32)
  write_model(texts, tmp_path / "model", spec)
  src = lambda split: Source("toy/sts", ("default",), split,
                             (("text_a", "sentence1"), ("text_b", "sentence2")))
  monkeypatch.setitem(kinds.KINDS, "regression", REGRESSION)
  monkeypatch.setitem(TASKS, "toy_sts", Task(
      "toy_sts", "regression", train=src("train"), dev=src("validation"),
      test={"en": src("test"), "de": src("test")}, metric="pearson"))
  return tmp_path


@pytest.mark.slow
def test_a_new_kind_trains_and_evaluates_through_a_config(regression_task):
  c = base_config()
  c.run_dir = str(regression_task / "run")
  c.model.update(checkpoint=str(regression_task / "model"), dtype="float32")
  c.data.update(hub_mirror=str(regression_task / "hub"), max_length=16)
  c.optim.update(lr=3e-3, warmup=0.0)
  c.train.update(batch_size=32, eval_batch_size=32, steps=40, eval_every=20, log_every=10)
  c.phases.pretrained = dict(kind="pretrained")
  c.phases.sts = dict(kind="train", task="toy_sts", init_from="pretrained", dont_load=["heads/.*"])
  c.phases.eval_sts = dict(kind="eval", task="toy_sts", from_phase="sts", languages=("en", "de"))
  results = runner.run_all(c)
  trained = results["sts"]
  assert trained["dev_metric"] == {"toy_sts": "pearson"}
  assert [h["step"] for h in trained["history"]] == [20, 40]
  metrics = results["eval_sts"]["metrics"]
  assert set(metrics) == {"pearson", "mse"} and set(metrics["pearson"]) == {"en", "de"}
  assert metrics["pearson"]["en"] > 50  # it learned to count the word
  predicted = json.loads((regression_task / "run" / "eval_sts" / "predictions" / "toy_sts"
                          / "test-en.json").read_text())
  assert len(predicted) == 32 and all(isinstance(p, float) for p in predicted)
