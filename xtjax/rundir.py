"""A run directory's identity and owner: the config it was trained with, the changes made to it on
purpose, and a lock that one writer holds at a time.

``record_config(run_dir, config, allow_change=False)`` compares ``config`` with the one the
directory recorded (``config.json``): a change that could alter what was already trained is a
one-line `ConfigChangedError` listing the changed keys; ``allow_change=True`` accepts it and
appends it to ``config_changes.json``. Settings that only affect evaluation, logging, memory or
layout (`FREE_KEYS`), evaluation phases, phases added, and phases that have not started may change
freely.

``with RunLock(run_dir):`` makes a second writer stop with `RunLockedError` naming the holder
(host, pid, command, last heartbeat). The lock is ``run_dir/xtjax.lock``, created atomically (a
hard link locally, a generation-match precondition on GCS) and refreshed by a heartbeat thread. A
lock whose holder is gone (a dead pid on this host, or no heartbeat for ``stale_after_s`` from
another host) is taken over: one contender at a time re-checks it under a take-over guard (locally)
or replaces it only if it is still the stale version (GCS). In a multi-host run process 0 holds it.
"""

from __future__ import annotations

import contextlib
import datetime
import fnmatch
import getpass
import json
import logging
import os
import socket
import sys
import threading
import time
import uuid

import jax
import numpy as np
from etils import epath
from jax.experimental import multihost_utils

try:  # the atomic lock on GCS needs the storage client; without it gs:// locks are best-effort
  from google.api_core.exceptions import NotFound, PreconditionFailed
  from google.cloud import storage
except ImportError:
  storage = None
  NotFound = PreconditionFailed = None

log = logging.getLogger(__name__)
CONFIG_FILE = "config.json"
CHANGES_FILE = "config_changes.json"
LOCK_FILE = "xtjax.lock"
# Config keys (dotted, globs) whose changes cannot alter a trained model: where the run lives,
# device layout (orbax reshards on restore), rematerialisation (memory only), evaluation batch
# size and buckets (evaluation gives the same numbers for any), training buckets (the padded
# batch's numbers up to rounding, as a mesh change), logging, retention, async saves,
# and the data only evaluation reads (BUCC archives, LAReQA pools, retrieval languages). The same
# keys are free inside a phase's optim/train/data overrides. Everything else is training-relevant.
FREE_KEYS = ("run_dir", "mesh", "sharding_rules", "model.remat", "train.eval_batch_size",
             "train.log_every", "train.keep", "train.async_checkpoints", "data.eval_buckets",
             "data.train_buckets", "data.bucc_dir", "data.lareqa_dir", "retrieval_languages",
             "retrieval_languages.*")
EVAL_KINDS = ("eval", "retrieval")  # phases that train nothing: every key may change


class ConfigChangedError(ValueError):
  """The config differs from the run directory's in settings that training depends on."""


class RunLockedError(RuntimeError):
  """Another process holds the run directory."""


# ----------------------------------------------------------------------------- config identity


def _flat(value, prefix="") -> dict:
  if isinstance(value, dict):
    out = {}
    for key, v in value.items():
      out.update(_flat(v, f"{prefix}{key}."))
    return out or {prefix[:-1]: {}}
  return {prefix[:-1]: value}


def _free(key: str, old: dict, new: dict, started: set[str]) -> bool:
  """Whether a change of ``key`` leaves everything trained so far valid."""
  if any(fnmatch.fnmatchcase(key, p) for p in FREE_KEYS):
    return True
  parts = key.split(".")
  if parts[0] != "phases" or len(parts) < 2:
    return False
  name = parts[1]
  before, after = ((c.get("phases") or {}).get(name) for c in (old, new))
  if name not in started or after is None:  # not begun, or removed: nothing trained changes
    return True
  if {p.get("kind") for p in (before, after) if p} <= set(EVAL_KINDS):
    return True
  rest = ".".join(parts[2:])
  return any(fnmatch.fnmatchcase(rest, p) for p in FREE_KEYS
             if p.split(".")[0] in ("optim", "train", "data"))


def config_diff(old: dict, new: dict, started=()) -> tuple[dict, dict]:
  """(training-relevant changes, free changes) between two configs as JSON dicts, each
  {dotted key: (old value, new value)}; ``started`` names the phases that have begun (nothing
  trained means every change is free)."""
  started = set(started)
  a, b = _flat(old), _flat(new)
  relevant, free = {}, {}
  for key in sorted(set(a) | set(b)):
    if a.get(key, "<unset>") != b.get(key, "<unset>"):
      bucket = free if not started or _free(key, old, new, started) else relevant
      bucket[key] = (a.get(key, "<unset>"), b.get(key, "<unset>"))
  return relevant, free


