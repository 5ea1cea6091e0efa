"""The environment of the processes that tests start: the test process's own (offline hubs, XLA
flags, compilation cache) with the number of simulated CPU devices set for the child."""

import os
import re


def env(devices: int | None = None, **extra: str) -> dict:
  """``os.environ`` for a child process on ``devices`` simulated CPU devices (None: the machine's
  own, as on a Colab CPU runtime), plus ``extra``."""
  out = dict(os.environ, JAX_PLATFORMS="cpu", **extra)
  flags = re.sub(r"--xla_force_host_platform_device_count=\d+", "", out.get("XLA_FLAGS", "")).split()
  if devices is not None:
    flags.append(f"--xla_force_host_platform_device_count={devices}")
  if flags:
    out["XLA_FLAGS"] = " ".join(flags)
  else:
    out.pop("XLA_FLAGS", None)
  return out
