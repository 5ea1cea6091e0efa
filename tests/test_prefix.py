"""Deep prompt (prefix) tuning: the prompts' attention against a NumPy reference, length 0 as the
plain model, a train step that leaves the backbone bitwise unchanged with optimizer state for
prompts and heads only, and trainable counts against hand counts (XLM-R large included)."""

import math

import jax
import ml_collections
import numpy as np
import pytest

from xtjax import kinds
from xtjax import sharding as shd
from xtjax.models.heads import ClassificationHead, QuestionAnsweringHead, TaskModel, \
    TokenClassificationHead
from xtjax.models.prefix import PrefixConfig
from xtjax.models.xlmr import PRESETS, XLMRConfig
from xtjax.optim import frozen_keys, make_optimizer, prompt_or_head
from xtjax.params import Model, parameter_counts
from xtjax.steps import make_train_step, opt_shardings

CFG = XLMRConfig(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                 intermediate_size=37, max_position_embeddings=40, hidden_dropout_prob=0.1,
                 attention_probs_dropout_prob=0.1)
OPTIM = ml_collections.ConfigDict(dict(lr=1e-2, warmup=0, weight_decay=0.01, b1=0.9, b2=0.999,
                                       eps=1e-8, clip=1.0, grad_accum_steps=1, freeze=()))


def model_of(cfg=CFG, prefix=None, heads=None):
  heads = {"nli": (ClassificationHead, 3)} if heads is None else heads
  return Model.create(lambda rngs: TaskModel(cfg, heads, prefix=prefix, rngs=rngs))


def batch(n=4, length=9, seed=0):
  rng = np.random.default_rng(seed)
  ids = rng.integers(3, 99, (n, length)).astype(np.int32)
  ids[:, 0] = 0
  mask = np.ones_like(ids)
  ids[1, 5:], mask[1, 5:] = 1, 0  # padding in the second row
  return {"input_ids": ids, "attention_mask": mask,
          "label": rng.integers(0, 3, n).astype(np.int32), "example_mask": np.ones(n, np.int32)}


def test_prefix_length_zero_is_the_plain_model_bit_for_bit():
  plain, zero = model_of(), model_of(prefix=PrefixConfig(length=0))
  assert zero.shapes().keys() == plain.shapes().keys()
  params = jax.jit(plain.init)(jax.random.key(0))
  b = batch()
  for rng in (None, jax.random.key(3)):  # evaluation and training (dropout) alike
    ours = zero.bind(params)(b, task="nli", rng=rng)
    theirs = plain.bind(params)(b, task="nli", rng=rng)
    np.testing.assert_array_equal(np.asarray(ours), np.asarray(theirs))
  a = zero.bind(params).encoder(b["input_ids"], b["attention_mask"], output_hidden_states=True)
  c = plain.bind(params).encoder(b["input_ids"], b["attention_mask"], output_hidden_states=True)
  for x, y in zip(a.hidden_states, c.hidden_states):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def _ln(x, p, name, eps=1e-5):
  mean = x.mean(-1, keepdims=True)
  var = ((x - mean) ** 2).mean(-1, keepdims=True)
  return (x - mean) / np.sqrt(var + eps) * p[f"{name}/scale"] + p[f"{name}/bias"]


def _dense(x, p, name):
  return x @ p[f"{name}/kernel"] + p[f"{name}/bias"]


