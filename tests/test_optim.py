"""The phase optimizer: schedule values, the weight-decay mask, accumulation and freezing."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from xtjax.optim import clip_by_global_norm, decays, make_optimizer, schedule, warmup_steps


def optim(**kw):
  base = dict(lr=1e-3, warmup=0.1, weight_decay=0.01, b1=0.9, b2=0.999, eps=1e-8, clip=1.0,
              grad_accum_steps=1, freeze=())
  return ml_collections.ConfigDict(dict(base, **kw))


def test_linear_warmup_then_linear_decay():
  s = schedule(1e-3, total_steps=100, warmup_steps=10)
  np.testing.assert_allclose([s(0), s(5), s(10), s(55), s(100)], [0, 5e-4, 1e-3, 5e-4, 0],
                             atol=1e-9)


def test_warmup_is_a_fraction_below_one_and_steps_from_one():
  assert warmup_steps(0.1, 2000) == 200  # jiant: 10% of the phase
  assert warmup_steps(500, 2000) == 500 and warmup_steps(500.0, 100) == 500  # XTREME's QA
  assert warmup_steps(0, 2000) == 0 and warmup_steps(1, 2000) == 1
  s = schedule(1e-3, total_steps=2000, warmup_steps=warmup_steps(500, 2000))
  np.testing.assert_allclose([s(250), s(500), s(1250)], [5e-4, 1e-3, 5e-4], atol=1e-9)
  # Through make_optimizer: the first update (step 0) has lr 0 either way, the second differs.
  params = {"w/kernel": jnp.ones(3)}
  grads = {"w/kernel": jnp.ones(3)}
  moved = []
  for warmup in (500, 0.5):
    tx = make_optimizer(optim(warmup=warmup, weight_decay=0.0, clip=0), 2000, list(params))
    state = tx.init(params)
    for _ in range(2):
      updates, state = tx.update(grads, state, params)
    moved.append(float(-updates["w/kernel"][0]))
  np.testing.assert_allclose(moved, [1e-3 / 500, 1e-3 / 1000], rtol=1e-4)


@pytest.mark.parametrize("scale", [0.01, 1.0, 30.0])
def test_clipping_equals_optax(scale):
  """Below, at and above the threshold (the tree's norm is ``scale``)."""
  rng = np.random.default_rng(0)
  grads = {"a": rng.normal(size=(40, 8)), "b": rng.normal(size=8)}
  norm = np.sqrt(sum(np.square(v).sum() for v in grads.values()))
  grads = {k: jnp.asarray(v * scale / norm, jnp.float32) for k, v in grads.items()}
  ours, _ = jax.jit(clip_by_global_norm(1.0).update)(grads, optax.EmptyState())
  theirs, _ = optax.clip_by_global_norm(1.0).update(grads, optax.EmptyState())
  for k in grads:
    np.testing.assert_allclose(ours[k], theirs[k], rtol=1e-6, atol=0)
  clipped = np.sqrt(sum(np.square(np.asarray(v, np.float64)).sum() for v in ours.values()))
  assert clipped == pytest.approx(min(scale, 1.0), rel=1e-5)


def test_no_weight_decay_on_biases_and_layernorm():
  assert decays("encoder/layers/0/attention/query/kernel")
  assert decays("encoder/embeddings/word_embeddings/embedding")
  assert not decays("encoder/layers/0/attention/query/bias")
  assert not decays("encoder/layers/0/ffn_norm/scale")
  # With zero gradients only weight decay moves parameters: kernels shrink, biases do not.
  params = {"a/kernel": jnp.ones(3), "a/bias": jnp.ones(3), "n/scale": jnp.ones(3)}
  tx = make_optimizer(optim(warmup=0, weight_decay=0.5, clip=0), 10, list(params))
  updates, _ = tx.update(jax.tree.map(jnp.zeros_like, params), tx.init(params), params)
  assert float(updates["a/kernel"][0]) == pytest.approx(-1e-3 * 0.5)
  assert float(updates["a/bias"][0]) == 0 and float(updates["n/scale"][0]) == 0


def test_gradient_accumulation_equals_one_big_batch():
  w = {"w/kernel": jnp.array([0.5, -1.0])}
  x = jnp.array([[1.0, 2.0], [3.0, -1.0], [0.5, 0.5], [-2.0, 1.0]])
  y = jnp.array([1.0, 0.0, 2.0, -1.0])
  loss = lambda p, xb, yb: jnp.mean((xb @ p["w/kernel"] - yb) ** 2)

  big = make_optimizer(optim(warmup=0), 10, list(w))
  updates, _ = big.update(jax.grad(loss)(w, x, y), big.init(w), w)
  expected = optax.apply_updates(w, updates)

  acc = make_optimizer(optim(warmup=0, grad_accum_steps=2), 10, list(w))
  state, p = acc.init(w), w
  for half in (slice(0, 2), slice(2, 4)):
    updates, state = acc.update(jax.grad(loss)(p, x[half], y[half]), state, p)
    p = optax.apply_updates(p, updates)
  np.testing.assert_allclose(p["w/kernel"], expected["w/kernel"], rtol=1e-6)


def test_frozen_parameters_do_not_move_and_have_no_adam_state():
  params = {"encoder/x/kernel": jnp.ones(3), "heads/t/kernel": jnp.ones(3)}
  tx = make_optimizer(optim(warmup=0, freeze=("encoder/.*",)), 10, list(params))
  state = tx.init(params)
  moments = [x for x in jax.tree.leaves(state) if getattr(x, "shape", ()) == (3,)]
  assert len(moments) == 2  # Adam's mu and nu of the trained head only
  updates, _ = tx.update(jax.tree.map(jnp.ones_like, params), state, params)
  assert not np.any(np.asarray(updates["encoder/x/kernel"]))
  assert np.all(np.asarray(updates["heads/t/kernel"]) < 0)
  with pytest.raises(ValueError, match="freezes every parameter"):
    make_optimizer(optim(freeze=(".*",)), 10, list(params))
