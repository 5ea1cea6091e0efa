"""The encoder's building blocks that are written for speed: dropout masks from an unrolled
Threefry, attention over head-major queries, keys and values, and column sums as dot products."""

import jax
import jax.extend.random as jex_random
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import NamedSharding, PartitionSpec as P

from xtjax.models.xlmr import attend, dropout, gelu, keep_mask, threefry2x32
from xtjax.reductions import flat_norm, global_norm, sum_rows


def test_threefry_is_jax_threefry():
  key = jnp.array([0x12345678, 0x9ABCDEF0], jnp.uint32)
  hi = jnp.arange(1000, dtype=jnp.uint32) * np.uint32(7919)
  lo = jnp.arange(1000, dtype=jnp.uint32)
  ours = jax.jit(threefry2x32)((key[0], key[1]), (hi, lo))
  theirs = jex_random.threefry2x32_p.bind(key[0], key[1], hi, lo)
  for a, b in zip(ours, theirs):
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("rate,grid", [(0.1, None), (0.5, None), (0.1, (16, 8, 2048, 2048))])
def test_keep_mask_rate_and_independence(rate, grid):
  """Also numbered in attention's position grid (`xtjax.models.xlmr.ATTENTION_GRID`)."""
  shape = (16, 8, 64, 61)  # an odd last axis, as attention probabilities over any length
  mask = np.asarray(jax.jit(keep_mask, static_argnums=(1, 2, 3))(jax.random.key(0), shape, rate,
                                                                 grid))
  assert mask.shape == shape and mask.dtype == bool
  n = mask.size
  assert abs(mask.mean() - (1 - rate)) < 5 * np.sqrt(rate * (1 - rate) / n)
  # Rows of the batch, heads and neighbouring positions are not copies of each other.
  flat = mask.reshape(16, -1).astype(np.float64)
  corr = np.corrcoef(flat)[np.triu_indices(16, 1)]
  assert np.abs(corr).max() < 0.05
  assert (mask[:, :, :, 1:] != mask[:, :, :, :-1]).mean() > 2 * rate * (1 - rate) - 0.01
  # Deterministic in the key; another key gives another mask.
  again = np.asarray(keep_mask(jax.random.key(0), shape, rate, grid))
  np.testing.assert_array_equal(mask, again)
  assert (np.asarray(keep_mask(jax.random.key(1), shape, rate, grid)) != mask).mean() > rate


def test_dropout_scales_kept_values_and_is_identity_without_key():
  x = jnp.ones((64, 128, 32))
  y = np.asarray(dropout(x, 0.1, jax.random.key(3)))
  assert set(np.unique(y)) <= {0.0, np.float32(1 / 0.9)}
  assert abs(y.mean() - 1.0) < 0.01
  assert dropout(x, 0.1, None) is x and dropout(x, 0.0, jax.random.key(3)) is x
  assert dropout(x.astype(jnp.bfloat16), 0.1, jax.random.key(3)).dtype == jnp.bfloat16


def test_keep_mask_is_the_same_with_a_sharded_batch():
  mesh = jax.make_mesh((8,), ("data",))
  shape = (16, 8, 32, 32)
  sharded = jax.jit(lambda k: keep_mask(k, shape, 0.1),
                    out_shardings=NamedSharding(mesh, P("data")))(jax.random.key(5))
  np.testing.assert_array_equal(sharded, keep_mask(jax.random.key(5), shape, 0.1))


def test_attention_ignores_masked_extra_keys():
  """Keys and values may be longer than the queries (prefixes); masked keys change nothing."""
  rng = np.random.default_rng(0)
  q, k, v = (jnp.asarray(rng.normal(size=(2, 4, 5, 8)), jnp.float32) for _ in range(3))
  extra_k, extra_v = (jnp.asarray(rng.normal(size=(2, 4, 3, 8)), jnp.float32) for _ in range(2))
  bias = jnp.zeros((2, 1, 1, 5))
  masked = jnp.concatenate([jnp.full((2, 1, 1, 3), jnp.finfo(jnp.float32).min), bias], -1)
  out = attend(q, k, v, bias, 0.0, None)
  with_prefix = attend(q, jnp.concatenate([extra_k, k], 2), jnp.concatenate([extra_v, v], 2),
                       masked, 0.0, None)
  assert out.shape == (2, 5, 4, 8)
  np.testing.assert_allclose(with_prefix, out, atol=1e-6)
  probs = jax.nn.softmax(jnp.einsum("bhqd,bhkd->bhqk", q, k) / np.sqrt(8), -1)
  np.testing.assert_allclose(out, jnp.einsum("bhqk,bhkd->bqhd", probs, v), atol=1e-6)


