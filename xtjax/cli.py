"""The ``xtjax`` command.

``xtjax run|train|eval --config configs/x.py[:arg] [--config.key=value] [--phase NAME ...]``:
``run`` runs every phase of the config in order; ``train`` only its training phases (and the
pretrained conversion they start from); ``eval`` only its evaluation phases.

``xtjax eval --checkpoint RUN_DIR --tasks xnli,pawsx [--benchmark xtreme|xtreme-r]`` evaluates the
models a finished run trained on every language of the benchmark, with leaderboard files.
``xtjax score --predictions DIR --labels DIR --benchmark B`` scores such files like the official
``evaluate.py``; ``xtjax export-labels --benchmark B --out DIR`` writes the gold label folder.
``xtjax align``, ``bench`` and ``crosslingual`` analyse trained runs (`xtjax.analysis`).
"""

from __future__ import annotations

import argparse
import logging
import sys

from absl import flags

from xtjax import labels, scoring, sweep
from xtjax.analysis import align, bench, crosslingual
from xtjax.cmdline import configure_jax, innermost, parse_config
from xtjax.data.tasks import RETRIEVAL_TASKS
from xtjax.diskspace import DiskFullError
from xtjax.fit import Preempted
from xtjax.phase_config import parse_phases
from xtjax.phases.evaluate import evaluate_checkpoint
from xtjax.retrieval.evaluate import evaluate_phases
from xtjax.run import Run
from xtjax.rundir import ConfigChangedError, RunLockedError
from xtjax.runner import run_all

COMMANDS = {
    "run": "run every phase of the config in order, skipping finished ones",
    "train": "run the phases that build models (assets, pretrained conversion, training)",
    "eval": "run the eval phases (their models must be trained), or --checkpoint RUN_DIR --tasks",
    "score": "score a prediction folder against a label folder (--predictions --labels --benchmark)",
    "export-labels": "write the gold label folder of a benchmark (--benchmark --out)",
    "sweep": "run an intermediate x target sweep, one run dir per intermediate setting "
             "(--config, --dry-run, --shard I/N)",
    "report": "write the table, CSV and heatmap of a sweep against its baseline (--sweep DIR)",
    "align": "cross-lingual alignment per layer and its retention (--checkpoints RUN[:phase],... "
             "--pairs tatoeba|xnli|FILE)",
    "bench": "inference latency, throughput and tokenizer fertility per language (--checkpoint "
             "RUN[:phase] --tasks ...)",
    "crosslingual": "XNLI/PAWS-X with the two sentences of a pair in different languages: a "
                    "language x language matrix (--checkpoint RUN[:phase] --tasks xnli,pawsx)",
}
# Commands with argparse flags of their own (everything after the command word).
ANALYSIS = {"align": align.main_align, "bench": bench.main_bench,
            "crosslingual": crosslingual.main_crosslingual}
USAGE = "usage: xtjax {" + ",".join(COMMANDS) + "} --config FILE[:ARG] [--config.KEY=VALUE ...]\n" + \
    "".join(f"  {k:13s} {v}\n" for k, v in COMMANDS.items())


