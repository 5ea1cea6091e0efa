"""Run-directory identity and ownership: real processes contend for the lock (a live holder is
named, a killed one's lock is taken over by exactly one contender), remote and GCS locks, and
config changes (training-relevant ones stop with the changed keys, evaluation-only ones pass, a
deliberate change is recorded)."""

import datetime
import json
import os
import subprocess
import sys
import time

import pytest

import configs.demo as demo_config
import subprocs
from xtjax import rundir

HOLD = r'''
import os, sys, time
from xtjax.rundir import RunLock, RunLockedError
try:
  lock = RunLock(sys.argv[1], heartbeat_s=0.2).acquire()
except RunLockedError as e:
  print("refused:", e, flush=True)
  sys.exit(3)
print("locked", os.getpid(), flush=True)
time.sleep(float(sys.argv[2]))
lock.release()
print("released", flush=True)
'''
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def hold(tmp_path):
  script = tmp_path / "hold.py"
  script.write_text(HOLD)
  procs = []

  def start(seconds: float):
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path / "run"), str(seconds)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT,
                            env=subprocs.env(1))
    procs.append(proc)
    return proc

  yield start
  for proc in procs:
    if proc.poll() is None:
      proc.kill()
      proc.wait()


def first_line(proc) -> str:
  """The output up to the line saying whether ``proc`` took the lock; that line first."""
  lines = [proc.stdout.readline()]
  while lines[-1] and not lines[-1].startswith(("locked", "refused")):
    lines.append(proc.stdout.readline())
  return "".join(lines[-1:] + lines[:-1])


@pytest.mark.slow
def test_a_second_writer_stops_naming_the_holder(hold):
  holder = hold(300)
  assert first_line(holder).startswith("locked")
  second = hold(0)
  out = second.communicate(timeout=120)[0]
  assert second.returncode == 3, out
  refused = next(l for l in out.splitlines() if l.startswith("refused"))
  assert f"pid {holder.pid}" in refused and "is in use by" in refused and "hold.py" in refused


@pytest.mark.slow
def test_a_killed_holders_lock_is_taken_over_by_exactly_one_contender(hold, tmp_path):
  holder = hold(300)
  assert first_line(holder).startswith("locked")
  holder.kill()  # SIGKILL: no cleanup, the lock file stays
  holder.wait()
  assert (tmp_path / "run" / rundir.LOCK_FILE).exists()
  contenders = [hold(60) for _ in range(3)]
  firsts = [first_line(p) for p in contenders]
  assert sum(l.startswith("locked") for l in firsts) == 1, firsts
  assert sum(l.startswith("refused") for l in firsts) == 2, firsts
  won = [l.startswith("locked") for l in firsts].index(True)
  assert all(f"pid {contenders[won].pid}" in l for l in firsts if l.startswith("refused"))
  assert f"its process {holder.pid} on this host is gone" in firsts[won]


@pytest.mark.slow
def test_a_released_lock_is_free_again(hold, tmp_path):
  out = hold(0).communicate(timeout=120)[0]
  assert "released" in out
  assert not (tmp_path / "run" / rundir.LOCK_FILE).exists()
  with rundir.RunLock(tmp_path / "run"):
    assert (tmp_path / "run" / rundir.LOCK_FILE).exists()


def test_a_remote_holder_is_stale_only_after_its_heartbeat_stops(tmp_path):
  path = tmp_path / rundir.LOCK_FILE
  path.write_text(json.dumps({"token": "t", "host": "worker-elsewhere", "pid": 1,
                              "command": "xtjax run"}))
  with pytest.raises(rundir.RunLockedError, match="in use by worker-elsewhere pid 1"):
    rundir.RunLock(tmp_path, stale_after_s=30).acquire()
  old = time.time() - 3600
  os.utime(path, (old, old))
  lock = rundir.RunLock(tmp_path, stale_after_s=30, heartbeat_s=0.1).acquire()
  assert json.loads(path.read_text())["token"] == lock.token
  time.sleep(0.5)
  assert time.time() - path.stat().st_mtime < 5  # the heartbeat refreshes it
  lock.release()
  assert not path.exists()


class _Missing(Exception):
  pass


class _Precondition(Exception):
  pass


class FakeGcs:
  """Just enough of google-cloud-storage: objects with generations and preconditions."""

  def __init__(self):
    self.objects = {}  # name -> (bytes, generation, updated)
    self.counter = 0

  def bucket(self, name):
    return self

  def blob(self, name):
    return FakeBlob(self, name)


