"""The ``xtjax`` command.

``xtjax run|train|eval --config configs/x.py[:arg] [--config.key=value] [--phase NAME ...]``:
``run`` runs every phase of the config in order; ``train`` only its training phases (and the
pretrained conversion they start from); ``eval`` only its evaluation phases.

``xtjax eval --checkpoint RUN_DIR --tasks xnli,pawsx [--benchmark xtreme|xtreme-r]`` evaluates the
models a finished run trained on every language of the benchmark, with leaderboard files.
``xtjax score --predictions DIR --labels DIR --benchmark B`` scores such files like the official
``evaluate.py``; ``xtjax export-labels --benchmark B --out DIR`` writes the gold label folder.
"""

from __future__ import annotations

import logging
import os
import sys

COMMANDS = {
    "run": "run every phase of the config in order, skipping finished ones",
    "train": "run the phases that build models (assets, pretrained conversion, training)",
    "eval": "run the eval phases (their models must be trained), or --checkpoint RUN_DIR --tasks",
    "score": "score a prediction folder against a label folder (--predictions --labels --benchmark)",
    "export-labels": "write the gold label folder of a benchmark (--benchmark --out)",
    "sweep": "run an intermediate x target sweep, one run dir per intermediate setting "
             "(--config, --dry-run, --shard I/N)",
    "report": "write the table, CSV and heatmap of a sweep against its baseline (--sweep DIR)",
}
USAGE = "usage: xtjax {" + ",".join(COMMANDS) + "} --config FILE[:ARG] [--config.KEY=VALUE ...]\n" + \
    "".join(f"  {k:13s} {v}\n" for k, v in COMMANDS.items())


def _configure_jax():
  import jax
  if os.environ.get("XTJAX_DISTRIBUTED") == "1":  # set on every worker of a TPU pod by launch/
    # TPU pods are detected automatically; elsewhere name the coordinator and this process.
    manual = {k: os.environ[f"XTJAX_{k.upper()}"] for k in ("coordinator_address", "num_processes",
                                                          "process_id") if f"XTJAX_{k.upper()}" in os.environ}
    for k in ("num_processes", "process_id"):
      if k in manual:
        manual[k] = int(manual[k])
    jax.config.update("jax_cpu_collectives_implementation", "gloo")  # CPU-only; TPUs ignore it
    jax.distributed.initialize(**manual)
  logging.getLogger("absl").setLevel(logging.WARNING)
  logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
  logging.info("process %d/%d with %d local devices (%s)", jax.process_index(), jax.process_count(),
               jax.local_device_count(), jax.devices()[0].platform)


def _config_file(argv: list[str]) -> str | None:
  for i, arg in enumerate(argv):
    if arg.startswith("--config="):
      return arg.split("=", 1)[1].split(":", 1)[0]
    if arg == "--config" and i + 1 < len(argv):
      return argv[i + 1].split(":", 1)[0]
  return None


def _innermost(e: BaseException) -> str:
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
  from absl import flags
  from ml_collections import config_flags
  values = flags.FlagValues()
  config_flag = config_flags.DEFINE_config_file("config", None, "ml_collections config file",
                                                flag_values=values, sys_argv=argv)
  extra_flags(values)
  config_file = _config_file(argv)
  if config_file is None:
    sys.stderr.write(f"xtjax {command}: --config is required\n{USAGE}")
    return None, None
  if not os.path.exists(config_file):
    sys.stderr.write(f"xtjax {command}: config file {config_file} does not exist: give a path "
                     f"such as {example}\n")
    return None, None
  try:
    values(argv)
    config = config_flag.value
    config.keys()  # a config file that failed to load raises here
  except Exception as e:  # flag, config-file and override errors alike
    sys.stderr.write(f"xtjax {command}: {_innermost(e)}\n")
    return None, None
  return config, values