@pytest.mark.slow
def test_remat_scans_layers_with_the_same_outputs_and_gradients():
  from xtjax.models.xlmr import XLMRConfig, XLMREncoder
  from xtjax.params import Model

  cfg = XLMRConfig(vocab_size=99, hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
                   intermediate_size=37, max_position_embeddings=64)
  ids = jnp.asarray(np.random.default_rng(0).integers(3, 99, (2, 11)))
  mask = jnp.ones_like(ids).at[1, 7:].set(0)

  def run(remat, params):
    model = Model.create(lambda rngs: XLMREncoder(cfg, remat=remat, rngs=rngs))

    def loss(p):  # dropout on: the same masks either way
      out = model.bind(p)(ids, mask, rng=jax.random.key(3), output_hidden_states=True)
      return sum((h ** 2).sum() for h in out.hidden_states), out.hidden_states
    return jax.value_and_grad(loss, has_aux=True)(params)

  params = Model.create(lambda rngs: XLMREncoder(cfg, rngs=rngs)).init(jax.random.key(0))
  (_, plain), plain_grads = run(False, params)
  (_, scanned), scanned_grads = run(True, params)
  assert len(scanned) == len(plain) == 4
  for a, b in zip(plain, scanned):
    np.testing.assert_allclose(a, b, atol=1e-5)
  for k in plain_grads:
    np.testing.assert_allclose(plain_grads[k], scanned_grads[k], atol=1e-4, err_msg=k)


def test_keep_mask_counted_as_a_larger_array_is_its_corner():
  full = keep_mask(jax.random.key(2), (4, 3, 10, 7), 0.5)
  corner = keep_mask(jax.random.key(2), (4, 3, 1, 7), 0.5, counted_as=(4, 3, 10, 7))
  np.testing.assert_array_equal(corner, full[:, :, :1])


@pytest.mark.parametrize("pre_layer_norm,remat,prefix", [
    (False, False, False), (True, False, False), (False, True, False), (True, True, True)])
def test_first_token_only_equals_the_full_last_layer(pre_layer_norm, remat, prefix):
  """Sentence heads read ``<s>`` only: the encoder's first-token path gives the same outputs and
  gradients as slicing the full last hidden state, dropout on (the same masks)."""
  from xtjax.models.heads import ClassificationHead, MultipleChoiceHead, TaskModel
  from xtjax.models.prefix import PrefixConfig
  from xtjax.models.xlmr import XLMRConfig
  from xtjax.params import Model

  cfg = XLMRConfig(vocab_size=99, hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
                   intermediate_size=37, max_position_embeddings=64, pre_layer_norm=pre_layer_norm)
  rng = np.random.default_rng(0)
  ids = jnp.asarray(rng.integers(3, 99, (4, 11)))
  batch = {"input_ids": ids, "attention_mask": jnp.ones_like(ids).at[1, 7:].set(0)}
  choices = {k: v.reshape(2, 2, 11) for k, v in batch.items()}
  model = Model.create(lambda rngs: TaskModel(
      cfg, {"cls": (ClassificationHead, 3), "mc": (MultipleChoiceHead, 2)}, remat=remat,
      prefix=PrefixConfig(length=2) if prefix else None, rngs=rngs))
  params = model.init(jax.random.key(0))

  def loss(p, first_only):
    bound = model.bind(p)
    encoder = bound.encoder
    full_call = type(encoder).__call__

    def call(self, *a, **kw):  # the full last layer when ``first_only`` is off
      kw["first_token_only"] = kw.get("first_token_only", False) and first_only
      return full_call(self, *a, **kw)

    type(encoder).__call__ = call
    try:
      out = (bound(batch, task="cls", rng=jax.random.key(7)),
             bound(choices, task="mc", rng=jax.random.key(8)))
    finally:
      type(encoder).__call__ = full_call
    return sum((o ** 2).sum() for o in out), out

  (_, fast), fast_grads = jax.value_and_grad(loss, has_aux=True)(params, True)
  (_, full), full_grads = jax.value_and_grad(loss, has_aux=True)(params, False)
  for a, b in zip(fast, full):
    assert a.shape == b.shape
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  assert set(fast_grads) == set(full_grads)
  for k in full_grads:
    np.testing.assert_allclose(fast_grads[k], full_grads[k], rtol=1e-4, atol=1e-6, err_msg=k)
  encoder = model.bind(params).encoder
  last = encoder(ids, batch["attention_mask"], first_token_only=True).last_hidden_state
  assert last.shape == (4, 1, 32)


@pytest.mark.parametrize("dtype,tol", [(jnp.float32, 1e-5), (jnp.bfloat16, 2e-2)])
def test_sum_rows_is_the_sum_over_leading_axes(dtype, tol):
  x = jax.random.normal(jax.random.key(0), (3, 5, 7), jnp.float32)
  total = jax.jit(sum_rows)(x.astype(dtype))
  assert total.shape == (7,) and total.dtype == dtype
  expected = np.asarray(x.astype(dtype), np.float64).sum((0, 1))
  np.testing.assert_allclose(np.asarray(total, np.float64), expected, rtol=tol, atol=tol)