class FakeBlob:
  def __init__(self, store, name):
    self.store, self.name, self.generation, self.updated = store, name, None, None

  def _check(self, match):
    current = self.store.objects.get(self.name, (None, 0, None))[1]
    if match is not None and match != current:
      raise _Precondition(self.name)

  def upload_from_string(self, text, if_generation_match=None):
    self._check(if_generation_match)
    self.store.counter += 1
    now = datetime.datetime.now(datetime.timezone.utc)
    self.store.objects[self.name] = (text.encode(), self.store.counter, now)
    self.generation, self.updated = self.store.counter, now

  def reload(self):
    if self.name not in self.store.objects:
      raise _Missing(self.name)
    _, self.generation, self.updated = self.store.objects[self.name]

  def download_as_bytes(self, if_generation_match=None):
    if self.name not in self.store.objects:
      raise _Missing(self.name)
    self._check(if_generation_match)
    return self.store.objects[self.name][0]

  def delete(self, if_generation_match=None):
    self._check(if_generation_match)
    self.store.objects.pop(self.name, None)


def test_the_gcs_lock_changes_hands_only_by_compare_and_swap(monkeypatch):
  monkeypatch.setattr(rundir, "NotFound", _Missing)
  monkeypatch.setattr(rundir, "PreconditionFailed", _Precondition)
  gcs = FakeGcs()
  first = rundir.RunLock("gs://bucket/run", gcs_client=gcs, heartbeat_s=0.05,
                         stale_after_s=30).acquire()
  with pytest.raises(rundir.RunLockedError, match="is in use by"):
    rundir.RunLock("gs://bucket/run", gcs_client=gcs, stale_after_s=30).acquire()
  # The holder looks like a dead remote worker: the newcomer replaces exactly that generation.
  text, generation, _ = gcs.objects["run/xtjax.lock"]
  record = dict(json.loads(text), host="worker-elsewhere")
  old = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=1)
  gcs.objects["run/xtjax.lock"] = (json.dumps(record).encode(), generation, old)
  first._stop.set()  # hold the heartbeat while the lock changes hands
  first._thread.join()
  second = rundir.RunLock("gs://bucket/run", gcs_client=gcs, stale_after_s=30).acquire()
  assert json.loads(gcs.objects["run/xtjax.lock"][0])["token"] == second.token
  assert not first._backend.beat(first.token, first._record())  # its generation is gone
  second.release()
  assert "run/xtjax.lock" not in gcs.objects


def demo(**changes):
  c = demo_config.get_config()
  for key, value in changes.items():
    target = c
    *path, last = key.split(".")
    for part in path:
      target = target[part]
    target[last] = value
  return c


def test_a_training_relevant_change_stops_with_the_changed_keys(tmp_path):
  assert rundir.record_config(tmp_path, demo()) == {}
  (tmp_path / "intermediate").mkdir()  # the intermediate phase has begun
  changed = demo(**{"optim.lr": 2e-3, "train.batch_size": 64, "train.eval_batch_size": 512})
  with pytest.raises(rundir.ConfigChangedError) as e:
    rundir.record_config(tmp_path, changed)
  message = str(e.value)
  assert "\n" not in message
  assert "optim.lr 0.001 -> 0.002" in message and "train.batch_size 32 -> 64" in message
  assert "eval_batch_size" not in message and "--allow-config-change" in message
  assert json.loads((tmp_path / "config.json").read_text())["optim"]["lr"] == 1e-3

  changes = rundir.record_config(tmp_path, changed, allow_change=True)
  assert set(changes) == {"optim.lr", "train.batch_size", "train.eval_batch_size"}
  history = json.loads((tmp_path / rundir.CHANGES_FILE).read_text())
  assert history[-1]["training_relevant"] == ["optim.lr", "train.batch_size"]
  assert history[-1]["changes"]["optim.lr"] == {"from": 1e-3, "to": 2e-3}
  assert json.loads((tmp_path / "config.json").read_text())["optim"]["lr"] == 2e-3
  assert rundir.record_config(tmp_path, changed) == {}  # the recorded config is the new one


def test_evaluation_only_changes_and_unstarted_phases_change_freely(tmp_path):
  rundir.record_config(tmp_path, demo())
  for name in ("demo_assets", "pretrained", "intermediate", "zero_shot"):
    (tmp_path / name).mkdir()
  changed = demo(**{"train.eval_batch_size": 8, "train.log_every": 1, "mesh": [["data", 2]],
                    "phases.zero_shot.languages": ("en", "de"),
                    "phases.target.train": {"epochs": 3.0},  # target has not begun
                    "phases.intermediate.train": {"epochs": 1.0, "eval_batch_size": 16}})
  changed.phases.tatoeba = dict(kind="retrieval", task="tatoeba", from_phase="target")
  changes = rundir.record_config(tmp_path, changed)
  assert "phases.target.train.epochs" in changes and "phases.tatoeba.kind" in changes
  relevant, _ = rundir.config_diff(json.loads(demo().to_json_best_effort()),
                                   json.loads(changed.to_json_best_effort()),
                                   started=("intermediate", "zero_shot"))
  assert relevant == {}
  del changed.phases["zero_shot"]  # removing a phase changes nothing trained
  rundir.record_config(tmp_path, changed)


def test_nothing_trained_means_nothing_to_protect(tmp_path):
  rundir.record_config(tmp_path, demo())
  assert "optim.lr" in rundir.record_config(tmp_path, demo(**{"optim.lr": 0.5}))
