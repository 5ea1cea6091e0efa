"""Preemption: SIGTERM (what a preempted TPU VM or queued resource sends) becomes a request to
stop at a step that every process reaches, so the loop can save there and exit cleanly.

    with PreemptionGuard() as guard:
      for step in ...:
        ...train one step...
        if guard.should_stop(step + 1):
          save(step + 1); wait for the save; break

One process: a Python handler sets a flag. Several processes joined by ``jax.distributed``: JAX's
own preemption service catches SIGTERM on any process and `should_stop` answers True on every
process at the same step (`jax.experimental.multihost_utils.reached_preemption_sync_point`);
without that service the flags are gathered every step. With the Python handler, a second
SIGTERM stops the process at once (the previous handler runs).
"""

from __future__ import annotations

import logging
import os
import signal
import threading

import jax
import numpy as np
from jax.experimental import multihost_utils

log = logging.getLogger(__name__)


def _jax_service() -> bool:
  """Whether JAX's preemption service watches SIGTERM (jax.distributed with it enabled)."""
  return jax.distributed.is_initialized() and jax.config.jax_enable_preemption_service


class PreemptionGuard:
  """Catches ``signals`` while entered; `should_stop(step)` is called once per step."""

  def __init__(self, signals=(signal.SIGTERM,)):
    self.signals = tuple(signals)
    self.received: int | None = None  # the signal caught by this process, if any
    self._previous: dict = {}

  def _handle(self, signum, frame) -> None:
    if self.received is not None:  # a second signal: let the previous handler have it
      self.__exit__(None, None, None)
      os.kill(os.getpid(), signum)
      return
    self.received = signum
    log.warning("received %s: stopping at the next step that every process reaches, then "
                "saving a checkpoint (send it again to stop at once)", signal.Signals(signum).name)

  def __enter__(self) -> "PreemptionGuard":
    if _jax_service():
      return self  # JAX's handler catches SIGTERM; a Python handler would replace it
    if threading.current_thread() is not threading.main_thread():
      log.warning("preemption signals are not caught: handlers need the main thread")
      return self
    for sig in self.signals:
      self._previous[sig] = signal.signal(sig, self._handle)
    return self

  def __exit__(self, *exc) -> None:
    for sig, handler in self._previous.items():
      signal.signal(sig, handler)
    self._previous = {}

  def should_stop(self, step: int) -> bool:
    """True when the run should save ``step`` and stop: the same answer, at the same step, on
    every process (all of them must call this at every step)."""
    if _jax_service():
      stop = multihost_utils.reached_preemption_sync_point(step)
    elif jax.process_count() > 1:
      stop = bool(np.any(multihost_utils.process_allgather(np.asarray(self.received is not None))))
    else:
      stop = self.received is not None
    if stop:
      log.warning("preempted: saving step %d and stopping (rerun the same command to resume)",
                  step)
    return stop
