"""Dual-encoder fine-tuning for Mewsli-X and LAReQA, as XTREME-R's baselines (``dual_encoder``).

One shared encoder embeds queries and candidates: ``<s>`` of the last layer, L2-normalised. The
logits are the query-candidate cosines times a learned scale (initialised to 100), and the loss is
each query's softmax cross-entropy against the candidates of its own micro-batch, the others being
its negatives (upstream's ``BertForRetrieval``). Upstream pools with the pretrained pooler's
dense+tanh; here it is the raw ``<s>`` vector, what ``Encoder(pooling="cls")`` reads back.

Phase fields (`xtjax.phase_config.DualEncoderPhase`): ``task`` (mewslix | lareqa), ``init_from``,
``lower_case`` (default True, as the XLM-R scripts' ``--do_lower_case``) and
``optim``/``train``/``data`` overrides; upstream's XLM-R large settings
(`xtjax.phase_config.DUAL_ENCODER_DEFAULTS`) sit between the run's settings and the overrides.
Mewsli-X trains on ``wikipedia_pairs-train.jsonl``; LAReQA on SQuAD v1.1 (the ``squad`` task's
data). Every ``train.eval_every`` steps the dev pairs (``wikipedia_pairs-dev.jsonl``; SQuAD dev)
are scored in micro-batches like training's: in-batch accuracy (the selection metric) and loss;
training stops on ``train.patience`` like every other (`xtjax.fit`).
The checkpoint keeps the encoder (and the scale, as ``heads/dual_encoder/logit_scale``), so
`xtjax.retrieval.evaluate.Encoder` and later phases read it like any other.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import NamedSharding, PartitionSpec as P

from xtjax import sharding as shd
from xtjax.data import batches, pipeline
from xtjax.data.tasks import get_task
from xtjax.fit import fit
from xtjax.models.xlmr import sub_rng
from xtjax.optim import make_optimizer
from xtjax.params import Model
from xtjax.phase_config import DualEncoderPhase
from xtjax.retrieval import ranking
from xtjax.run import PhaseResult, Run
from xtjax.steps import make_eval_step

SCALE = "heads/dual_encoder/logit_scale"
INITIAL_SCALE = 100.0  # bert.py: logit_scale initialised to 100
KEYS = ("input_ids", "attention_mask", "c_input_ids", "c_attention_mask")


def in_batch_loss(model: Model, params: dict, batch: dict, rng):
  """Mean in-batch softmax loss over the batch's real rows, and (correct, count)."""
  encoder = model.bind({k: v for k, v in params.items() if k != SCALE}).encoder

  def embed(ids, mask, key):
    cls = encoder(ids, mask, rng=key, first_token_only=True).last_hidden_state[:, 0]
    cls = cls.astype(jnp.float32)
    return cls / jnp.maximum(jnp.linalg.norm(cls, axis=-1, keepdims=True), 1e-12)

  q = embed(batch["input_ids"], batch["attention_mask"], sub_rng(rng, 0))
  c = embed(batch["c_input_ids"], batch["c_attention_mask"], sub_rng(rng, 1))
  valid = batch["example_mask"] > 0
  logits = jnp.where(valid[None, :], q @ c.T * params[SCALE], -1e9)  # padding is no candidate
  labels = jnp.arange(len(logits))
  losses = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
  count = valid.sum()
  correct = ((jnp.argmax(logits, -1) == labels) & valid).sum()
  return jnp.where(valid, losses, 0.0).sum() / jnp.maximum(count, 1), {"correct": correct,
                                                                      "count": count}


def pair_features(tokenizer, pairs: ranking.Pairs, query_length: int, candidate_length: int,
                  lower_case: bool) -> dict[str, np.ndarray]:
  """Token ids and masks of both sides, padded to their max lengths (LAReQA candidates are the
  pair sentence, paragraph, truncated longest first as upstream's ``encode_plus``)."""
  prepare = (lambda texts: [t.lower() for t in texts]) if lower_case else list
  q = tokenizer(prepare(pairs.queries), truncation=True, max_length=query_length,
                padding="max_length", return_tensors="np")
  second = None if pairs.contexts is None else prepare(pairs.contexts)
  c = tokenizer(prepare(pairs.candidates), second, truncation=True, max_length=candidate_length,
                padding="max_length", return_tensors="np")
  return {"input_ids": q["input_ids"], "attention_mask": q["attention_mask"],
          "c_input_ids": c["input_ids"], "c_attention_mask": c["attention_mask"]}


