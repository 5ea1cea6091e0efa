"""Disk space: a check before training that the run's checkpoints fit, and one-line errors instead
of the late, buried ones a full disk causes (``OSError: handle is closed`` at the end of a long log,
a tensorstore traceback from an async checkpoint write).

``check_free_space(run_dir, tree_bytes(params, opt_state) * (keep + 2), "checkpoints")`` before
the first step; ``with disk_errors(path, "results"):`` around writes.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil

import jax
import numpy as np

FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
FULL_TEXTS = ("no space left on device", "disk quota exceeded", "file too large")
LOW_SPACE = 64 << 20  # below this much free space, any failed write is blamed on the disk


class DiskFullError(OSError):
  """The disk under the run is full: one line naming where, how much is free, and the fix."""


def free_space(path) -> tuple[int, int] | None:
  """(free, total) bytes of the local disk holding ``path`` (or its nearest existing parent);
  None for remote paths such as gs://."""
  path = os.fspath(path)
  if "://" in path:
    return None
  path = os.path.abspath(path)
  while not os.path.exists(path):
    path = os.path.dirname(path)
  usage = shutil.disk_usage(path)
  return usage.free, usage.total


def tree_bytes(*trees) -> int:
  """Bytes of every array (or ShapeDtypeStruct) leaf of ``trees``."""
  return sum(int(np.prod(leaf.shape)) * np.dtype(leaf.dtype).itemsize
             for tree in trees for leaf in jax.tree.leaves(tree))


def _size(n: int) -> str:
  return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


def check_free_space(path, needed: int, what: str) -> None:
  """Raises DiskFullError now if the disk holding ``path`` has less than ``needed`` bytes free
  (remote paths are not checked)."""
  space = free_space(path)
  if space is not None and space[0] < needed:
    raise DiskFullError(f"not enough disk for {what} at {path}: about "
                        f"{_size(needed)} needed, {_size(space[0])} free of {_size(space[1])}; "
                        "free space (remove old runs or checkpoints) or set run_dir elsewhere")


def _causes(e: BaseException):
  seen = set()
  while e is not None and id(e) not in seen:
    seen.add(id(e))
    yield e
    e = e.__cause__ or e.__context__


def full_disk_message(e: BaseException, path, what: str) -> str | None:
  """The one-line error for ``e`` if a full disk (or quota) under ``path`` caused it, else None."""
  reason = None
  for cause in _causes(e):
    code, text = getattr(cause, "errno", None), str(cause).lower()
    if code in FULL_ERRNOS:
      reason = os.strerror(code)
    else:
      reason = next((t.capitalize() for t in FULL_TEXTS if t in text), None)
    if reason:
      break
  space = free_space(path)
  if reason is None:
    if space is None or space[0] >= LOW_SPACE:
      return None
    reason = next((l.strip() for l in str(e).splitlines() if l.strip()), type(e).__name__)[:200]
  free = f" ({_size(space[0])} free of {_size(space[1])})" if space else ""
  return (f"disk full writing {what} at {path}{free}: {reason}; free space (remove old runs or "
          "checkpoints) or set run_dir elsewhere, then rerun to resume")


@contextlib.contextmanager
def disk_errors(path, what: str):
  """Turns an error that a full disk under ``path`` caused into a one-line DiskFullError."""
  try:
    yield
  except DiskFullError:
    raise
  except Exception as e:  # tensorstore and orbax wrap ENOSPC in ValueError/RuntimeError
    message = full_disk_message(e, path, what)
    if message is None:
      raise
    raise DiskFullError(message) from e
