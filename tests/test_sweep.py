"""Sweeps: the paper's 11 x 9 grid expands into one run per intermediate setting whose intermediate
model every target shares; shards split whole settings; a demo sweep runs for real and reports."""

import csv
import itertools
import json

import pytest

import configs.sweeps.phang2020 as phang2020
from xtjax import sweep as sweep_lib
from xtjax import runner
from xtjax.phase_config import PHASE_TYPES, parse_phases
from xtjax.phases import demo_assets
from xtjax.run import Run
from xtjax.data.tasks import INTERMEDIATE_TASKS, get_task
from xtjax.scoring import TASK_LANGUAGES

PHANG = "configs/sweeps/phang2020.py"
SETTINGS = ["none", *INTERMEDIATE_TASKS, "multitask"]
TARGETS = ["xnli", "pawsx", "udpos", "panx", "xquad", "mlqa", "tydiqa", "bucc2018", "tatoeba"]


@pytest.fixture(scope="module")
def grid():
  sweep = phang2020.get_config("large")
  return sweep, sweep_lib.expand(sweep)


def test_phang2020_has_99_runs_and_trains_each_intermediate_model_once(grid):
  sweep, configs = grid
  assert [sweep_lib.group_name(c) for c in configs] == SETTINGS
  assert [c.run_dir for c in configs] == [f"runs/sweeps/phang2020_large/{s}" for s in SETTINGS]
  runs = sweep_lib.runs(sweep)
  assert len(runs) == 99
  assert {(r.intermediate, r.target) for r in runs} == set(itertools.product(SETTINGS, TARGETS))
  # One intermediate phase per setting but the baseline, in its own run directory only.
  holders = [sweep_lib.group_name(c) for c in configs if "intermediate" in c.phases]
  assert holders == SETTINGS[1:]
  assert configs[-1].phases.intermediate.tasks == INTERMEDIATE_TASKS
  for r in runs:
    start = "pretrained" if r.intermediate == "none" else "intermediate"
    assert r.phases[0] == "pretrained" and r.phases[-1] == f"eval_{r.target}"
    assert (start, 9) in r.shared  # every run of the setting uses the same starting model
    assert (("squad", 2) in r.shared) == (r.target in ("xquad", "mlqa"))
  mnli_xnli = next(r for r in runs if (r.intermediate, r.target) == ("mnli", "xnli"))
  assert mnli_xnli.describe() == ("mnli/xnli: phases pretrained -> intermediate -> xnli -> "
                                  "eval_xnli; depends on mnli/intermediate (shared by 9 runs)")


def test_dry_run_prints_every_run_with_its_dependencies(grid, capsys):
  sweep, _ = grid
  assert sweep_lib.main_sweep(["--config", PHANG, "--dry-run"]) == 0
  lines = capsys.readouterr().out.splitlines()
  run_lines = [l.strip() for l in lines if l.startswith("  ")]
  assert run_lines == [r.describe() for r in sweep_lib.runs(sweep)]
  assert lines[1] == "group 0 none (runs/sweeps/phang2020_large/none): no intermediate phase"
  assert lines[-1] == "99 runs in 11 groups; 10 intermediate models, each trained once"


def test_overrides_reach_every_group(capsys):
  assert sweep_lib.main_sweep(["--config", f"{PHANG}:base", "--dry-run",
                               "--config.sweep_dir=gs://b/s"]) == 0
  out = capsys.readouterr().out
  assert "group 10 multitask (gs://b/s/multitask)" in out


@pytest.mark.parametrize("count", [1, 2, 3, 4, 11, 12])
def test_shards_partition_the_settings(grid, count):
  _, configs = grid
  shards = [[k for k, _ in sweep_lib.shard(configs, i, count)] for i in range(count)]
  assert sorted(k for s in shards for k in s) == list(range(len(configs)))


def test_dry_run_of_a_shard_shows_only_its_settings(capsys):
  assert sweep_lib.main_sweep(["--config", PHANG, "--dry-run", "--shard", "1/3"]) == 0
  lines = capsys.readouterr().out.splitlines()
  assert lines[1] == "shard 1/3: groups 1, 4, 7, 10"
  groups = [l.split()[2] for l in lines if l.startswith("group ")]
  assert groups == ["anli_plus", "squad", "ccg", "multitask"]
  assert len([l for l in lines if l.startswith("  ")]) == 36
  assert lines[-1] == ("36 runs in 4 of 11 groups (shard 1/3); 4 intermediate models, each "
                       "trained once")


