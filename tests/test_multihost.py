"""Two processes joined by jax.distributed on 127.0.0.1 run the same tiny run, as TPU pod workers
do: per-process data rows, global batches, gathered evaluation, shared orbax checkpoints, a run
continued by a second invocation, and evaluation sets that do not split evenly over the hosts
(21 examples in batches of 8: the hosts hold 4 and 1 rows of the last batch). The numbers equal a
single process's on the same four devices."""

import json
import os
import socket
import subprocess
import sys

import pytest

import configs.demo as demo_config
import subprocs
from xtjax.phases.demo_assets import prepare

pytestmark = pytest.mark.slow  # trains demo-scale models end to end

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def command(run_dir, *phases):
  return [sys.executable, "-m", "xtjax.cli", "run", "--config", "configs/demo.py",
          f"--config.run_dir={run_dir}", "--config.demo.languages=('en','de')",
          "--config.phases.zero_shot.languages=('en','de')", "--config.data.max_length=64",
          "--config.train.steps=4", "--config.train.eval_every=2", "--config.train.batch_size=8",
          "--config.train.eval_batch_size=8", *(f for p in phases for f in ("--phase", p))]


def run(cmd, processes: int, devices: int):
  port, procs = free_port(), []
  for pid in range(processes):
    env = subprocs.env(devices)
    if processes > 1:
      env.update(XTJAX_DISTRIBUTED="1", XTJAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}",
                 XTJAX_NUM_PROCESSES=str(processes), XTJAX_PROCESS_ID=str(pid))
    procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True, cwd=ROOT))
  outs = [p.communicate(timeout=600)[0] for p in procs]
  for pid, (p, out) in enumerate(zip(procs, outs)):
    assert p.returncode == 0, f"process {pid} failed:\n{out[-3000:]}"
  return outs


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
  root = tmp_path_factory.mktemp("assets")
  spec = demo_config.get_config().demo
  spec.update(languages=("en", "de"), n_train=128, n_dev=21, n_test=21, vocab_size=400,
              hidden_size=32, num_layers=1, num_heads=2, max_positions=64)
  prepare(root, spec)
  return root


def fresh(assets, path):
  """A run directory holding the shared demo assets (as if its demo_assets phase had run)."""
  (path / "demo_assets").mkdir(parents=True)
  (path / "assets").symlink_to(assets / "assets")
  (path / "demo_assets" / "result.json").write_text(json.dumps(
      {"phase": "demo_assets", "kind": "demo_assets", "selected_step": None, "tasks": []}))
  return path


def test_two_processes_continue_a_run_and_equal_one_process(assets, tmp_path):
  multi = fresh(assets, tmp_path / "multi")
  outs = run(command(multi, "pretrained", "intermediate"), processes=2, devices=2)
  for pid, out in enumerate(outs):
    assert f"process {pid}/2 with 2 local devices" in out
  outs = run(command(multi), processes=2, devices=2)  # continues: finished phases are skipped
  assert all("phase intermediate already finished; skipping" in out for out in outs)
  assert "Zero-shot xnli" in outs[0] and "Zero-shot xnli" not in outs[1]  # tables from process 0
  single = fresh(assets, tmp_path / "single")
  run(command(single), processes=1, devices=4)
  results = {}
  for name, path in (("multi", multi), ("single", single)):
    results[name] = (json.loads((path / "zero_shot" / "results.json").read_text())[0],
                     json.loads((path / "target" / "result.json").read_text()))
  (zero_shot, target), (zero_shot_1, target_1) = results["multi"], results["single"]
  assert zero_shot["examples"] == {"en": 21, "de": 21}  # every example once, none twice
  assert zero_shot["metrics"] == zero_shot_1["metrics"]
  assert [h["step"] for h in target["history"]] == [2, 4]
  assert [h["dev_score"] for h in target["history"]] == pytest.approx(
      [h["dev_score"] for h in target_1["history"]])