def reference(p, cfg, ids, mask, table):
  """The encoder in float64 NumPy with prompts ``table`` (P, layers, 2, hidden) prepended to
  every layer's keys and values, and RoBERTa positions of the real tokens alone."""
  p = {k.removeprefix("encoder/"): np.asarray(v, np.float64) for k, v in p.items()}
  b, t = ids.shape
  h, n_heads, length = cfg.hidden_size, cfg.num_attention_heads, table.shape[0]
  d = h // n_heads
  not_pad = (ids != cfg.pad_token_id).astype(np.int64)
  positions = np.cumsum(not_pad, 1) * not_pad + cfg.pad_token_id
  x = (p["embeddings/word_embeddings/embedding"][ids]
       + p["embeddings/token_type_embeddings/embedding"][0]
       + p["embeddings/position_embeddings/embedding"][positions])
  if not cfg.pre_layer_norm:
    x = _ln(x, p, "embeddings/layer_norm")
  keep = np.concatenate([np.ones((b, length)), mask], 1)
  bias = np.where(keep > 0, 0.0, -1e30)[:, None, None, :]
  heads = lambda y: y.reshape(y.shape[0], -1, n_heads, d).transpose(0, 2, 1, 3)
  gelu = np.vectorize(lambda v: 0.5 * v * (1 + math.erf(v / math.sqrt(2))))
  for i in range(cfg.num_hidden_layers):
    name = f"layers/{i}"
    inp = _ln(x, p, f"{name}/attention_norm") if cfg.pre_layer_norm else x
    q = heads(_dense(inp, p, f"{name}/attention/query"))
    k = heads(_dense(inp, p, f"{name}/attention/key"))
    v = heads(_dense(inp, p, f"{name}/attention/value"))
    pk = np.broadcast_to(heads(table[None, :, i, 0]), (b, n_heads, length, d))
    pv = np.broadcast_to(heads(table[None, :, i, 1]), (b, n_heads, length, d))
    k, v = np.concatenate([pk, k], 2), np.concatenate([pv, v], 2)
    scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(d) + bias
    probs = np.exp(scores - scores.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    ctx = (probs @ v).transpose(0, 2, 1, 3).reshape(b, t, h)
    attn = _dense(ctx, p, f"{name}/attention/output")
    if cfg.pre_layer_norm:
      x = x + attn
      x = x + _dense(gelu(_dense(_ln(x, p, f"{name}/ffn_norm"), p, f"{name}/intermediate")), p,
                     f"{name}/output")
    else:
      x = _ln(x + attn, p, f"{name}/attention_norm")
      x = _ln(x + _dense(gelu(_dense(x, p, f"{name}/intermediate")), p, f"{name}/output"), p,
              f"{name}/ffn_norm")
  return _ln(x, p, "final_norm") if cfg.pre_layer_norm else x


@pytest.mark.slow
@pytest.mark.parametrize("pre_ln", [False, True], ids=["post_ln", "pre_ln_xl"])
@pytest.mark.parametrize("projection", [False, True], ids=["table", "mlp"])
def test_prompts_are_extra_keys_and_values_of_every_layer(pre_ln, projection):
  cfg = XLMRConfig(**{**CFG.__dict__, "pre_layer_norm": pre_ln})
  prefix = PrefixConfig(length=3, projection=projection, hidden_size=8)
  model = model_of(cfg, prefix)
  params = jax.jit(model.init)(jax.random.key(1))
  keys = sorted(k for k in params if k.startswith("encoder/prefix/"))
  assert keys == (["encoder/prefix/dense/bias", "encoder/prefix/dense/kernel",
                   "encoder/prefix/embedding", "encoder/prefix/out/bias",
                   "encoder/prefix/out/kernel"] if projection else ["encoder/prefix/key_values"])
  bound = model.bind(params)
  table = np.asarray(bound.encoder.prefix.table(), np.float64)
  if projection:  # Linear(hidden, 8) -> tanh -> Linear(8, 2 x layers x hidden), as P-tuning v2
    p = {k: np.asarray(v, np.float64) for k, v in params.items()}
    flat = np.tanh(p["encoder/prefix/embedding"] @ p["encoder/prefix/dense/kernel"]
                   + p["encoder/prefix/dense/bias"]) @ p["encoder/prefix/out/kernel"] \
        + p["encoder/prefix/out/bias"]
    np.testing.assert_allclose(table, flat.reshape(3, 2, 2, 32), atol=1e-6)
  b = batch()
  ours = bound.encoder(b["input_ids"], b["attention_mask"]).last_hidden_state
  encoder = {k: v for k, v in params.items() if k.startswith("encoder/")}
  theirs = reference(encoder, cfg, b["input_ids"], b["attention_mask"], table)
  np.testing.assert_allclose(np.asarray(ours), theirs, atol=1e-5, rtol=0)
  plain = model_of(cfg).bind({k: v for k, v in params.items() if k not in keys})
  assert not np.allclose(np.asarray(ours), np.asarray(plain.encoder(
      b["input_ids"], b["attention_mask"]).last_hidden_state), atol=1e-3)  # prompts matter


@pytest.mark.parametrize("projection", [False, True], ids=["table", "mlp"])
def test_prompts_start_as_mpt_initialises_them(projection):
  """MPT's from_pretrained (transformers 4.20.1, fast init) re-initialises what the checkpoint
  lacks with _init_weights: N(0, initializer_range) and zero biases."""
  model = model_of(prefix=PrefixConfig(length=64, projection=projection, hidden_size=128))
  params = jax.jit(model.init)(jax.random.key(0))
  prompts = {k.removeprefix("encoder/prefix/"): np.asarray(v) for k, v in params.items()
             if k.startswith("encoder/prefix/")}
  normal = ["embedding", "dense/kernel", "out/kernel"] if projection else ["key_values"]
  assert sorted(prompts) == sorted([*normal, *(["dense/bias", "out/bias"] if projection else [])])
  for name in normal:
    assert abs(prompts[name].mean()) < 0.002 and abs(prompts[name].std() - 0.02) < 0.001, name
  for name in set(prompts) - set(normal):
    assert not prompts[name].any(), name


@pytest.mark.slow
def test_prompts_get_dropout_in_training_only():
  model = model_of(prefix=PrefixConfig(length=4))
  params = jax.jit(model.init)(jax.random.key(0))
  prefix = model.bind(params).encoder.prefix
  table = np.asarray(prefix.table())
  clean = np.asarray(prefix(2, None))  # (layers, 2, batch, heads, P, head_dim)
  assert clean.shape == (2, 2, 2, 4, 4, 8)
  np.testing.assert_array_equal(clean[1, 0, 1].transpose(1, 0, 2).reshape(4, 32), table[:, 1, 0])
  dropped = np.asarray(prefix(2, jax.random.key(5)))
  zeros = dropped == 0
  assert 0.03 < zeros.mean() < 0.2  # the model's hidden dropout, 0.1
  np.testing.assert_allclose(dropped[~zeros], clean[~zeros] / 0.9, rtol=1e-6)
  assert not np.array_equal(zeros[:, :, 0], zeros[:, :, 1])  # a mask per example, as MPT


@pytest.mark.slow
def test_prefix_training_leaves_the_backbone_bitwise_and_holds_state_for_prompts_and_heads():
  mesh = shd.make_mesh(shd.PRESETS["data"]["mesh"])
  rules = shd.PRESETS["data"]["rules"]
  model = model_of(prefix=PrefixConfig(length=4))
  shapes = model.shapes()
  param_sh = shd.param_shardings(shapes, model.logical_axes(), mesh, rules)
  frozen = frozen_keys(param_sh, (), prompt_or_head)
  trainable = [k for k in shapes if k not in frozen]
  assert trainable == sorted(trainable) and all(
      k.startswith(("encoder/prefix/", "heads/nli/")) for k in trainable)
  assert len(trainable) == 5 and len(frozen) == len(shapes) - 5
  tx = make_optimizer(OPTIM, 10, list(param_sh), frozen)
  opt_sh = opt_shardings(jax.eval_shape(tx.init, shapes), shapes, param_sh, mesh)
  batch_sh = shd.batch_sharding(mesh, rules)
  loss = lambda p, b, r: kinds.get("classification").loss(model.bind(p)(b, task="nli", rng=r), b)
  step = make_train_step(loss, tx, param_sh, opt_sh, batch_sh, frozen)
  with jax.set_mesh(mesh):
    params = jax.jit(model.init, out_shardings=param_sh)(jax.random.key(0))
    before = {k: np.asarray(v).copy() for k, v in params.items()}
    opt_state = jax.jit(tx.init, out_shardings=opt_sh)(params)
    for i in range(3):
      params, opt_state, metrics = step(params, opt_state,
                                        shd.global_batch(batch(8, seed=i), batch_sh),
                                        jax.random.key(i))
  assert np.isfinite(float(metrics["loss"]))
  for k in frozen:  # bit for bit, not merely close
    assert np.asarray(params[k]).tobytes() == before[k].tobytes(), k
  for k in trainable:
    assert not np.array_equal(np.asarray(params[k]), before[k]), k
  # Adam's mu and nu for each trained parameter and nothing else (besides step counts).
  leaves = jax.tree_util.tree_flatten_with_path(opt_state)[0]
  arrays = [(jax.tree_util.keystr(path), leaf) for path, leaf in leaves if np.ndim(leaf)]
  assert len(arrays) == 2 * len(trainable)
  for path, leaf in arrays:
    owner = [k for k in trainable if f"'{k}'" in path]
    assert len(owner) == 1 and leaf.shape == shapes[owner[0]].shape, path
  assert not any(f"'{k}'" in path for k in frozen for path, _ in arrays)


def test_trainable_counts_equal_hand_counts():
  model = model_of(prefix=PrefixConfig(length=4))
  frozen = frozen_keys(model.shapes(), (), prompt_or_head)
  counts = parameter_counts(model.shapes(), frozen)
  prompts = 4 * 2 * 2 * 32  # P x layers x (key, value) x hidden
  head = 32 * 32 + 32 + 32 * 3 + 3  # dense and out_proj of the RoBERTa classification head
  assert counts["prompts"] == prompts and counts["heads"] == head
  assert counts["trainable"] == prompts + head
  assert counts["total"] == counts["encoder"] + prompts + head
  assert counts["fraction"] == (prompts + head) / counts["total"]
  assert parameter_counts(model.shapes())["fraction"] == 1.0  # full fine-tuning


LARGE_ENCODER = 558_840_832  # tests/test_presets.py: Hugging Face's count without the pooler


@pytest.mark.parametrize("head,labels,head_count", [
    (TokenClassificationHead, 17, 1024 * 17 + 17),  # UD-POS
    (QuestionAnsweringHead, 2, 1024 * 2 + 2),  # XQuAD, TyDiQA
    (ClassificationHead, 2, 1024 * 1024 + 1024 + 1024 * 2 + 2),  # PAWS-X
], ids=["tagging", "qa", "classification"])
def test_xlmr_large_at_16_prompts_trains_a_tenth_of_a_percent(head, labels, head_count):
  """Shapes only: nothing is allocated."""
  model = model_of(PRESETS["xlm-roberta-large"], PrefixConfig(length=16), {"t": (head, labels)})
  counts = parameter_counts(model.shapes(), frozen_keys(model.shapes(), (), prompt_or_head))
  prompts = 16 * 24 * 2 * 1024
  assert counts["prompts"] == prompts == 786_432 and counts["encoder"] == LARGE_ENCODER
  assert counts["trainable"] == prompts + head_count
  assert counts["fraction"] == (prompts + head_count) / (LARGE_ENCODER + prompts + head_count)
  # ~0.14% with a tagging or QA head; xtjax's RoBERTa classification head (dense + out_proj,
  # where MPT trains one linear layer on the frozen pooler) brings it to ~0.33%.
  assert 0.0014 < counts["fraction"] < (0.0015 if head is not ClassificationHead else 0.0034)
