"""Command-line plumbing shared by the ``xtjax`` commands: config files with overrides and
one-line errors, and the JAX process setup (multi-host joining, logging)."""

from __future__ import annotations

import logging
import os
import sys

import jax
from absl import flags
from ml_collections import config_flags


class _CurrentStderr(logging.StreamHandler):
  """Writes to whatever ``sys.stderr`` is when a record comes (notebooks and tests swap it)."""

  def emit(self, record):
    self.stream = sys.stderr
    super().emit(record)


def configure_jax():
  """Joins the processes of a multi-host run (``XTJAX_DISTRIBUTED=1``) and sets up logging."""
  if os.environ.get("XTJAX_DISTRIBUTED") == "1":  # set on every worker of a TPU pod by launch/
    # TPU pods are detected automatically; elsewhere name the coordinator and this process.
    names = ("coordinator_address", "num_processes", "process_id")
    manual = {k: os.environ[f"XTJAX_{k.upper()}"] for k in names
              if f"XTJAX_{k.upper()}" in os.environ}
    for k in ("num_processes", "process_id"):
      if k in manual:
        manual[k] = int(manual[k])
    jax.config.update("jax_cpu_collectives_implementation", "gloo")  # CPU-only; TPUs ignore it
    jax.distributed.initialize(**manual)
  for noisy in ("absl", "jax._src.xla_bridge"):
    logging.getLogger(noisy).setLevel(logging.WARNING)
  handler = _CurrentStderr()  # replaces the handler an imported library may have set up
  handler.setFormatter(logging.Formatter("%(asctime)s %(name)s: %(message)s"))
  logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
  logging.info("process %d/%d with %d local devices (%s)", jax.process_index(), jax.process_count(),
               jax.local_device_count(), jax.devices()[0].platform)


def config_path(argv: list[str]) -> str | None:
  """The file of ``--config FILE[:ARG]`` in ``argv``."""
  for i, arg in enumerate(argv):
    if arg.startswith("--config="):
      return arg.split("=", 1)[1].split(":", 1)[0]
    if arg == "--config" and i + 1 < len(argv):
      return argv[i + 1].split(":", 1)[0]
  return None


def innermost(e: BaseException) -> str:
  """The root cause of a config error, on one line."""
  while e.__cause__ is not None or e.__context__ is not None:
    e = e.__cause__ or e.__context__
  text = " ".join(str(e).replace("\\n", " ").split())
  if isinstance(e, KeyError):
    text = (f"unknown config key {text.strip(chr(39))} "
            "(overrides must name keys that the config file defines)")
  return text


def parse_config(command: str, argv: list[str], extra_flags, example: str):
  """(config, flag values) from ``--config FILE[:ARG]`` and its overrides, declared on fresh
  flags (override flags such as --config.a.b come from argv itself) with ``extra_flags(values)``
  added; on any error, one line on stderr and (None, None)."""
  values = flags.FlagValues()
  config_flag = config_flags.DEFINE_config_file("config", None, "ml_collections config file",
                                                flag_values=values, sys_argv=argv)
  extra_flags(values)
  path = config_path(argv)
  if path is None:
    sys.stderr.write(f"xtjax {command}: --config is required\n")
    return None, None
  if not os.path.exists(path):
    sys.stderr.write(f"xtjax {command}: config file {path} does not exist: give a path "
                     f"such as {example}\n")
    return None, None
  try:
    values(argv)
    config = config_flag.value
    config.keys()  # a config file that failed to load raises here
  except Exception as e:  # flag, config-file and override errors alike
    sys.stderr.write(f"xtjax {command}: {innermost(e)}\n")
    return None, None
  return config, values