@pytest.mark.parametrize("args, message", [
    (["--shard", "3/3"], "--shard must be I/N with 0 <= I < N, e.g. 0/2; got '3/3'"),
    (["--shard", "one/2"], "--shard must be I/N"),
    (["--config.intermediates.mnli.train.epoch=1"], "unknown config key"),
    (["--config.targets.xquad.train.epochs=3"], "shares the squad model with another target"),
])
def test_errors_are_one_line(args, message, capsys):
  assert sweep_lib.main_sweep(["--config", PHANG, "--dry-run", *args]) == 2
  err = capsys.readouterr().err
  assert err.startswith("xtjax sweep: ") and message in err and err.count("\n") == 1


def test_missing_config_file_and_sweep_dir(tmp_path, capsys):
  assert sweep_lib.main_sweep(["--config", "configs/sweeps/nope.py"]) == 2
  assert "does not exist" in capsys.readouterr().err
  assert sweep_lib.main_report(["--sweep", str(tmp_path / "nope")]) == 2
  err = capsys.readouterr().err
  assert err.startswith("xtjax report: sweep directory") and err.count("\n") == 1


def test_every_group_is_a_valid_run_from_its_intermediate_model(grid):
  _, configs = grid
  for config in configs:
    phases = parse_phases(config)
    order = list(phases)
    start = "intermediate" if "intermediate" in phases else "pretrained"
    assert order[0] == "pretrained"
    assert {p.kind for p in phases.values()} <= set(PHASE_TYPES)
    trains = [n for n in order if phases[n].kind == "train" and n != "intermediate"]
    assert trains == ["xnli", "pawsx", "udpos", "panx", "squad", "tydiqa"]
    for name in trains:
      assert phases[name].init_from == start and list(phases[name].dont_load) == ["heads/.*"]
      assert order.index(name) > order.index(start)
    for target in TARGETS:
      phase = phases[f"eval_{target}"]
      assert phase.task == target
      assert phase.split == "dev"  # the paper's tables: every target on its dev split
      if target in ("bucc2018", "tatoeba"):
        assert phase.kind == "retrieval" and phase.from_phase == start
        assert phase.max_length == 512
      else:
        assert phase.kind == "eval"
        assert phase.from_phase == ("squad" if target in ("xquad", "mlqa") else target)
        assert list(phase.languages) == [l for l in TASK_LANGUAGES["xtreme"][target]
                                         if l in get_task(target).dev_languages]
    assert len(phases["eval_udpos"].languages) == 29 and "th" not in phases["eval_udpos"].languages
    assert len(phases["eval_panx"].languages) == 40
    # jiant's recipes: 256 tokens, batch 32, 500 dev examples every 1000 steps, patience 30;
    # QA targets 384 tokens (training and evaluation) and batch 16.
    assert (config.data.max_length, config.train.batch_size, config.train.patience) == (256, 32, 30)
    assert (config.train.eval_every, config.train.dev_examples) == (1000, 500)
    assert config.optim.lr == 1e-5
    for name in ("squad", "tydiqa"):
      assert phases[name].train.batch_size == 16 and phases[name].data.max_length == 384
    assert phases["eval_xquad"].data.max_length == 384
    epochs = {n: phases[n].train.epochs for n in trains}
    assert epochs == dict(xnli=2, pawsx=5, udpos=10, panx=10, squad=2, tydiqa=2)
    if start == "intermediate":
      assert phases["intermediate"].init_from == "pretrained" and phases["intermediate"].train.epochs == 3


# --- a real sweep at demo scale -------------------------------------------------------------

DEMO = "configs/sweeps/demo.py"
TINY = ["--config.run.demo.languages=('en', 'de')", "--config.run.demo.n_train=192",
        "--config.run.demo.n_dev=24", "--config.run.demo.n_test=24",
        "--config.run.demo.vocab_size=400", "--config.run.demo.hidden_size=32",
        "--config.run.demo.max_positions=64", "--config.run.data.max_length=64",
        "--config.run.train.batch_size=16", "--config.run.train.eval_batch_size=16",
        "--config.run.train.eval_every=6", "--config.run.train.log_every=3",
        "--config.targets.xnli.languages=('en', 'de')",
        "--config.targets.tatoeba.languages=('de',)",
        "--config.targets.bucc2018.languages=('de',)"]


