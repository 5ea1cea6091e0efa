"""A full disk is a one-line error naming where and the fix: before training when the checkpoints
cannot fit, and for real writes that fail (/dev/full, and an async checkpoint save to a tiny
tmpfs mounted in a user namespace where the system allows one)."""

import os
import shutil
import subprocess
import sys

import jax
import pytest

from xtjax import diskspace

SAVE = r'''
import sys, jax.numpy as jnp, numpy as np
from xtjax.checkpoint import PhaseCheckpoints
ckpt = PhaseCheckpoints(sys.argv[1] + "/target/checkpoints")
params = {"w": jnp.asarray(np.random.default_rng(0).normal(size=(1024, 1024)), jnp.float32)}
try:
  ckpt.save(1, params, meta={"step": 1})
  ckpt.wait()
except OSError as e:
  print(f"{type(e).__name__}: {e}")
'''
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_a_failed_write_on_a_full_disk_is_one_line():
  with pytest.raises(diskspace.DiskFullError) as e:
    with diskspace.disk_errors("/dev/full", "results"):
      with open("/dev/full", "w") as f:
        f.write("x" * 100_000)
        f.flush()
  assert str(e.value).startswith("disk full writing results at /dev/full")
  assert "\n" not in str(e.value) and "remove old runs" in str(e.value)


def test_other_errors_pass_through(tmp_path):
  with pytest.raises(KeyError):
    with diskspace.disk_errors(tmp_path, "results"):
      raise KeyError("x")


def test_checkpoints_that_cannot_fit_stop_before_training(tmp_path):
  shapes = {"w": jax.ShapeDtypeStruct((1024, 1024), "float32")}
  assert diskspace.tree_bytes(shapes, {"mu": shapes}) == 8 << 20
  free = diskspace.free_space(tmp_path)[0]
  diskspace.check_free_space(tmp_path, free // 2, "checkpoints")
  with pytest.raises(diskspace.DiskFullError, match=f"not enough disk for checkpoints at "
                                                    f"{tmp_path}: about .* needed"):
    diskspace.check_free_space(tmp_path, free * 2, "checkpoints")
  diskspace.check_free_space("gs://bucket/run", 1 << 60, "checkpoints")  # not checked


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs unshare (util-linux)")
def test_an_async_checkpoint_save_to_a_full_disk_is_one_line(tmp_path):
  script = tmp_path / "save.py"
  script.write_text(SAVE)
  mount = tmp_path / "small"
  mount.mkdir()
  probe = subprocess.run(["unshare", "-rm", "mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs",
                          str(mount)], capture_output=True)
  if probe.returncode:
    pytest.skip("user namespaces with mounts are not allowed here")
  out = subprocess.run(["unshare", "-rm", "sh", "-c", f"mount -t tmpfs -o size=2m tmpfs {mount} "
                        f"&& {sys.executable} {script} {mount}"], capture_output=True, text=True,
                       cwd=ROOT, timeout=300, env=dict(os.environ, JAX_PLATFORMS="cpu"))
  line = next((l for l in out.stdout.splitlines() if "Error:" in l), out.stdout + out.stderr)
  assert line.startswith(f"DiskFullError: disk full writing checkpoint at {mount}/target"), line
  assert "No space left on device" in line and "remove old runs" in line