def task_pairs(run: Run, task: str, split: str, data) -> ranking.Pairs:
  """The fine-tuning pairs of ``split`` (train or dev)."""
  if task == "mewslix":
    return ranking.mewslix_pairs(ranking.data_dir(run, data, "mewslix"), split)
  rows, _ = pipeline.load_rows(get_task("squad"), split, None, data)
  return ranking.squad_pairs(rows)


def dev_scores(run: Run, eval_step, params, features: dict, batch_size: int) -> dict[str, float]:
  """In-batch ``accuracy`` and ``loss`` over consecutive dev batches of ``batch_size`` (the last
  one filled with masked rows), as training sees them."""
  outputs = [eval_step(params, shd.global_batch(local, run.batch_sh))
             for local, _ in batches.eval_batches(features, KEYS, batch_size, buckets=())]
  host = jax.device_get(outputs)
  count = sum(int(c["count"]) for _, c in host)
  return {"accuracy": 100.0 * sum(int(c["correct"]) for _, c in host) / count,
          "loss": sum(float(l) * int(c["count"]) for l, c in host) / count}


def _batch_ways(run: Run) -> int:
  spec = run.batch_sh.spec[0] if run.batch_sh.spec else None
  axes = () if spec is None else (spec,) if isinstance(spec, str) else tuple(spec)
  return math.prod(run.mesh.shape[a] for a in axes)


def run_phase(run: Run, phase: DualEncoderPhase) -> PhaseResult:
  """Trains the ``init_from`` phase's encoder as a dual encoder on ``phase.task``'s pairs."""
  task, optim, train, data = phase.task, phase.optim, phase.train, phase.data
  accum = optim.grad_accum_steps
  micro = train.batch_size // accum  # the in-batch negatives of each query: micro - 1
  if train.batch_size % accum or micro % _batch_ways(run):
    raise ValueError(f"phase {phase.name}: train.batch_size {train.batch_size} / "
                     f"optim.grad_accum_steps {accum} must be a whole micro-batch that divides "
                     f"over the {_batch_ways(run)} devices sharding the batch")
  limit = run.model_cfg.max_position_embeddings - 2
  q_len, c_len = (min(l, limit) for l in ranking.MAX_LENGTHS[task])
  encode = lambda pairs: pair_features(run.tokenizer, pairs, q_len, c_len, phase.lower_case)
  features = encode(task_pairs(run, task, "train", data))
  dev_pairs = task_pairs(run, task, "dev", data)
  if train.dev_examples:
    dev_pairs = ranking.Pairs(*(None if v is None else v[:train.dev_examples]
                                for v in (dev_pairs.queries, dev_pairs.candidates,
                                          dev_pairs.contexts)))
  dev = encode(dev_pairs)
  n = batches.num_rows(features)
  steps = train.steps or math.ceil(train.epochs * n / train.batch_size)

  model, encoder_sh = run.model()
  param_sh = {**encoder_sh, SCALE: NamedSharding(run.mesh, P())}
  shapes = {**model.shapes(), SCALE: jax.ShapeDtypeStruct((), jnp.float32)}
  tx = make_optimizer(optim, steps, list(param_sh))
  eval_step = make_eval_step(lambda params, batch: in_batch_loss(model, params, batch, None),
                             param_sh, run.batch_sh, NamedSharding(run.mesh, P()))

  def init():
    params, plan = run.trained_params(phase.init_from, model, encoder_sh,
                                      fresh_seed=run.config.seed)
    params[SCALE] = jax.device_put(jnp.float32(INITIAL_SCALE), param_sh[SCALE])
    return params, plan

  def evaluate(params):
    scores = dev_scores(run, eval_step, params, dev, micro)
    return scores["accuracy"], scores

  fitted = fit(run, phase.name, train=train, steps=steps, accum=accum, shapes=shapes,
               param_sh=param_sh, tx=tx,
               loss_fns=[lambda p, b, r: in_batch_loss(model, p, b, r)],
               batches=batches.train_batches([(features, KEYS, None)], micro,
                                             seed=run.config.seed, num_batches=steps * accum),
               init=init, evaluate=evaluate)
  return PhaseResult(phase.name, phase.kind, fitted.selected_step, (), dict(
      task=task, **fitted.summary(), dev_metric="in-batch accuracy", train_size=n,
      dev_size=batches.num_rows(dev), in_batch=micro, lower_case=phase.lower_case,
      max_length={"query": q_len, "candidate": c_len},
      settings={"optim": optim.to_dict(), "train": train.to_dict()}))