def test_a_failing_setting_does_not_stop_the_others(tmp_path, monkeypatch, capsys):
  ran = []

  def run_all(config, only=None):
    ran.append(config.run_dir.rsplit("/", 1)[-1])
    if ran[-1] == "mnli":
      raise FileNotFoundError("no data")

  monkeypatch.setattr(sweep_lib, "run_all", run_all)
  assert sweep_lib.main_sweep(["--config", DEMO, f"--config.sweep_dir={tmp_path}"]) == 1
  assert ran == [".setup", "none", "mnli", "mnli_half"]
  errors = [l for l in capsys.readouterr().err.splitlines() if l.startswith("xtjax sweep:")]
  assert len(errors) == 1 and errors[0].startswith("xtjax sweep: 1 of 3 groups failed (mnli;")


def _no_training(monkeypatch):
  for kind in runner.PHASES:
    monkeypatch.setitem(runner.PHASES, kind, lambda *a, **k: pytest.fail("a finished phase re-ran"))


@pytest.fixture(scope="module")
def demo_sweep(tmp_path_factory):
  root = tmp_path_factory.mktemp("sweep")
  argv = ["--config", DEMO, f"--config.sweep_dir={root}", *TINY]
  assert sweep_lib.main_sweep([*argv, "--shard", "0/2"]) == 0
  first = sorted(p.name for p in root.iterdir())
  with pytest.MonkeyPatch.context() as mp:  # the assets are generated once, by the first shard
    mp.setattr(demo_assets, "prepare", lambda *a, **k: pytest.fail("assets regenerated"))
    assert sweep_lib.main_sweep([*argv, "--shard", "1/2"]) == 0
  return root, argv, first


@pytest.mark.slow
def test_shards_of_a_demo_sweep_train_their_settings(demo_sweep):
  root, _, first = demo_sweep
  assert first == [".setup", "mnli_half", "none"]
  for name, steps in (("none", None), ("mnli", 12), ("mnli_half", 6)):
    run = Run.from_dir(str(root / name))
    config = json.loads((root / name / "config.json").read_text())
    assert config["model"]["checkpoint"] == f"{root}/.setup/assets/model"
    target = run.result("xnli")
    assert target["loaded_from"]  # started from the setting's own model
    if steps is None:
      assert run.result("intermediate") is None
    else:
      assert run.result("intermediate")["steps"] == steps
    assert set(run.result("eval_xnli")["metrics"]["accuracy"]) == {"en", "de"}
    for task in ("tatoeba", "bucc2018"):  # from the setting's own encoder
      result = run.result(f"eval_{task}")
      assert result["from_phase"] == ("pretrained" if steps is None else "intermediate")
      assert result["languages"] == ["de"]


def test_report_of_the_demo_sweep_has_the_baseline_and_deltas(demo_sweep, capsys):
  root, _, _ = demo_sweep
  assert sweep_lib.main_report(["--sweep", str(root)]) == 0
  out = capsys.readouterr().out
  assert "| none " in out and f"Wrote report.md, report.csv, heatmap.png in {root}" in out
  assert "on the dev split" in out  # the report states the split its scores are on
  assert all((root / f).stat().st_size for f in ("report.md", "report.csv", "heatmap.png"))
  with open(root / "report.csv") as f:
    rows = {(r["intermediate"], r["task"]): r for r in csv.DictReader(f)}
  tasks = ("xnli", "bucc2018", "tatoeba", "avg")
  assert set(rows) == {(s, t) for s in ("none", "mnli", "mnli_half") for t in tasks}
  for task in tasks:
    assert rows["none", task]["delta"] == ""
    for setting in ("mnli", "mnli_half"):
      score, delta = float(rows[setting, task]["score"]), float(rows[setting, task]["delta"])
      assert delta == pytest.approx(score - float(rows["none", task]["score"]), abs=0.011)
  assert "Skipped" not in (root / "report.md").read_text()  # .setup is not a setting


def test_rerunning_a_finished_sweep_does_nothing(demo_sweep, monkeypatch):
  _, argv, _ = demo_sweep
  _no_training(monkeypatch)
  assert sweep_lib.main_sweep(argv) == 0
