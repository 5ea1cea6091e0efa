"""Dual-encoder fine-tuning for Mewsli-X and LAReQA, as XTREME-R's baselines (``dual_encoder``).

One shared encoder embeds queries and candidates: ``<s>`` of the last layer, L2-normalised. The
logits are the query-candidate cosines times a learned scale (initialised to 100), and the loss is
each query's softmax cross-entropy against the candidates of its own micro-batch, the others being
its negatives (upstream's ``BertForRetrieval``). Upstream pools with the pretrained pooler's
dense+tanh; here it is the raw ``<s>`` vector, what ``Encoder(pooling="cls")`` reads back.

Phase fields: ``task`` (mewslix | lareqa), ``init_from``, ``lower_case`` (default True, as the XLM-R
scripts' ``--do_lower_case``) and ``optim``/``train``/``data`` overrides. `DEFAULTS` (the XLM-R
large settings of upstream's scripts) sit between the run's settings and the phase's overrides.
Mewsli-X trains on ``wikipedia_pairs-train.jsonl``; LAReQA on SQuAD v1.1 (the ``squad`` task's
data). Every ``train.eval_every`` steps the dev pairs (``wikipedia_pairs-dev.jsonl``; SQuAD dev)
are scored in micro-batches like training's: in-batch accuracy (the selection metric) and loss.
The checkpoint keeps the encoder (and the scale, as ``heads/dual_encoder/logit_scale``), so
`xtjax.retrieval.evaluate.Encoder` and later phases read it like any other.
"""

from __future__ import annotations

import math
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from jax.sharding import NamedSharding, PartitionSpec as P

from xtjax import sharding as shd
from xtjax.data import features as feats
from xtjax.data import pipeline
from xtjax.data.tasks import get_task
from xtjax.models.xlmr import sub_rng
from xtjax.optim import make_optimizer
from xtjax.params import Model
from xtjax.retrieval import ranking

SCALE = "heads/dual_encoder/logit_scale"
INITIAL_SCALE = 100.0  # bert.py: logit_scale initialised to 100
KEYS = ("input_ids", "attention_mask", "c_input_ids", "c_attention_mask")
DEFAULTS = {
    # scripts/train_mewslix.sh (xlm-roberta-large): lr 1e-5, 8 per GPU x 4 accumulated, 2 epochs,
    # warmup 0, weight decay 0; run_retrieval_el.py: clip 1.0, eps 1e-8.
    "mewslix": dict(optim=dict(lr=1e-5, warmup=0, weight_decay=0.0, clip=1.0, eps=1e-8,
                               grad_accum_steps=4), train=dict(batch_size=32, epochs=2.0)),
    # scripts/train_lareqa.sh: lr 2e-5, 4 per GPU x 4 accumulated, 3 epochs, warmup 0, weight
    # decay 0; run_retrieval_qa.py: clip 1.0, eps 1e-8.
    "lareqa": dict(optim=dict(lr=2e-5, warmup=0, weight_decay=0.0, clip=1.0, eps=1e-8,
                              grad_accum_steps=4), train=dict(batch_size=16, epochs=3.0)),
}


def in_batch_loss(model: Model, params: dict, batch: dict, rng):
  """Mean in-batch softmax loss over the batch's real rows, and (correct, count)."""
  encoder = model.bind({k: v for k, v in params.items() if k != SCALE}).encoder

  def embed(ids, mask, key):
    cls = encoder(ids, mask, rng=key).last_hidden_state[:, 0].astype(jnp.float32)
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


