"""Two processes joined by jax.distributed on 127.0.0.1 run the same tiny run, as TPU pod workers
do: per-process data rows, global batches, gathered evaluation, shared orbax checkpoints."""

import json
import os
import socket
import subprocess
import sys

import configs.demo as demo_config
from xtjax.demo import prepare


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def test_two_processes_finish_one_run(tmp_path):
  spec = demo_config.get_config().demo
  spec.update(languages=("en", "de"), n_train=128, n_dev=24, n_test=24, vocab_size=400,
              hidden_size=32, num_layers=1, num_heads=2, max_positions=64)
  prepare(tmp_path, spec)
  port = free_port()
  cmd = [sys.executable, "-m", "xtjax.cli", "run", "--config", "configs/demo.py",
         f"--config.run_dir={tmp_path}", "--config.demo.languages=('en','de')",
         "--config.phases.zero_shot.languages=('en','de')", "--config.data.max_length=64",
         "--config.train.steps=4", "--config.train.eval_every=2", "--config.train.batch_size=8",
         "--config.train.eval_batch_size=8", "--phase", "pretrained", "--phase", "intermediate",
         "--phase", "target", "--phase", "zero_shot"]
  procs = []
  for pid in range(2):
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2",
               XTJAX_DISTRIBUTED="1", XTJAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}",
               XTJAX_NUM_PROCESSES="2", XTJAX_PROCESS_ID=str(pid), JAX_PLATFORMS="cpu")
    procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True, cwd=os.path.dirname(os.path.dirname(__file__))))
  outs = [p.communicate(timeout=600)[0] for p in procs]
  for pid, (p, out) in enumerate(zip(procs, outs)):
    assert p.returncode == 0, f"process {pid} failed:\n{out[-3000:]}"
    assert f"process {pid}/2 with 2 local devices" in out
  assert "Zero-shot xnli" in outs[0] and "Zero-shot xnli" not in outs[1]  # tables from process 0
  result = json.loads((tmp_path / "zero_shot" / "results.json").read_text())[0]
  assert result["examples"] == {"en": 24, "de": 24}  # every example once, none twice
  target = json.loads((tmp_path / "target" / "result.json").read_text())
  assert [h["step"] for h in target["history"]] == [2, 4]
