"""Pieces the benchmarks share: the process environment, timing, and the Hugging Face twin model."""

from __future__ import annotations

import dataclasses
import os
import sys
import time

# The process settings xtjax's CPU runs should use (README.md in this folder has the figures).
ENV = {"GLIBC_TUNABLES": ":".join(["glibc.malloc.hugetlb=1", "glibc.malloc.mmap_max=0",
                                   "glibc.malloc.arena_max=1",
                                   "glibc.malloc.trim_threshold=17179869184"])}
START = time.perf_counter()  # when this process began importing the benchmark


def setup_process() -> None:
  """Re-executes the script with `ENV` added to its environment, unless already there.

  glibc keeps freed memory for reuse (one arena, no mmap, no trimming) on transparent huge
  pages: XLA's CPU runtime and PyTorch allocate a step's temporaries afresh at every call, and
  memory fresh from the kernel costs a page fault (and zeroing) at first touch: with 4 KiB pages
  a sixth of a small model's train step on 2 cores; with huge pages alone 0.1-1.4 s of system
  time per step when the two libraries alternate; with both settings none. (XLA:CPU's options,
  `xtjax.steps.CPU_COMPILER_OPTIONS`, travel with xtjax's programs instead.)

  Call before importing jax or torch; ``XTJAX_DEFAULT_ENV=1`` keeps the defaults, to compare.
  """
  if os.environ.get("XTJAX_DEFAULT_ENV") == "1" or os.environ.get("XTJAX_ENV_SET") == "1":
    return
  env = dict(os.environ, XTJAX_ENV_SET="1")
  for key, value in ENV.items():  # GLIBC_TUNABLES: colon-separated
    env[key] = ":".join(filter(None, [os.environ.get(key, ""), value]))
  os.execve(sys.executable, [sys.executable, *sys.argv], env)


def environment() -> dict:
  """The settings of `ENV` in force (for the JSON record)."""
  return {k: os.environ.get(k, "") for k in ENV}


def load_avg() -> list[float]:
  return [round(x, 2) for x in os.getloadavg()]


def timed(fn) -> float:
  t0 = time.perf_counter()
  fn()
  return time.perf_counter() - t0


def hf_config(cfg, **kw):
  """The transformers config of an `XLMRConfig` (XLM-R XL/XXL when pre-LN)."""
  import transformers

  fields = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)
            if f.name != "pre_layer_norm"}
  kind = transformers.XLMRobertaXLConfig if cfg.pre_layer_norm else transformers.XLMRobertaConfig
  return kind(**fields, **kw)


def torch_device() -> str:
  import torch

  return "cuda" if torch.cuda.is_available() else "cpu"
