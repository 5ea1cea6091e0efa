"""Real file damage in the latest checkpoint step (64 flipped bytes in a parameter file, a truncated
file, a deleted file, a truncated meta file): restoring it is a one-line DamagedCheckpointError,
and `restore_latest` reports it, moves it aside and resumes from the previous intact step;
retention keeps the last verified step."""

import logging
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec as P

from xtjax.checkpoint import DamagedCheckpointError, PhaseCheckpoints, checksums

# orbax abandons the other reads of a step once one fails; their coroutines warn when collected
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


def make_params(step: int) -> dict:
  rng = np.random.default_rng(step)  # random values: the data files are not compressible
  return {"encoder/w": jnp.asarray(rng.normal(size=(128, 256)), jnp.float32),
          "heads/xnli/b": jnp.asarray(rng.normal(size=(3,)), jnp.bfloat16)}


def abstract(params) -> dict:
  return {k: jax.ShapeDtypeStruct(v.shape, v.dtype, sharding=v.sharding) for k, v in params.items()}


def save_steps(directory, steps=(1, 2, 3), keep=3) -> dict:
  ckpt = PhaseCheckpoints(directory, keep=keep)
  params = {s: make_params(s) for s in steps}
  for s in steps:
    ckpt.save(s, params[s], {"mu": params[s]}, meta={"step": s})
  ckpt.close()
  return params


def largest_file(folder) -> str:
  files = [os.path.join(r, f) for r, _, fs in os.walk(folder) for f in fs]
  return max(files, key=os.path.getsize)


def flip(path):
  data = bytearray(open(path, "rb").read())
  middle = len(data) // 2
  for i in range(64):
    data[middle + i] ^= 0xFF
  open(path, "wb").write(data)


DAMAGE = {
    "flipped bytes": lambda step: flip(largest_file(step / "params")),
    "truncated file": lambda step: os.truncate(largest_file(step / "params"),
                                               os.path.getsize(largest_file(step / "params")) // 2),
    "deleted file": lambda step: os.remove(largest_file(step / "opt_state")),
    "truncated meta": lambda step: os.truncate(step / "meta" / "metadata", 7),
}


def test_checksums_follow_the_values_not_the_sharding():
  x = jnp.asarray(np.random.default_rng(0).normal(size=(16, 24)), jnp.float32)
  mesh = jax.make_mesh((8,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
  sharded = jax.device_put(x, NamedSharding(mesh, P("data")))
  tree = {"a": x, "b": jnp.arange(5, dtype=jnp.int32), "c": jnp.ones((2, 2), jnp.bfloat16),
          "d": jnp.array([True, False])}
  sums = checksums(tree)
  assert sums["a"] == checksums({"a": sharded})["a"]
  assert sums["a"].startswith("float32[16,24]:") and sums["c"].startswith("bfloat16[2,2]:")
  assert sums["a"] != checksums({"a": x.at[3, 5].add(1e-6)})["a"]
  assert sums["a"] != checksums({"a": x.T.reshape(16, 24)})["a"]  # same values, other places
  assert len(set(sums.values())) == 4


@pytest.mark.parametrize("damage", DAMAGE)
def test_a_damaged_latest_step_is_reported_and_the_previous_one_is_used(tmp_path, caplog, damage):
  directory = tmp_path / "target" / "checkpoints"
  params = save_steps(directory)
  DAMAGE[damage](directory / "3")
  ckpt = PhaseCheckpoints(directory, keep=3)
  with pytest.raises(DamagedCheckpointError) as e:
    ckpt.restore(3, abstract(params[3]), {"mu": abstract(params[3])})
  assert "\n" not in str(e.value) and f"checkpoint step 3 in {directory}" in str(e.value)

  with caplog.at_level(logging.WARNING, logger="xtjax.checkpoint"):
    step, restored, meta = ckpt.restore_latest(abstract(params[3]), {"mu": abstract(params[3])})
  assert (step, meta["step"]) == (2, 2)
  for key, value in params[2].items():
    np.testing.assert_array_equal(restored["params"][key], value)
    np.testing.assert_array_equal(restored["opt_state"]["mu"][key], value)
  reports = [r.getMessage() for r in caplog.records if "checkpoint step 3" in r.getMessage()]
  assert len(reports) == 1 and "\n" not in reports[0] and "damaged_checkpoints" in reports[0]
  assert ckpt.manager.all_steps() == [1, 2]
  moved = os.listdir(tmp_path / "target" / "damaged_checkpoints")
  assert len(moved) == 1 and moved[0].startswith("3-")

  ckpt.save(3, params[3], {"mu": params[3]}, meta={"step": 3})  # the step can be written again
  ckpt.wait()
  assert ckpt.restore_latest(abstract(params[3]))[0] == 3
  ckpt.close()


def test_every_step_damaged_means_starting_fresh(tmp_path):
  directory = tmp_path / "checkpoints"
  params = save_steps(directory, steps=(1, 2))
  for step in (1, 2):
    flip(largest_file(directory / str(step) / "params"))
  ckpt = PhaseCheckpoints(directory)
  assert ckpt.restore_latest(abstract(params[1])) is None
  assert ckpt.latest_step() is None
  ckpt.close()


def test_a_model_that_does_not_fit_is_an_error_not_damage(tmp_path):
  directory = tmp_path / "checkpoints"
  params = save_steps(directory, steps=(1,))
  ckpt = PhaseCheckpoints(directory)
  wrong = dict(abstract(params[1]), **{"encoder/w": jax.ShapeDtypeStruct((64, 256), jnp.float32)})
  with pytest.raises(ValueError, match="does not fit the model .*encoder/w: model \\(64, 256\\)"):
    ckpt.restore_latest(wrong)
  assert ckpt.manager.all_steps() == [1]  # nothing was set aside
  ckpt.close()


def test_retention_never_deletes_the_last_verified_step(tmp_path):
  directory = tmp_path / "checkpoints"
  params = save_steps(directory, steps=(1, 2), keep=1)
  ckpt = PhaseCheckpoints(directory, keep=1)
  assert ckpt.restore_latest(abstract(params[2]))[0] == 2
  for step in (3, 4):  # written, but never read back
    ckpt.save(step, make_params(step), meta={"step": step})
  ckpt.wait()
  assert ckpt.manager.all_steps() == [2, 4]
  ckpt.close()


def test_the_temporary_directory_of_a_killed_save_is_replaced_when_its_step_is_saved(tmp_path):
  directory = tmp_path / "checkpoints"
  params = save_steps(directory, steps=(1,))
  shutil.copytree(directory / "1", directory / "2.orbax-checkpoint-tmp")  # killed mid-save
  (directory / "2.orbax-checkpoint-tmp" / "commit_success.txt").unlink(missing_ok=True)
  ckpt = PhaseCheckpoints(directory)
  assert ckpt.restore_latest(abstract(params[1]))[0] == 1  # the partial step is not a step
  ckpt.save(2, params[1], meta={"step": 2})
  ckpt.close()
  assert sorted(os.listdir(directory)) == ["1", "2"]
