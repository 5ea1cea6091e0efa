#!/usr/bin/env python3
"""Create a Cloud TPU VM (or queued resource), install xtjax on every worker, and run a config on
all workers at once. Every gcloud command is printed before it runs; --dry-run only prints.

  python launch/tpu_vm.py create --name xt --zone us-central2-b --accelerator-type v4-32 --queued --spot
  python launch/tpu_vm.py setup  --name xt --zone us-central2-b
  python launch/tpu_vm.py run    --name xt --zone us-central2-b --run-dir gs://bucket/run \\
      -- --config configs/phang2020/mnli_xnli.py:large
  python launch/tpu_vm.py resume --name xt --zone us-central2-b --queued --spot --run-dir gs://bucket/run \\
      -- --config configs/phang2020/mnli_xnli.py:large

Resuming is running the same command again: xtjax skips finished phases and resumes an
interrupted one from its latest checkpoint in the run directory.

A sweep (``xtjax sweep``) is split into shards of whole intermediate settings, one TPU VM each:

  python launch/tpu_vm.py sweep  --name xt0 --zone us-central2-b --sweep-dir gs://bucket/sweep \
      --shard 0/2 --detach -- --config configs/sweeps/phang2020.py:large
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys

REMOTE_DIR = "~/xtjax"
ARCHIVE = "/tmp/xtjax-src.tar.gz"
# JAX's persistent compilation cache, on each worker's own disk: the phases and runs of a sweep
# (and a rerun after preemption) load the train and eval steps they share instead of compiling
# them again. On every TPU VM host, as each host compiles its own program.
COMPILATION_CACHE = "~/.cache/xtjax/jax"


def _base(args) -> list[str]:
  return ["--zone", args.zone] + (["--project", args.project] if args.project else [])


def _ssh(args, name: str, remote: str) -> list[str]:
  return ["gcloud", "compute", "tpus", "tpu-vm", "ssh", name, *_base(args), "--worker=all",
          "--command", remote]


def create_commands(args) -> list[list[str]]:
  spot = ["--spot"] if args.spot else []
  if args.queued:
    return [["gcloud", "compute", "tpus", "queued-resources", "create", f"{args.name}-qr",
             "--node-id", args.name, *_base(args), "--accelerator-type", args.accelerator_type,
             "--runtime-version", args.runtime_version, *spot]]
  return [["gcloud", "compute", "tpus", "tpu-vm", "create", args.name, *_base(args),
           "--accelerator-type", args.accelerator_type, "--version", args.runtime_version, *spot]]


def setup_commands(args) -> list[list[str]]:
  install = (f"cd {REMOTE_DIR} && python3 -m venv .venv && .venv/bin/pip install -q -U pip && "
             ".venv/bin/pip install -q -e '.[tpu]'")
  if args.repo:
    fetch = f"(test -d {REMOTE_DIR} || git clone {shlex.quote(args.repo)} {REMOTE_DIR})"
    return [_ssh(args, args.name, f"{fetch} && {install}")]
  return [["git", "archive", "--format=tar.gz", "-o", ARCHIVE, "HEAD"],
          ["gcloud", "compute", "tpus", "tpu-vm", "scp", ARCHIVE, f"{args.name}:{ARCHIVE}",
           *_base(args), "--worker=all"],
          _ssh(args, args.name, f"mkdir -p {REMOTE_DIR} && tar -xzf {ARCHIVE} -C {REMOTE_DIR} && {install}")]


def xtjax_remote(args, subcommand: str, xtjax_args: list[str], log_name: str) -> str:
  """The shell command each worker runs: xtjax with XTJAX_DISTRIBUTED=1, in the install dir,
  with JAX's persistent compilation cache on the worker's disk (`COMPILATION_CACHE`)."""
  argv = [".venv/bin/xtjax", subcommand, *xtjax_args]
  command = (f"cd {REMOTE_DIR} && XTJAX_DISTRIBUTED=1 JAX_COMPILATION_CACHE_DIR={COMPILATION_CACHE} "
             f"{shlex.join(argv)}")
  if args.detach:
    log = f"~/xtjax-{log_name}.log"
    return f"cd {REMOTE_DIR} && nohup sh -c {shlex.quote(command)} > {log} 2>&1 &"
  return command


def _check_gcs(args, flag: str, path: str | None) -> None:
  if not path or not path.startswith("gs://"):
    raise SystemExit(f"tpu_vm.py {args.command}: {flag} must be a gs:// path so that every "
                     f"worker (and a resumed VM) sees the same checkpoints; got {path!r}")


def run_commands(args) -> list[list[str]]:
  _check_gcs(args, "--run-dir", args.run_dir)
  xtjax_args = [*args.xtjax, f"--config.run_dir={args.run_dir}"]
  return [_ssh(args, args.name, xtjax_remote(args, "run", xtjax_args, args.name))]


def sweep_commands(args) -> list[list[str]]:
  """One shard of ``xtjax sweep`` (the intermediate settings whose index % N is I) on every
  worker; the other shards run the same command on other VMs with the same --sweep-dir."""
  _check_gcs(args, "--sweep-dir", args.sweep_dir)
  index, _, count = args.shard.partition("/")
  if not (index.isdigit() and count.isdigit() and int(index) < int(count)):
    raise SystemExit(f"tpu_vm.py sweep: --shard must be I/N with 0 <= I < N, e.g. 0/2; "
                     f"got {args.shard!r}")
  xtjax_args = [*args.xtjax, f"--config.sweep_dir={args.sweep_dir}", "--shard", args.shard]
  return [_ssh(args, args.name, xtjax_remote(args, "sweep", xtjax_args, args.name))]


def resume_commands(args) -> list[list[str]]:
  """Re-create (if gone), re-install and re-run: every step is idempotent."""
  exists = ["gcloud", "compute", "tpus", "tpu-vm", "describe", args.name, *_base(args)]
  create = create_commands(args)
  return [["sh", "-c", f"{shlex.join(exists)} > /dev/null 2>&1 || {shlex.join(create[0])}"],
          *setup_commands(args), *run_commands(args)]


def delete_commands(args) -> list[list[str]]:
  if not args.yes:
    raise SystemExit("tpu_vm.py delete: pass --yes to delete the TPU VM")
  if args.queued:
    return [["gcloud", "compute", "tpus", "queued-resources", "delete", f"{args.name}-qr",
             *_base(args), "--force", "--quiet"]]
  return [["gcloud", "compute", "tpus", "tpu-vm", "delete", args.name, *_base(args), "--quiet"]]


def logs_commands(args) -> list[list[str]]:
  return [_ssh(args, args.name, f"tail -n {args.lines} ~/xtjax-{args.name}.log")]


def ssh_commands(args) -> list[list[str]]:
  return [["gcloud", "compute", "tpus", "tpu-vm", "ssh", args.name, *_base(args),
           f"--worker={args.worker}"]]


COMMANDS = {"create": create_commands, "setup": setup_commands, "run": run_commands,
            "sweep": sweep_commands, "resume": resume_commands, "delete": delete_commands,
            "logs": logs_commands, "ssh": ssh_commands}


def parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  sub = p.add_subparsers(dest="command", required=True)
  helps = {"create": "create the TPU VM or queued resource", "setup": "install xtjax on every worker",
           "run": "run `xtjax run` on every worker",
           "sweep": "run one shard of `xtjax sweep` on every worker",
           "resume": "re-create if preempted, re-install, re-run", "delete": "delete the TPU VM",
           "logs": "tail a detached run's log on every worker", "ssh": "open a shell on a worker"}
  for name, text in helps.items():
    s = sub.add_parser(name, help=text, description=text)
    s.add_argument("--name", required=True, help="TPU VM name")
    s.add_argument("--zone", required=True)
    s.add_argument("--project", default=None)
    s.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    if name in ("create", "resume", "delete"):
      s.add_argument("--queued", action="store_true", help="use a queued resource")
    if name in ("create", "resume"):
      s.add_argument("--accelerator-type", default="v4-8")
      s.add_argument("--runtime-version", default="tpu-ubuntu2204-base")
      s.add_argument("--spot", action="store_true", help="spot (preemptible) capacity")
    if name in ("setup", "resume"):
      s.add_argument("--repo", default=None, help="git URL to clone (default: copy this tree)")
    if name in ("run", "resume"):
      s.add_argument("--run-dir", default=None, help="gs:// run directory")
    if name == "sweep":
      s.add_argument("--sweep-dir", default=None, help="gs:// sweep directory, shared by the shards")
      s.add_argument("--shard", default="0/1", help="I/N: this VM runs the settings whose index "
                     "%% N is I (default 0/1: all)")
    if name in ("run", "sweep", "resume"):
      s.add_argument("--detach", action="store_true", help="run in the background, log to ~/xtjax-NAME.log")
      s.add_argument("xtjax", nargs=argparse.REMAINDER, help="-- then the xtjax arguments")
    if name == "delete":
      s.add_argument("--yes", action="store_true")
    if name == "logs":
      s.add_argument("--lines", type=int, default=50)
    if name == "ssh":
      s.add_argument("--worker", default="0")
  return p


def main(argv=None) -> int:
  args = parser().parse_args(argv)
  if getattr(args, "xtjax", None) and args.xtjax[0] == "--":
    args.xtjax = args.xtjax[1:]
  for cmd in COMMANDS[args.command](args):
    print("+ " + shlex.join(cmd), flush=True)
    if not args.dry_run:
      result = subprocess.run(cmd)
      if result.returncode:
        return result.returncode
  return 0


if __name__ == "__main__":
  sys.exit(main())