def make_train_step(model: Model, tx: optax.GradientTransformation, param_sh, opt_sh,
                    batch_sh: NamedSharding):
  """``(params, opt_state, batch, rng) -> (params, opt_state, metrics)``; state donated."""
  replicated = NamedSharding(batch_sh.mesh, P())

  def step(params, opt_state, batch, rng):
    (value, counts), grads = jax.value_and_grad(
        lambda p: in_batch_loss(model, p, batch, rng), has_aux=True)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    params = optax.apply_updates(params, updates)
    return params, opt_state, {"loss": value, "grad_norm": optax.tree.norm(grads), **counts}

  return jax.jit(step, in_shardings=(param_sh, opt_sh, batch_sh, replicated),
                 out_shardings=(param_sh, opt_sh, replicated), donate_argnums=(0, 1))


def make_eval_step(model: Model, param_sh, batch_sh: NamedSharding):
  """``(params, batch) -> (loss, counts)`` without dropout."""
  replicated = NamedSharding(batch_sh.mesh, P())
  return jax.jit(lambda params, batch: in_batch_loss(model, params, batch, None),
                 in_shardings=(param_sh, batch_sh), out_shardings=replicated)


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


def task_pairs(run, task: str, split: str, data) -> ranking.Pairs:
  """The fine-tuning pairs of ``split`` (train or dev)."""
  if task == "mewslix":
    return ranking.mewslix_pairs(ranking.data_dir(run, data, "mewslix"), split)
  squad = get_task("squad")
  rows, _ = pipeline.load_rows(squad, split, None, data)
  return ranking.squad_pairs(rows)


def dev_scores(run, eval_step, params, features: dict, batch_size: int) -> dict[str, float]:
  """In-batch ``accuracy`` and ``loss`` over consecutive dev batches (the last one padded)."""
  n, n_proc = feats.num_rows(features), jax.process_count()
  local = batch_size // n_proc
  outputs = []
  for start in range(0, n, batch_size):
    rows = np.arange(start, start + batch_size)
    mask = (rows < n).astype(np.int32)
    rows = np.where(rows < n, rows, start)
    batch = {k: np.asarray(features[k])[rows] for k in KEYS}
    batch["example_mask"] = mask
    mine = slice(jax.process_index() * local, (jax.process_index() + 1) * local)
    outputs.append(eval_step(params, shd.global_batch({k: v[mine] for k, v in batch.items()},
                                                      run.batch_sh)))
  host = jax.device_get(outputs)
  count = sum(int(c["count"]) for _, c in host)
  return {"accuracy": 100.0 * sum(int(c["correct"]) for _, c in host) / count,
          "loss": sum(float(l) * int(c["count"]) for l, c in host) / count}


def _batch_ways(run) -> int:
  spec = run.batch_sh.spec[0] if run.batch_sh.spec else None
  axes = () if spec is None else (spec,) if isinstance(spec, str) else tuple(spec)
  return math.prod(run.mesh.shape[a] for a in axes)


