"""A real SIGTERM to a training loop (one process, and one of two jax.distributed processes): every
process stops at the same step, saves it, exits 0, and the rerun resumes from exactly that step."""

import os
import signal
import socket
import subprocess
import sys
import threading

import pytest

import subprocs
from xtjax.preemption import PreemptionGuard

pytestmark = pytest.mark.slow  # real signals to training subprocesses

LOOP = r'''
import os, sys, time
import jax, jax.numpy as jnp, numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P
if len(sys.argv) > 2:  # process id, number of processes, coordinator port
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(f"127.0.0.1:{sys.argv[4]}", int(sys.argv[3]), int(sys.argv[2]))
from xtjax.checkpoint import PhaseCheckpoints
from xtjax.preemption import PreemptionGuard

mesh = jax.make_mesh((jax.device_count(),), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
sharding = NamedSharding(mesh, P("data"))
abstract = {"w": jax.ShapeDtypeStruct((8 * jax.device_count(),), jnp.float32, sharding=sharding)}
ckpt = PhaseCheckpoints(sys.argv[1], keep=2)
found = ckpt.restore_latest(abstract)
if found:
  start, params = found[0], found[1]["params"]
else:
  start = 0
  params = {"w": jax.jit(lambda: jnp.zeros(abstract["w"].shape), out_shardings=sharding)()}
print(f"start {start}", flush=True)
add = jax.jit(lambda p: {"w": p["w"] + 1}, out_shardings={"w": sharding})
with PreemptionGuard() as guard:
  for step in range(start, start + 2000):
    params = add(params)
    time.sleep(0.05)
    print(f"step {step + 1}", flush=True)
    if guard.should_stop(step + 1):
      ckpt.save(step + 1, params, meta={"step": step + 1})
      ckpt.wait()
      print(f"saved {step + 1} value {float(jax.device_get(params['w'].addressable_data(0))[0])}",
            flush=True)
      break
ckpt.close()
'''
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def start(script, *args):
  env = subprocs.env(1)
  return subprocess.Popen([sys.executable, str(script), *map(str, args)], env=env, cwd=ROOT,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def read_until(proc, text: str, lines: list, timeout: float = 300) -> None:
  """Collects ``proc``'s output into ``lines`` until a line starts with ``text``."""
  seen = threading.Event()

  def pump():
    for line in proc.stdout:
      lines.append(line)
      if line.startswith(text):
        seen.set()
    seen.set()

  threading.Thread(target=pump, daemon=True).start()
  assert seen.wait(timeout), f"no {text!r} within {timeout} s:\n{''.join(lines)[-3000:]}"
  assert any(l.startswith(text) for l in lines), \
      f"exited before {text!r}:\n{''.join(lines)[-3000:]}"


def finish(proc, lines) -> str:
  proc.wait(timeout=300)
  return "".join(lines)


def saved_step(out: str) -> tuple[int, float]:
  line = next(l for l in out.splitlines() if l.startswith("saved "))
  return int(line.split()[1]), float(line.split()[3])


def test_sigterm_saves_a_step_and_the_rerun_resumes_there(tmp_path):
  script = tmp_path / "loop.py"
  script.write_text(LOOP)
  ckpt_dir = tmp_path / "phase" / "checkpoints"
  proc, lines = start(script, ckpt_dir), []
  read_until(proc, "step 5", lines)
  proc.send_signal(signal.SIGTERM)
  out = finish(proc, lines)
  assert proc.returncode == 0, out[-3000:]
  step, value = saved_step(out)
  assert step >= 5 and value == step
  assert "preempted: saving step" in out
  assert sorted(os.listdir(ckpt_dir)) == [str(step)]  # no temporary directory left behind

  proc, lines = start(script, ckpt_dir), []
  read_until(proc, "step", lines)
  proc.send_signal(signal.SIGTERM)
  out = finish(proc, lines)
  assert f"start {step}\n" in out, out[-3000:]
  assert saved_step(out)[1] == saved_step(out)[0]  # the values continued from the saved ones


def test_sigterm_to_one_of_two_processes_stops_both_at_the_same_step(tmp_path):
  script = tmp_path / "loop.py"
  script.write_text(LOOP)
  ckpt_dir = tmp_path / "phase" / "checkpoints"

  def launch():
    port = free_port()
    return [start(script, ckpt_dir, pid, 2, port) for pid in range(2)], [[], []]

  procs, lines = launch()
  for proc, out in zip(procs, lines):
    read_until(proc, "step 5", out)
  procs[1].send_signal(signal.SIGTERM)  # only one worker is told, as on a preempted pod slice
  outs = [finish(p, out) for p, out in zip(procs, lines)]
  for p, out in zip(procs, outs):
    assert p.returncode == 0, out[-3000:]
  steps = {saved_step(out)[0] for out in outs}
  assert len(steps) == 1, outs
  step = steps.pop()
  assert saved_step(outs[0])[1] == step

  procs, lines = launch()
  for proc, out in zip(procs, lines):
    read_until(proc, "step", out)
  procs[0].send_signal(signal.SIGTERM)
  outs = [finish(p, out) for p, out in zip(procs, lines)]
  for out in outs:
    assert f"start {step}\n" in out, out[-3000:]


def test_a_second_sigterm_goes_to_the_previous_handler():
  received = []
  previous = signal.signal(signal.SIGTERM, lambda signum, frame: received.append(signum))
  try:
    with PreemptionGuard() as guard:
      assert not guard.should_stop(1)
      os.kill(os.getpid(), signal.SIGTERM)
      assert guard.should_stop(2) and received == []
      os.kill(os.getpid(), signal.SIGTERM)  # the guard steps aside and passes it on
      assert received == [signal.SIGTERM]
    assert signal.getsignal(signal.SIGTERM) is not guard._handle
  finally:
    signal.signal(signal.SIGTERM, previous)
