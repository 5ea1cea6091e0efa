"""Latency and throughput of a jitted model function, with compilation timed apart.

Every input shape is compiled ahead of time (``jit(fn).lower(...).compile()``: compile time),
then run ``warmup`` times (excluded from the measurements, reported as warm-up time), then timed:
each call is bracketed by ``time.perf_counter`` and ends in ``jax.block_until_ready`` (dispatch is
asynchronous). Inputs are already on the device when the clock starts: tokenisation and
host-to-device copies are not part of any timing.
"""

from __future__ import annotations

import itertools
import time
from typing import Callable

import jax
import numpy as np

from xtjax.steps import compiler_options


class Timer:
  """Times ``fn(params, batch)``; compiles and warms up each new batch shape on first use."""

  def __init__(self, fn: Callable, params, *, warmup: int = 2):
    device = next(iter(jax.tree.leaves(params)[0].devices()))
    self.jitted = jax.jit(fn, compiler_options=compiler_options(device))
    self.params, self.warmup = params, warmup
    self.compiled: dict = {}
    self.compile_s: dict = {}
    self.warmup_s: dict = {}

  def prepare(self, batch: dict):
    """The compiled function for ``batch``'s shapes (compiled and warmed up on first use)."""
    key = tuple(sorted((k, v.shape) for k, v in batch.items()))
    if key not in self.compiled:
      start = time.perf_counter()
      compiled = self.jitted.lower(self.params, batch).compile()
      self.compile_s[key] = time.perf_counter() - start
      start = time.perf_counter()
      for _ in range(self.warmup):
        jax.block_until_ready(compiled(self.params, batch))
      self.warmup_s[key] = time.perf_counter() - start
      self.compiled[key] = compiled
    return self.compiled[key]

  def __call__(self, batch: dict) -> float:
    """Seconds of one steady-state call on ``batch``."""
    compiled = self.prepare(batch)
    start = time.perf_counter()
    jax.block_until_ready(compiled(self.params, batch))
    return time.perf_counter() - start

  def setup(self) -> dict:
    """Compilation and warm-up so far: shapes compiled, total seconds of each."""
    return {"shapes": len(self.compiled), "compile_s": float(sum(self.compile_s.values())),
            "warmup_s": float(sum(self.warmup_s.values())), "warmup_calls": self.warmup}


def latency(timer: Timer, batches: list[dict], calls: int) -> dict:
  """p50/p95/mean milliseconds over ``calls`` calls, cycling through ``batches`` (batch 1 each:
  the language's own length distribution)."""
  if not batches or calls < 1:
    raise ValueError("latency needs at least one batch and one call")
  for batch in batches:  # compile every shape before the first timing
    timer.prepare(batch)
  times = 1e3 * np.array([timer(b) for b in itertools.islice(itertools.cycle(batches), calls)])
  return {"calls": calls, "p50_ms": float(np.percentile(times, 50)),
          "p95_ms": float(np.percentile(times, 95)), "mean_ms": float(times.mean())}


def throughput(timer: Timer, batches: list[dict], *, examples: int, real_tokens: int,
               passes: int) -> dict:
  """Examples and real (unpadded) tokens per second over whole passes through ``batches``, from
  the median of ``passes`` passes; padded tokens per second counts every position run."""
  if not batches or passes < 1:
    raise ValueError("throughput needs at least one batch and one pass")
  for batch in batches:
    timer.prepare(batch)
  seconds = float(np.median([sum(timer(b) for b in batches) for _ in range(passes)]))
  padded = sum(int(np.prod(b["input_ids"].shape)) for b in batches)
  return {"passes": passes, "batches": len(batches), "seconds": seconds,
          "examples_per_s": examples / seconds, "real_tokens_per_s": real_tokens / seconds,
          "padded_tokens_per_s": padded / seconds}