def run_phase(run, name: str, phase) -> dict:
  """Trains the ``init_from`` phase's encoder as a dual encoder on ``phase.task``'s pairs."""
  from xtjax.train import (log_train_metrics, metric_writer, phase_settings, progress_bar,
                           start_or_resume)
  task = phase.task
  if task not in DEFAULTS:
    raise ValueError(f"phase {name}: unknown dual_encoder task {task!r}: use {', '.join(DEFAULTS)}")
  merged = ml_collections.ConfigDict(
      {k: {**DEFAULTS[task].get(k, {}), **dict(phase.get(k, {}) or {})}
       for k in ("optim", "train", "data")})
  optim, train, data = phase_settings(run, merged)
  accum = optim.grad_accum_steps
  micro = train.batch_size // accum  # the in-batch negatives of each query: micro - 1
  if train.batch_size % accum or micro % _batch_ways(run):
    raise ValueError(f"phase {name}: train.batch_size {train.batch_size} / optim.grad_accum_steps "
                     f"{accum} must be a whole micro-batch that divides over the "
                     f"{_batch_ways(run)} devices sharding the batch")
  lower_case = phase.get("lower_case", True)
  limit = run.model_cfg.max_position_embeddings - 2
  q_len, c_len = (min(l, limit) for l in ranking.MAX_LENGTHS[task])
  encode = lambda pairs: pair_features(run.tokenizer, pairs, q_len, c_len, lower_case)
  features = encode(task_pairs(run, task, "train", data))
  dev_pairs = task_pairs(run, task, "dev", data)
  if train.dev_examples:
    dev_pairs = ranking.Pairs(*(None if v is None else v[:train.dev_examples]
                                for v in (dev_pairs.queries, dev_pairs.candidates,
                                          dev_pairs.contexts)))
  dev = encode(dev_pairs)
  n = feats.num_rows(features)
  steps = train.steps or math.ceil(train.epochs * n / train.batch_size)

  model, encoder_sh = run.model({})
  param_sh = {**encoder_sh, SCALE: NamedSharding(run.mesh, P())}
  shapes = {**model.shapes(), SCALE: jax.ShapeDtypeStruct((), jnp.float32)}
  tx = make_optimizer(optim, steps, list(param_sh))
  ckpt = run.checkpoints(name, select_metric="dev_score")
  data_iter = feats.train_batches([(features, KEYS, None)], micro, seed=run.config.seed,
                                  num_batches=steps * accum)

  def init():
    params, plan = run.trained_params(phase.init_from, model, encoder_sh,
                                      fresh_seed=run.config.seed)
    params[SCALE] = jax.device_put(jnp.float32(INITIAL_SCALE), param_sh[SCALE])
    return params, plan

  params, opt_state, opt_sh, start, history, plan = start_or_resume(
      run, name, ckpt, shapes, param_sh, tx, data_iter, init)

  train_step = make_train_step(model, tx, param_sh, opt_sh, run.batch_sh)
  eval_step = make_eval_step(model, param_sh, run.batch_sh)
  writer = metric_writer(run, name)
  base_rng = jax.random.key(run.config.seed + 1, impl=train.rng_impl)
  pending, t0 = [], time.time()
  bar = progress_bar(name, start, steps)
  with jax.set_mesh(run.mesh):
    for step in bar:
      for i in range(accum):
        local = next(data_iter)
        local.pop("task")
        params, opt_state, metrics = train_step(params, opt_state,
                                                shd.global_batch(local, run.batch_sh),
                                                jax.random.fold_in(base_rng, step * accum + i))
        pending.append(metrics)
      done = step + 1
      if done % train.log_every == 0 or done % train.eval_every == 0 or done == steps:
        log_train_metrics(pending, done, name, accum, t0, bar, writer)
        pending, t0 = [], time.time()
      if done % train.eval_every == 0 or done == steps:
        scores = dev_scores(run, eval_step, params, dev, micro)
        history.append({"step": done, "dev_score": scores["accuracy"], "dev": scores})
        if writer:
          for k, v in scores.items():
            writer.add_scalar(f"dev/{k}", v, done)
        ckpt.save(done, params, opt_state, data_iter, metrics={"dev_score": scores["accuracy"]},
                  meta={"phase": name, "step": done, "history": history, "plan": plan,
                        "config": run.config.to_dict()})
        bar.set_description(f"{name} dev {scores['accuracy']:.1f}")
  ckpt.wait()
  kept = set(ckpt.manager.all_steps())
  ckpt.close()
  if writer:
    writer.close()
  best = max((h for h in history if h["step"] in kept), key=lambda h: (h["dev_score"], h["step"]))
  return {"task": task, "steps": steps, "steps_done": history[-1]["step"],
          "selected_step": best["step"], "dev_metric": "in-batch accuracy",
          "dev_score": best["dev_score"], "dev": best["dev"], "history": history,
          "loaded_from": plan, "train_size": n, "dev_size": feats.num_rows(dev),
          "in_batch": micro, "lower_case": lower_case,
          "max_length": {"query": q_len, "candidate": c_len},
          "settings": {"optim": optim.to_dict(), "train": train.to_dict()}}