def _show(value) -> str:
  text = json.dumps(value) if not isinstance(value, str) or value == "<unset>" else repr(value)
  return text if len(text) <= 40 else text[:37] + "..."


def _started(directory: epath.Path, config: dict) -> set[str]:
  return {name for name in config.get("phases", {}) if (directory / name).exists()}


def _write(path: epath.Path, text: str) -> None:
  """Writes ``text`` whole or not at all (a crash leaves the old file)."""
  tmp = path.parent / f".{path.name}.{uuid.uuid4().hex}"
  tmp.write_text(text)
  tmp.replace(path)


def record_config(directory, config, *, allow_change: bool = False) -> dict:
  """Checks ``config`` (a ConfigDict) against the one ``directory`` recorded, records it in
  ``config.json`` and returns the changes {key: (old, new)} (empty for a new run).

  Raises ConfigChangedError if a training-relevant setting changed and ``allow_change`` is False;
  with it, the change is appended to ``config_changes.json`` (time, host, user, changes).
  """
  directory = epath.Path(directory)
  new = json.loads(config.to_json_best_effort())
  path = directory / CONFIG_FILE
  try:
    old = json.loads(path.read_text()) if path.exists() else None
  except ValueError as e:
    raise ConfigChangedError(f"{path} is unreadable ({e}): restore it, or delete it to record "
                             "the current config as the run's") from None
  relevant, free = config_diff(old, new, _started(directory, old)) if old else ({}, {})
  if relevant and not allow_change:
    shown = ", ".join(f"{k} {_show(a)} -> {_show(b)}" for k, (a, b) in relevant.items())
    raise ConfigChangedError(
        f"run_dir {directory} was trained with a different config: {shown}; use a new run_dir, "
        f"or pass --allow-config-change to continue with the new values (recorded in "
        f"{directory / CHANGES_FILE})")
  changes = {**relevant, **free}
  if free:
    log.info("config changes that training does not depend on: %s", ", ".join(free))
  if jax.process_count() > 1:  # every process has read the old config before it is replaced
    multihost_utils.sync_global_devices("xtjax record config")
  if jax.process_index() == 0:
    directory.mkdir(parents=True, exist_ok=True)
    if changes:
      history_path = directory / CHANGES_FILE
      history = json.loads(history_path.read_text()) if history_path.exists() else []
      history.append({"time": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
                      "host": socket.gethostname(), "user": getpass.getuser(),
                      "training_relevant": sorted(relevant),
                      "changes": {k: {"from": a, "to": b} for k, (a, b) in changes.items()}})
      _write(history_path, json.dumps(history, indent=2) + "\n")
    if changes or old is None:
      _write(path, config.to_json_best_effort(indent=2) + "\n")
  if relevant:
    log.warning("config changed on purpose (--allow-config-change): %s; recorded in %s",
                ", ".join(relevant), directory / CHANGES_FILE)
  return changes


# ----------------------------------------------------------------------------- the lock


def _boot_id() -> str:
  try:
    with open("/proc/sys/kernel/random/boot_id") as f:
      return f.read().strip()
  except OSError:
    return ""


def _pid_start(pid: int) -> str:
  """The start time of process ``pid`` (Linux clock ticks since boot), to tell a reused pid."""
  try:
    with open(f"/proc/{pid}/stat") as f:
      return f.read().rsplit(")", 1)[1].split()[19]
  except (OSError, IndexError):
    return ""


def _alive(pid: int, start: str) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    return True
  return not start or not _pid_start(pid) or _pid_start(pid) == start