def main(argv=None) -> int:
  argv = list(sys.argv if argv is None else argv)
  if len(argv) < 2 or argv[1] not in COMMANDS:
    sys.stderr.write(USAGE if len(argv) < 2 or argv[1] in ("-h", "--help")
                     else f"xtjax: unknown command {argv[1]!r}\n{USAGE}")
    return 0 if len(argv) >= 2 and argv[1] in ("-h", "--help") else 2
  command = argv.pop(1)
  if command in ("sweep", "report"):
    return (sweep.main_sweep if command == "sweep" else sweep.main_report)(argv[1:])
  if command in ANALYSIS:
    configure_jax()
    return ANALYSIS[command](argv[1:])
  if command in ("score", "export-labels") or (command == "eval" and "--checkpoint" in " ".join(argv)):
    return _files_command(command, argv[1:])

  def extra_flags(values):
    flags.DEFINE_multi_string("phase", None, "restrict to these phases", flag_values=values)
    flags.DEFINE_bool("allow-config-change", False, "resume a run with changed training settings "
                      "(recorded in config_changes.json)", flag_values=values)
    flags.DEFINE_string("tasks", "", "eval: retrieval tasks (tatoeba,bucc2018) to run from every "
                        "finished phase (or --phase)", flag_values=values)

  config, values = parse_config(command, argv, extra_flags, "configs/demo.py")
  if config is None:
    return 2
  phase_flag, tasks_flag = values["phase"], values["tasks"]
  try:  # every phase is checked before anything runs
    phases = parse_phases(config)
  except ValueError as e:
    sys.stderr.write(f"xtjax {command}: {innermost(e)}\n")
    return 2
  configure_jax()
  if command == "eval" and tasks_flag.value:
    tasks = tasks_flag.value.split(",")
    other = [t for t in tasks if t not in RETRIEVAL_TASKS]
    if other:
      sys.stderr.write(f"xtjax eval: --config with --tasks runs retrieval tasks "
                       f"({', '.join(RETRIEVAL_TASKS)}); for {other} use --checkpoint RUN_DIR\n")
      return 2
    try:
      evaluate_phases(Run(config), tasks, phase_flag.value or None)
    except (ValueError, FileNotFoundError) as e:
      sys.stderr.write(f"xtjax eval: {innermost(e)}\n")
      return 2
    return 0
  wanted = {"run": None, "train": ("demo_assets", "pretrained", "train", "dual_encoder"),
            "eval": ("eval", "retrieval")}[command]
  names = [n for n, p in phases.items()
           if (wanted is None or p.kind in wanted) and (not phase_flag.value or n in phase_flag.value)]
  unknown = set(phase_flag.value or ()) - set(phases)
  if unknown:
    sys.stderr.write(f"xtjax {command}: unknown phase(s) {sorted(unknown)}: the config has "
                     f"{', '.join(phases)}\n")
    return 2
  try:
    run_all(config, only=names, allow_change=values["allow-config-change"].value)
  except Preempted as e:
    logging.warning("%s", e)
    return 0
  except (ConfigChangedError, RunLockedError, DiskFullError) as e:
    sys.stderr.write(f"xtjax {command}: {e}\n")
    return 2
  return 0


def _parser(command: str):
  p = argparse.ArgumentParser(prog=f"xtjax {command}", description=COMMANDS[command])
  if command == "eval":
    p.add_argument("--checkpoint", required=True, help="run_dir of a run trained by xtjax run")
    p.add_argument("--tasks", required=True, help="comma-separated tasks, e.g. xnli,pawsx,tatoeba")
    p.add_argument("--from-phase", default=None,
                   help="the phase whose encoder retrieval tasks read (default: intermediate)")
    p.add_argument("--cross-lingual", action="store_true",
                   help="XNLI/PAWS-X with the pair's sentences in different languages (as xtjax "
                        "crosslingual)")
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
    p.add_argument("--ud-dir", default=None,
                   help="the official UD releases, read as XTREME does (UD-POS test sets)")
  p.add_argument("--benchmark", default="xtreme", choices=("xtreme", "xtreme-r"))
  return p


def _files_command(command: str, argv: list[str]) -> int:
  """``eval --checkpoint``, ``score`` and ``export-labels``: argparse flags, one-line errors."""
  args = _parser(command).parse_args(argv)
  tasks = [t for t in getattr(args, "tasks", "").split(",") if t]
  try:
    if command == "score":
      print(scoring.format_report(scoring.score(args.predictions, args.labels, args.benchmark,
                                                tasks or None)))
    elif command == "export-labels":
      labels.export_labels(args.benchmark, args.out, tasks or None, source=args.source,
                    hub_mirror=args.hub_mirror, tfds_data_dir=args.tfds_data_dir,
                    ud_dir=args.ud_dir)
    elif args.cross_lingual:
      configure_jax()
      return crosslingual.main_crosslingual(["--checkpoint", args.checkpoint, "--tasks",
                                             args.tasks])
    else:
      configure_jax()
      evaluate_checkpoint(Run.from_dir(args.checkpoint), tasks, args.benchmark, args.from_phase)
  except (ValueError, FileNotFoundError) as e:
    sys.stderr.write(f"xtjax {command}: {innermost(e)}\n")
    return 2
  return 0


if __name__ == "__main__":
  sys.exit(main())