def test_global_norm_is_optax_norm():
  rng = np.random.default_rng(0)
  tree = {"a": rng.normal(size=(301, 7)), "b": [rng.normal(size=5), np.float32(3.0)],
          "c": rng.normal(size=(2, 3, 4))}
  tree = jax.tree.map(lambda v: jnp.asarray(v, jnp.float32), tree)
  expected = np.sqrt(sum(np.square(np.asarray(v, np.float64)).sum() for v in jax.tree.leaves(tree)))
  # global_norm (whichever form this process's devices pick) and the single-CPU form.
  for ours in (jax.jit(global_norm)(tree), jax.jit(flat_norm)(*jax.tree.leaves(tree))):
    assert ours.shape == () and ours.dtype == jnp.float32
    np.testing.assert_allclose(ours, optax.tree.norm(tree), rtol=1e-6)
    np.testing.assert_allclose(ours, expected, rtol=1e-6)


def test_gelu_and_its_gradient_equal_pytorch():
  import torch  # a test dependency (the parity reference); imported here to keep the file light
  x = np.concatenate([np.linspace(-12, 12, 2001), [-40.0, 0.0, 40.0]]).astype(np.float32)
  g = np.random.default_rng(0).normal(size=x.shape).astype(np.float32)
  y, vjp = jax.vjp(jax.jit(gelu), jnp.asarray(x))
  tx = torch.tensor(x, requires_grad=True)
  ty = torch.nn.functional.gelu(tx)
  ty.backward(torch.tensor(g))
  # Absolute 1e-6: for x < -5, 1 + erf rounds to 0 or 6e-8 depending on the erf kernel.
  np.testing.assert_allclose(np.asarray(y), ty.detach().numpy(), rtol=2e-6, atol=1e-6)
  np.testing.assert_allclose(np.asarray(vjp(jnp.asarray(g))[0]), tx.grad.numpy(), rtol=2e-6,
                             atol=1e-6)
  half = gelu(jnp.asarray(x, jnp.bfloat16))
  assert half.dtype == jnp.bfloat16
  np.testing.assert_allclose(np.asarray(half, np.float32), ty.detach().numpy(), rtol=1e-2,
                             atol=1e-2)


def test_cpu_compiler_options_apply_on_cpu_only_and_change_no_result():
  """xtjax's programs carry XLA:CPU options on CPU (none on other platforms); attention and a
  LayerNorm-like reduction compute the same with and without them."""
  from types import SimpleNamespace

  from xtjax.steps import CPU_COMPILER_OPTIONS, compiler_options
  assert compiler_options(jax.devices("cpu")[0]) == CPU_COMPILER_OPTIONS
  assert compiler_options(SimpleNamespace(platform="tpu")) is None
  assert compiler_options(SimpleNamespace(platform="gpu")) is None

  def block(q, k, v, bias):
    out = attend(q, k, v, bias, 0.0, None)
    centred = out - out.mean(-1, keepdims=True)
    return centred * jax.lax.rsqrt((centred**2).mean(-1, keepdims=True) + 1e-5)

  rng = np.random.default_rng(0)
  q, k, v = (jnp.asarray(rng.normal(size=(4, 8, 96, 64)), jnp.float32) for _ in range(3))
  bias = jnp.where(jnp.arange(96) < 80, 0.0, jnp.finfo(jnp.float32).min)[None, None, None]
  plain = jax.jit(block)(q, k, v, bias)
  tuned = jax.jit(block, compiler_options=CPU_COMPILER_OPTIONS)(q, k, v, bias)
  np.testing.assert_allclose(tuned, plain, rtol=1e-5, atol=1e-5)


def test_cpu_compiler_options_unknown_to_xla_are_dropped_with_a_warning(monkeypatch, caplog):
  from xtjax import steps
  monkeypatch.setattr(steps, "CPU_COMPILER_OPTIONS", {"xla_no_such_option": ""})
  steps._cpu_options_known.cache_clear()
  try:
    assert steps.compiler_options(jax.devices("cpu")[0]) is None
  finally:
    steps._cpu_options_known.cache_clear()
  assert "xla_no_such_option" in caplog.text and "not applied" in caplog.text


def test_attention_dropout_beyond_its_position_grid_is_an_error():
  from xtjax.models.xlmr import ATTENTION_GRID
  q = jnp.zeros((1, 1, ATTENTION_GRID + 1, 4))
  bias = jnp.zeros((1, 1, 1, ATTENTION_GRID + 1))
  with pytest.raises(ValueError, match="exceeds dropout's grid of 2048"):
    attend(q, q, q, bias, 0.1, jax.random.key(0))
  assert attend(q, q, q, bias, 0.0, None).shape == (1, ATTENTION_GRID + 1, 1, 4)