class _LocalLock:
  """The lock file on a local (or NFS) file system; the heartbeat is the file's mtime."""

  def __init__(self, path: str):
    self.path = path

  def create(self, text: str) -> bool:
    tmp = f"{self.path}.{uuid.uuid4().hex}"
    with open(tmp, "w") as f:
      f.write(text)
      f.flush()
      os.fsync(f.fileno())
    try:
      os.link(tmp, self.path)  # atomic, and the file never exists half-written
      return True
    except FileExistsError:
      return False
    finally:
      os.unlink(tmp)

  def read(self) -> tuple[dict | None, float]:
    """(holder, seconds since its last heartbeat); (None, 0) if there is no lock."""
    try:
      with open(self.path) as f:
        text = f.read()
      age = time.time() - os.stat(self.path).st_mtime
    except FileNotFoundError:
      return None, 0.0
    try:
      return json.loads(text), age
    except ValueError:
      return {"token": f"unreadable:{text[:40]!r}"}, age

  @contextlib.contextmanager
  def _guard(self):
    """Serialises take-overs; a guard left by a killed process expires after a minute."""
    guard = self.path + ".takeover"
    try:
      fd = os.open(guard, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
      with contextlib.suppress(FileNotFoundError):
        if time.time() - os.stat(guard).st_mtime > 60:
          os.unlink(guard)
      yield False
      return
    os.close(fd)
    try:
      yield True
    finally:
      os.unlink(guard)

  def replace(self, stale_token: str, text: str) -> bool:
    with self._guard() as held:
      if not held or (self.read()[0] or {}).get("token") != stale_token:
        return False
      tmp = f"{self.path}.{uuid.uuid4().hex}"
      with open(tmp, "w") as f:
        f.write(text)
      os.replace(tmp, self.path)
      return True

  def beat(self, token: str, text: str) -> bool:
    del text
    if (self.read()[0] or {}).get("token") != token:
      return False
    os.utime(self.path)
    return True

  def delete(self, token: str) -> None:
    if (self.read()[0] or {}).get("token") == token:
      os.unlink(self.path)


class _GcsLock:
  """The lock object on GCS: created with if_generation_match=0, refreshed, taken over and
  deleted only at the generation this process wrote, so every step is a compare-and-swap."""

  def __init__(self, path: str, client=None):
    bucket, _, name = path[len("gs://"):].partition("/")
    self.blob = (client or storage.Client()).bucket(bucket).blob(name)
    self.generation = None

  def _write(self, text: str, match: int) -> bool:
    try:
      self.blob.upload_from_string(text, if_generation_match=match)
    except PreconditionFailed:
      return False
    self.generation = self.blob.generation
    return True

  def create(self, text: str) -> bool:
    return self._write(text, 0)

  def read(self) -> tuple[dict | None, float]:
    try:
      self.blob.reload()
      text = self.blob.download_as_bytes(if_generation_match=self.blob.generation)
    except (NotFound, PreconditionFailed):
      return None, 0.0
    age = (datetime.datetime.now(datetime.timezone.utc) - self.blob.updated).total_seconds()
    holder = json.loads(text)
    holder["generation"] = self.blob.generation
    return holder, age

  def replace(self, stale_token: str, text: str) -> bool:
    holder = self.read()[0]
    return bool(holder) and holder.get("token") == stale_token and \
        self._write(text, holder["generation"])

  def beat(self, token: str, text: str) -> bool:
    return self._write(text, self.generation)

  def delete(self, token: str) -> None:
    with contextlib.suppress(NotFound, PreconditionFailed):
      self.blob.delete(if_generation_match=self.generation)


class _BestEffortLock:
  """Any other etils path (gs:// without google-cloud-storage): exists-then-write, not atomic."""

  def __init__(self, path: str):
    self.path = path

  def create(self, text: str) -> bool:
    path = epath.Path(self.path)
    if path.exists():
      return False
    path.write_text(text)
    time.sleep(1.0)  # a racing writer shows up as a different token
    return json.loads(path.read_text()).get("token") == json.loads(text)["token"]

  def read(self) -> tuple[dict | None, float]:
    path = epath.Path(self.path)
    if not path.exists():
      return None, 0.0
    holder = json.loads(path.read_text())
    return holder, time.time() - holder.get("heartbeat", 0)

  def replace(self, stale_token: str, text: str) -> bool:
    if (self.read()[0] or {}).get("token") != stale_token:
      return False
    epath.Path(self.path).write_text(text)
    return True

  def beat(self, token: str, text: str) -> bool:
    if (self.read()[0] or {}).get("token") != token:
      return False
    epath.Path(self.path).write_text(text)
    return True

  def delete(self, token: str) -> None:
    if (self.read()[0] or {}).get("token") == token:
      epath.Path(self.path).unlink()


def _backend(path: str, client=None):
  if "://" not in path:
    return _LocalLock(path)
  if path.startswith("gs://") and (storage is not None or client is not None):
    return _GcsLock(path, client)
  log.warning("the run lock at %s is best-effort (not atomic): install google-cloud-storage for "
              "an atomic lock on GCS", path)
  return _BestEffortLock(path)


def describe(holder: dict, age: float) -> str:
  return (f"{holder.get('host', '?')} pid {holder.get('pid', '?')} (started "
          f"{holder.get('started', '?')}, last heartbeat {age:.0f} s ago, command: "
          f"{holder.get('command', '?')})")


class RunLock:
  """``with RunLock(run_dir):`` one writer per run directory (see the module docstring).

  ``heartbeat_s``: how often the holder refreshes the lock; ``stale_after_s``: how long without
  a heartbeat before a holder on another host counts as gone. ``lost`` turns True if another
  process took the lock over (the holder was thought dead); the runner should stop then.
  """

  def __init__(self, directory, *, heartbeat_s: float = 30.0, stale_after_s: float = 600.0,
               gcs_client=None):
    self.directory = epath.Path(directory)
    self.path = os.fspath(self.directory / LOCK_FILE)
    self.heartbeat_s, self.stale_after_s = heartbeat_s, stale_after_s
    self.token = uuid.uuid4().hex
    self.lost = False
    self._client = gcs_client
    self._backend = None
    self._stop = threading.Event()
    self._thread = None

  def _record(self) -> str:
    return json.dumps({
        "token": self.token, "host": socket.gethostname(), "boot_id": _boot_id(),
        "pid": os.getpid(), "pid_start": _pid_start(os.getpid()),
        "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "heartbeat": time.time(), "command": " ".join(sys.argv)[:300]})

  def _stale(self, holder: dict, age: float) -> str | None:
    """Why ``holder`` is gone, or None if it may still be running."""
    if holder.get("host") == socket.gethostname() and isinstance(holder.get("pid"), int):
      if holder.get("boot_id") != _boot_id():
        return "this host restarted since it took the lock"
      if not _alive(holder["pid"], holder.get("pid_start", "")):
        return f"its process {holder['pid']} on this host is gone"
      return None
    if age > self.stale_after_s:
      return f"no heartbeat for {age:.0f} s (more than {self.stale_after_s:.0f} s)"
    return None

  def _take(self) -> None:
    if "://" not in self.path:  # object stores have no directories to make
      self.directory.mkdir(parents=True, exist_ok=True)
    self._backend = _backend(self.path, self._client)
    for _ in range(50):
      if self._backend.create(self._record()):
        return
      holder, age = self._backend.read()
      if holder is None:
        continue  # released meanwhile
      reason = self._stale(holder, age)
      if reason is None:
        raise RunLockedError(
            f"run_dir {self.directory} is in use by {describe(holder, age)}; wait for it to "
            f"finish or stop it, or use another run_dir (if that process is gone, delete "
            f"{self.path})")
      if self._backend.replace(holder["token"], self._record()):
        log.warning("took over the run lock of %s: %s", describe(holder, age), reason)
        return
      time.sleep(0.1)  # another process is taking it over: look again
    raise RunLockedError(f"could not take the run lock {self.path}: it keeps changing hands")

  def _beat(self) -> None:
    while not self._stop.wait(self.heartbeat_s):
      try:
        alive = self._backend.beat(self.token, self._record())
      except Exception as e:  # a passing storage error: try again at the next beat
        log.warning("run lock heartbeat failed: %s", e)
        continue
      if not alive:
        self.lost = True
        holder, age = self._backend.read()
        log.error("lost the run lock of %s to %s", self.directory,
                  describe(holder, age) if holder else "nobody")
        return

  def acquire(self) -> "RunLock":
    """Takes the lock (process 0 of a multi-host run; the others learn whether it could)."""
    error = None
    if jax.process_index() == 0:
      try:
        self._take()
      except Exception as e:  # the other processes must hear of any failure, not hang
        error = e
    if jax.process_count() > 1:
      ok = multihost_utils.broadcast_one_to_all(np.int32(error is None))
      if not ok and error is None:
        error = RunLockedError(f"process 0 could not take the run lock of {self.directory} "
                               "(its log says why)")
    if error is not None:
      raise error
    if jax.process_index() == 0:
      self._thread = threading.Thread(target=self._beat, name="xtjax-run-lock", daemon=True)
      self._thread.start()
    return self

  def release(self) -> None:
    if self._thread is not None:
      self._stop.set()
      self._thread.join()
      self._thread = None
      if not self.lost:
        self._backend.delete(self.token)

  def __enter__(self) -> "RunLock":
    return self.acquire()

  def __exit__(self, exc_type, *exc) -> None:
    if exc_type is None and jax.process_count() > 1:
      multihost_utils.sync_global_devices("xtjax run lock release")  # every process is done
    self.release()
