"""Shardings on 8 simulated CPU devices: parameter layouts per preset, and one train step that
gives the same loss and parameters on a 1-device and an 8-device mesh."""

import jax
import ml_collections
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from xtjax import kinds
from xtjax import sharding as shd
from xtjax.models.heads import ClassificationHead, TaskModel
from xtjax.models.xlmr import XLMRConfig
from xtjax.optim import make_optimizer
from xtjax.params import Model
from xtjax.steps import make_train_step, opt_shardings

CFG = XLMRConfig(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                 intermediate_size=64, max_position_embeddings=40)
OPTIM = ml_collections.ConfigDict(dict(lr=1e-3, warmup=0, weight_decay=0.01, b1=0.9, b2=0.999,
                                       eps=1e-8, clip=1.0, grad_accum_steps=1, freeze=()))


def setup(preset, devices):
  mesh = shd.make_mesh(shd.PRESETS[preset]["mesh"], devices)
  rules = shd.PRESETS[preset]["rules"]
  model = Model.create(lambda rngs: TaskModel(CFG, {"nli": (ClassificationHead, 3)}, rngs=rngs))
  param_sh = shd.param_shardings(model.shapes(), model.logical_axes(), mesh, rules)
  with jax.set_mesh(mesh):
    params = jax.jit(model.init, out_shardings=param_sh)(jax.random.key(0))
  return mesh, rules, model, param_sh, params


EXPECTED = {
    "data": {"encoder/layers/0/attention/query/kernel": P(None, None),
             "encoder/embeddings/word_embeddings/embedding": P(None, None)},
    "fsdp": {"encoder/layers/0/attention/query/kernel": P("fsdp", None),
             "encoder/layers/0/output/kernel": P(None, "fsdp"),
             "encoder/embeddings/word_embeddings/embedding": P(None, "fsdp"),
             "encoder/layers/0/attention_norm/scale": P(None)},
    "tensor": {"encoder/layers/0/attention/query/kernel": P(None, "tensor"),
               "encoder/layers/0/attention/query/bias": P("tensor"),
               "encoder/layers/0/attention/output/kernel": P("tensor", None),
               "encoder/layers/0/intermediate/kernel": P(None, "tensor"),
               "encoder/layers/0/output/kernel": P("tensor", None),
               "encoder/embeddings/word_embeddings/embedding": P(None, None)},
}


@pytest.mark.parametrize("preset", sorted(EXPECTED))
def test_param_shardings(preset):
  assert jax.device_count() == 8
  mesh, _, _, _, params = setup(preset, jax.devices())
  for name, spec in EXPECTED[preset].items():
    arr = params[name]
    assert arr.sharding.spec == spec, name
    # Each device really holds only its slice.
    shard = arr.addressable_shards[0].data.shape
    expected = tuple(d // np.prod([mesh.shape[a] for a in ((s,) if isinstance(s, str) else s or ())])
                     for d, s in zip(arr.shape, tuple(spec) + (None,) * (arr.ndim - len(spec))))
    assert shard == expected, name
  assert dict(mesh.shape) == {"data": {"data": 8, "fsdp": 1, "tensor": 1},
                              "fsdp": {"data": 1, "fsdp": 8, "tensor": 1},
                              "tensor": {"data": 2, "fsdp": 1, "tensor": 4}}[preset]
  assert all(t == jax.sharding.AxisType.Auto for t in mesh.axis_types)


def test_vocab_axis_that_does_not_divide_is_an_error():
  mesh = shd.make_mesh(shd.PRESETS["fsdp"]["mesh"])
  model = Model.create(lambda rngs: TaskModel(CFG, {}, rngs=rngs))
  rules = [("vocab", "fsdp")]  # 99 rows over 8 devices: XLM-R's 250,002 has the same problem
  with pytest.raises(ValueError, match="word_embeddings.*'vocab' of size 99.*map 'vocab' to None"):
    shd.param_shardings(model.shapes(), model.logical_axes(), mesh, rules)


def test_mesh_errors_name_the_fix():
  with pytest.raises(ValueError, match="needs 16 devices, found 8"):
    shd.make_mesh([("data", 4), ("tensor", 4)])


def one_step(preset, devices):
  mesh, rules, model, param_sh, params = setup(preset, devices)
  tx = make_optimizer(OPTIM, 10, list(param_sh))
  opt_sh = opt_shardings(jax.eval_shape(tx.init, model.shapes()), model.shapes(), param_sh, mesh)
  batch_sh = shd.batch_sharding(mesh, rules)
  rng = np.random.default_rng(0)
  ids = rng.integers(3, 99, (8, 16)).astype(np.int32)
  ids[:, 0] = 0
  mask = np.ones_like(ids)
  ids[::2, 10:], mask[::2, 10:] = 1, 0
  batch = {"input_ids": ids, "attention_mask": mask, "label": rng.integers(0, 3, 8).astype(np.int32),
           "example_mask": np.ones(8, np.int32)}
  loss = lambda p, b, r: kinds.get("classification").loss(model.bind(p)(b, task="nli", rng=r), b)
  step = make_train_step(loss, tx, param_sh, opt_sh, batch_sh)
  with jax.set_mesh(mesh):
    opt_state = jax.jit(tx.init, out_shardings=opt_sh)(params)
    batch = shd.global_batch(batch, batch_sh)
    new, opt_state, metrics = step(params, opt_state, batch, jax.random.key(1))
  mu = opt_state[1][0].mu  # clip -> adamw(scale_by_adam ...)
  return new, float(metrics["loss"]), mu


@pytest.fixture(scope="module")
def single_device_step():
  return one_step("data", jax.devices()[:1])


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["data", "fsdp", "tensor"])
def test_one_train_step_matches_single_device(preset, single_device_step):
  single, loss1, _ = single_device_step
  multi, loss8, mu = one_step(preset, jax.devices())
  assert abs(loss1 - loss8) < 1e-5
  for k in single:
    np.testing.assert_allclose(np.asarray(multi[k]), np.asarray(single[k]), atol=1e-5, err_msg=k)
  # Optimizer moments are sharded like their parameters.
  name = "encoder/layers/0/intermediate/kernel"
  assert mu[name].sharding.spec == multi[name].sharding.spec
  initial = setup("data", jax.devices()[:1])[4]
  assert not np.allclose(np.asarray(multi[name]), np.asarray(initial[name]))  # it did train