def main(argv=None) -> int:
  argv = list(sys.argv if argv is None else argv)
  if len(argv) < 2 or argv[1] not in COMMANDS:
    sys.stderr.write(USAGE if len(argv) < 2 or argv[1] in ("-h", "--help")
                     else f"xtjax: unknown command {argv[1]!r}\n{USAGE}")
    return 0 if len(argv) >= 2 and argv[1] in ("-h", "--help") else 2
  command = argv.pop(1)
  if command in ("sweep", "report"):
    from xtjax import sweep
    return (sweep.main_sweep if command == "sweep" else sweep.main_report)(argv[1:])
  if command in ("score", "export-labels") or (command == "eval" and "--checkpoint" in " ".join(argv)):
    return _files_command(command, argv[1:])

  def extra_flags(values):
    from absl import flags
    flags.DEFINE_multi_string("phase", None, "restrict to these phases", flag_values=values)
    flags.DEFINE_string("tasks", "", "eval: retrieval tasks (tatoeba,bucc2018) to run from every "
                        "finished phase (or --phase)", flag_values=values)

  config, values = parse_config(command, argv, extra_flags, "configs/demo.py")
  if config is None:
    return 2
  phase_flag, tasks_flag = values["phase"], values["tasks"]
  _configure_jax()
  if command == "eval" and tasks_flag.value:
    from xtjax.retrieval.evaluate import RETRIEVAL_TASKS, evaluate_phases
    from xtjax.train import Run
    tasks = tasks_flag.value.split(",")
    other = [t for t in tasks if t not in RETRIEVAL_TASKS]
    if other:
      sys.stderr.write(f"xtjax eval: --config with --tasks runs retrieval tasks "
                       f"({', '.join(RETRIEVAL_TASKS)}); for {other} use --checkpoint RUN_DIR\n")
      return 2
    try:
      evaluate_phases(Run(config), tasks, phase_flag.value or None)
    except (ValueError, FileNotFoundError) as e:
      sys.stderr.write(f"xtjax eval: {_innermost(e)}\n")
      return 2
    return 0
  from xtjax.train import run_all
  kinds = {"run": None, "train": ("demo_assets", "pretrained", "train", "dual_encoder"),
           "eval": ("eval", "retrieval")}[command]
  names = [n for n, p in config.phases.items()
           if (kinds is None or p.kind in kinds) and (not phase_flag.value or n in phase_flag.value)]
  unknown = set(phase_flag.value or ()) - set(config.phases)
  if unknown:
    sys.stderr.write(f"xtjax {command}: unknown phase(s) {sorted(unknown)}: the config has "
                     f"{', '.join(config.phases)}\n")
    return 2
  run_all(config, only=names)
  return 0


def _parser(command: str):
  import argparse
  p = argparse.ArgumentParser(prog=f"xtjax {command}", description=COMMANDS[command])
  if command == "eval":
    p.add_argument("--checkpoint", required=True, help="run_dir of a run trained by xtjax run")
    p.add_argument("--tasks", required=True, help="comma-separated tasks, e.g. xnli,pawsx,tatoeba")
    p.add_argument("--from-phase", default=None,
                   help="the phase whose encoder retrieval tasks read (default: intermediate)")
  if command == "score":
    p.add_argument("--predictions", required=True, help="folder of <task>/test-<lang>.<ext>")
    p.add_argument("--labels", required=True, help="gold folder in the same layout")
    p.add_argument("--tasks", default="", help="comma-separated tasks (default: those predicted)")
  if command == "export-labels":
    p.add_argument("--out", required=True, help="folder to write <task>/test-<lang>.<ext> into")
    p.add_argument("--tasks", default="", help="comma-separated tasks (default: all xtjax has)")
    p.add_argument("--hub-mirror", default=None, help="local directory laid out like the hub")
    p.add_argument("--source", default="hub", choices=("hub", "tfds"))
    p.add_argument("--tfds-data-dir", default=None)
  p.add_argument("--benchmark", default="xtreme", choices=("xtreme", "xtreme-r"))
  return p


def _files_command(command: str, argv: list[str]) -> int:
  """``eval --checkpoint``, ``score`` and ``export-labels``: argparse flags, one-line errors."""
  args = _parser(command).parse_args(argv)
  tasks = [t for t in getattr(args, "tasks", "").split(",") if t]
  try:
    if command == "score":
      from xtjax import scoring
      print(scoring.format_report(scoring.score(args.predictions, args.labels, args.benchmark,
                                                tasks or None)))
    elif command == "export-labels":
      from xtjax.labels import export_labels
      export_labels(args.benchmark, args.out, tasks or None, source=args.source,
                    hub_mirror=args.hub_mirror, tfds_data_dir=args.tfds_data_dir)
    else:
      _configure_jax()
      from xtjax.evaluate import evaluate_checkpoint
      from xtjax.train import Run
      evaluate_checkpoint(Run.from_dir(args.checkpoint), tasks, args.benchmark, args.from_phase)
  except (ValueError, FileNotFoundError) as e:
    sys.stderr.write(f"xtjax {command}: {_innermost(e)}\n")
    return 2
  return 0


if __name__ == "__main__":
  sys.exit(main())
