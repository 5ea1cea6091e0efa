"""Command-line plumbing shared by the ``xtjax`` commands: config files with overrides and
one-line errors, and the JAX process setup (multi-host joining, logging)."""

from __future__ import annotations

import logging
import os
import re
import sys

import jax
from absl import flags
from ml_collections import ConfigDict, config_flags

from xtjax.config import load_config_file
from xtjax.phase_config import PHASE_TYPES, SETTINGS, closest, phase_default, phase_fields

_PHASE_KEY = re.compile(r"--config\.phases\.([^.=\s]+)\.([^.=\s]+)(?:\.([^.=\s]+))?(?:=|$)")


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


def config_spec(argv: list[str]) -> tuple[str | None, list[str]]:
  """(``FILE[:ARG]`` of ``--config``, the other arguments)."""
  for i, arg in enumerate(argv):
    if arg.startswith("--config="):
      return arg.split("=", 1)[1], argv[:i] + argv[i + 1:]
    if arg == "--config" and i + 1 < len(argv):
      return argv[i + 1], argv[:i] + argv[i + 2:]
  return None, list(argv)


def config_path(argv: list[str]) -> str | None:
  """The file of ``--config FILE[:ARG]`` in ``argv``."""
  spec = config_spec(argv)[0]
  return None if spec is None else spec.split(":", 1)[0]


def add_phase_keys(config: ConfigDict, argv: list[str]) -> None:
  """Gives each phase that a ``--config.phases.NAME.KEY`` override names the key with its
  default if the config file leaves it out (every train phase has ``tuning``, ...), and each
  ``--config.phases.NAME.GROUP.KEY`` of a settings group (optim, train, data) the run's
  ``GROUP.KEY``, so that any phase key can be overridden; a key its kind lacks is an error
  naming the closest one."""
  phases = config.get("phases")
  for arg in argv:
    match = _PHASE_KEY.match(arg)
    if not match or not isinstance(phases, ConfigDict) or match[1] not in phases:
      continue
    name, key, sub = match[1], match[2], match[3]
    entry = phases[name]
    if not isinstance(entry, ConfigDict) or entry.get("kind") not in PHASE_TYPES:
      continue  # parse_phases names a missing or unknown kind
    fields = phase_fields(entry.kind)
    if key not in fields:
      raise ValueError(f"phase {name}: unknown key {key!r}{closest(key, fields)}; a {entry.kind} "
                       f"phase takes kind, {', '.join(fields)}")
    if sub is not None:  # optim.lr and the like: the phase starts from the run's value
      if key in SETTINGS and sub not in config[key]:
        raise ValueError(f"phase {name}: unknown {key} key {sub!r}{closest(sub, config[key])}")
      if key in SETTINGS and sub not in (entry.get(key) or {}):
        with entry.unlocked():
          if entry.get(key) is None:
            entry[key] = ConfigDict()
          entry[key][sub] = config[key][sub]
      continue
    default = phase_default(entry.kind, key)
    if key not in entry and default is not None and not isinstance(default, dict):
      with entry.unlocked():
        entry[key] = default


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
  spec, rest = config_spec(argv)
  if spec is None:
    sys.stderr.write(f"xtjax {command}: --config is required\n")
    return None, None
  path = spec.split(":", 1)[0]
  if not os.path.exists(path):
    sys.stderr.write(f"xtjax {command}: config file {path} does not exist: give a path "
                     f"such as {example}\n")
    return None, None
  values = flags.FlagValues()
  try:
    config = load_config_file(spec)
    add_phase_keys(config, rest)
    config_flag = config_flags.DEFINE_config_dict("config", config, "ml_collections config file",
                                                  flag_values=values, sys_argv=rest)
    extra_flags(values)
    values(rest)
    config = config_flag.value
  except Exception as e:  # flag, config-file and override errors alike
    sys.stderr.write(f"xtjax {command}: {innermost(e)}\n")
    return None, None
  return config, values
