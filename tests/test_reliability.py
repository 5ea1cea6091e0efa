"""The run directory as a hostile user treats it, through the real ``xtjax run`` in subprocesses
with real signals: a second writer stops naming the holder; SIGTERM saves a common step and exits
cleanly; the rerun resumes from exactly that step; a changed training setting stops a resume
unless allowed, and an allowed change is recorded."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

import subprocs

pytestmark = pytest.mark.slow  # real xtjax runs in subprocesses

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--config.demo.languages=('en','de')", "--config.demo.n_train=256",
        "--config.demo.n_dev=16", "--config.demo.n_test=16", "--config.demo.vocab_size=300",
        "--config.demo.hidden_size=16", "--config.demo.num_layers=1", "--config.demo.num_heads=2",
        "--config.demo.max_positions=40", "--config.phases.zero_shot.languages=('en','de')",
        "--config.train.batch_size=8", "--config.train.eval_batch_size=16",
        "--config.train.log_every=5", "--config.phases.target.train.steps=20"]


def xtjax(run_dir, *flags, wait=True):
  cmd = [sys.executable, "-m", "xtjax.cli", "run", "--config", "configs/demo.py",
         f"--config.run_dir={run_dir}", *TINY, *flags]
  env = subprocs.env(1, PYTHONUNBUFFERED="1")
  proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
  if not wait:
    return proc
  out = proc.communicate(timeout=600)[0]
  return proc.returncode, out


def wait_for(path, proc, timeout=300):
  end = time.time() + timeout
  while not path.exists():
    assert proc.poll() is None, proc.communicate()[0][-3000:]
    assert time.time() < end, f"{path} never appeared"
    time.sleep(0.2)


def test_one_writer_preemption_resume_and_config_identity(tmp_path):
  run_dir = tmp_path / "run"
  # A long intermediate phase: the first writer is still training when the others arrive.
  first = xtjax(run_dir, "--config.train.steps=3000", "--config.train.eval_every=1000",
                wait=False)
  wait_for(run_dir / "xtjax.lock", first)
  code, out = xtjax(run_dir, "--config.train.steps=3000", "--config.train.eval_every=1000",
                    "--config.optim.lr=0.002", "--config.seed=1")
  assert code == 2 and "is in use by" in out and f"pid {first.pid}" in out, out[-2000:]
  assert len([l for l in out.splitlines() if l.startswith("xtjax run:")]) == 1

  # SIGTERM mid-phase: the step reached is saved and the process exits cleanly.
  wait_for(run_dir / "intermediate" / "tensorboard", first)
  time.sleep(3)
  first.send_signal(signal.SIGTERM)
  out = first.communicate(timeout=300)[0]
  assert first.returncode == 0, out[-3000:]
  saved = int(re.search(r"phase intermediate preempted: saved step (\d+)", out).group(1))
  assert 0 < saved < 3000
  steps = sorted(int(p.name) for p in (run_dir / "intermediate" / "checkpoints").iterdir()
                 if p.name.isdigit())
  assert steps[-1] == saved and not (run_dir / "intermediate" / "result.json").exists()
  assert not (run_dir / "xtjax.lock").exists()  # released on the way out

  # The rerun resumes from exactly that step (the target phase is short: 20 steps).
  code, out = xtjax(run_dir, "--config.train.steps=3000", "--config.train.eval_every=1000")
  assert code == 0 and f"intermediate: resuming at step {saved}" in out, out[-3000:]
  result = json.loads((run_dir / "intermediate" / "result.json").read_text())
  assert result["steps_done"] == 3000 and [h["step"] for h in result["history"]] == [
      1000, 2000, 3000]

  # The finished run with another learning rate: an error listing the change; allowed on purpose
  # it is recorded (evaluation-only settings change freely: tests/test_rundir.py).
  code, out = xtjax(run_dir, "--config.train.steps=3000", "--config.train.eval_every=1000",
                    "--config.optim.lr=0.002")
  assert code == 2 and "optim.lr 0.001 -> 0.002" in out and "--allow-config-change" in out
  code, out = xtjax(run_dir, "--config.train.steps=3000", "--config.train.eval_every=1000",
                    "--config.optim.lr=0.002", "--allow-config-change")
  assert code == 0, out[-2000:]
  changes = json.loads((run_dir / "config_changes.json").read_text())
  assert changes[-1]["training_relevant"] == ["optim.lr"]
