"""launch/tpu_vm.py builds the right gcloud commands, quotes xtjax arguments so they survive the
remote shell, and runs nothing with --dry-run."""

import importlib.util
import pathlib
import shlex
import subprocess

import pytest

PATH = pathlib.Path(__file__).parent.parent / "launch" / "tpu_vm.py"
spec = importlib.util.spec_from_file_location("tpu_vm", PATH)
tpu_vm = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tpu_vm)


def commands(argv):
  args = tpu_vm.parser().parse_args(argv)
  if getattr(args, "xtjax", None) and args.xtjax[0] == "--":
    args.xtjax = args.xtjax[1:]
  return tpu_vm.COMMANDS[args.command](args)


Z = ["--name", "xt", "--zone", "us-central2-b"]


def test_create_plain_and_queued_spot():
  assert commands(["create", *Z]) == [[
      "gcloud", "compute", "tpus", "tpu-vm", "create", "xt", "--zone", "us-central2-b",
      "--accelerator-type", "v4-8", "--version", "tpu-ubuntu2204-base"]]
  assert commands(["create", *Z, "--queued", "--spot", "--accelerator-type", "v4-32",
                   "--project", "p"]) == [[
      "gcloud", "compute", "tpus", "queued-resources", "create", "xt-qr", "--node-id", "xt",
      "--zone", "us-central2-b", "--project", "p", "--accelerator-type", "v4-32",
      "--runtime-version", "tpu-ubuntu2204-base", "--spot"]]


def test_setup_copies_this_tree_and_installs_the_tpu_extra_on_every_worker():
  archive, scp, ssh = commands(["setup", *Z])
  assert archive[:2] == ["git", "archive"]
  assert scp[:5] == ["gcloud", "compute", "tpus", "tpu-vm", "scp"] and "--worker=all" in scp
  assert "--worker=all" in ssh and "pip install -q -e '.[tpu]'" in ssh[-1]
  (clone,) = commands(["setup", *Z, "--repo", "https://example.org/xtjax.git"])
  assert "git clone https://example.org/xtjax.git" in clone[-1]


def test_run_quotes_xtjax_arguments_through_the_remote_shell():
  xt = ["--config", "configs/phang2020/mnli_xnli.py:large", "--config.phases.zero_shot.languages=('de', 'fr')",
        "--config.model.tokenizer=it's here"]
  (ssh,) = commands(["run", *Z, "--run-dir", "gs://b/run", "--", *xt])
  assert ssh[:6] == ["gcloud", "compute", "tpus", "tpu-vm", "ssh", "xt"] and "--worker=all" in ssh
  remote = shlex.split(ssh[-1])
  assert remote[:5] == ["cd", "~/xtjax", "&&", "XTJAX_DISTRIBUTED=1",
                        "JAX_COMPILATION_CACHE_DIR=~/.cache/xtjax/jax"]
  assert remote[5:] == [".venv/bin/xtjax", "run", *xt, "--config.run_dir=gs://b/run"]


def test_sweep_runs_one_shard_on_every_worker_in_a_shared_gcs_sweep_dir():
  (ssh,) = commands(["sweep", *Z, "--sweep-dir", "gs://b/sweep", "--shard", "1/4", "--",
                     "--config", "configs/sweeps/phang2020.py:large",
                     "--config.run.data.ccgbank_dir=gs://b/ccg bank"])
  assert ssh == [
      "gcloud", "compute", "tpus", "tpu-vm", "ssh", "xt", "--zone", "us-central2-b",
      "--worker=all", "--command",
      "cd ~/xtjax && XTJAX_DISTRIBUTED=1 JAX_COMPILATION_CACHE_DIR=~/.cache/xtjax/jax "
      ".venv/bin/xtjax sweep --config "
      "configs/sweeps/phang2020.py:large '--config.run.data.ccgbank_dir=gs://b/ccg bank' "
      "--config.sweep_dir=gs://b/sweep --shard 1/4"]
  (detached,) = commands(["sweep", *Z, "--sweep-dir", "gs://b/s", "--detach", "--", "--config", "c.py"])
  assert detached[-1] == ("cd ~/xtjax && nohup sh -c 'cd ~/xtjax && XTJAX_DISTRIBUTED=1 "
                          "JAX_COMPILATION_CACHE_DIR=~/.cache/xtjax/jax .venv/bin/xtjax sweep --config c.py --config.sweep_dir=gs://b/s "
                          "--shard 0/1' > ~/xtjax-xt.log 2>&1 &")


@pytest.mark.parametrize("argv, message", [
    (["--sweep-dir", "runs/sweep"], "--sweep-dir must be a gs:// path"),
    (["--sweep-dir", "gs://b/s", "--shard", "4/4"], "--shard must be I/N with 0 <= I < N"),
    (["--sweep-dir", "gs://b/s", "--shard", "2"], "--shard must be I/N"),
])
def test_sweep_checks_its_dir_and_shard(argv, message):
  with pytest.raises(SystemExit, match=message):
    commands(["sweep", *Z, *argv, "--", "--config", "c.py"])


def test_run_needs_a_gcs_run_dir():
  with pytest.raises(SystemExit, match="--run-dir must be a gs:// path"):
    commands(["run", *Z, "--", "--config", "configs/demo.py"])


def test_detached_run_logs_to_a_file():
  (ssh,) = commands(["run", *Z, "--run-dir", "gs://b/r", "--detach", "--", "--config", "c.py"])
  assert ssh[-1].startswith("cd ~/xtjax && nohup sh -c ") and ssh[-1].endswith("> ~/xtjax-xt.log 2>&1 &")


def test_resume_recreates_only_if_gone_then_reinstalls_and_reruns():
  cmds = commands(["resume", *Z, "--queued", "--spot", "--run-dir", "gs://b/r", "--", "--config", "c.py"])
  assert cmds[0][:2] == ["sh", "-c"] and "describe xt" in cmds[0][2] and "|| gcloud" in cmds[0][2]
  assert "queued-resources create xt-qr" in cmds[0][2]
  assert cmds[1][:2] == ["git", "archive"] and "xtjax run" in " ".join(cmds[-1])


def test_delete_asks_for_yes():
  with pytest.raises(SystemExit, match="--yes"):
    commands(["delete", *Z])
  assert commands(["delete", *Z, "--yes"])[0][-1] == "--quiet"


def test_dry_run_prints_and_runs_nothing(monkeypatch, capsys):
  monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("dry run executed a command"))
  assert tpu_vm.main(["run", *Z, "--run-dir", "gs://b/r", "--dry-run", "--", "--config", "c.py"]) == 0
  out = capsys.readouterr().out
  assert out.startswith("+ gcloud compute tpus tpu-vm ssh xt") and "XTJAX_DISTRIBUTED=1" in out


@pytest.mark.parametrize("command", sorted(tpu_vm.COMMANDS))
def test_help(command, capsys):
  with pytest.raises(SystemExit) as e:
    tpu_vm.main([command, "--help"])
  assert e.value.code == 0 and "--zone" in capsys.readouterr().out
