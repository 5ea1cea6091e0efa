"""Typed phase configs: built from the config in one place, every mistake a one-line error naming
the phase and the closest valid key, raised before anything runs."""

import re

import pytest

import configs.demo as demo_config
from xtjax import cli
from xtjax.phase_config import EvalPhase, TrainPhase, parse_phases


def demo():
  c = demo_config.get_config()
  c.run_dir = "/tmp/xtjax-never-written"
  return c


def test_phases_are_typed_with_their_settings_merged():
  phases = parse_phases(demo())
  assert list(phases) == ["demo_assets", "pretrained", "intermediate", "target", "zero_shot"]
  target = phases["target"]
  assert isinstance(target, TrainPhase) and target.task_names == ("xnli",)
  assert target.train.epochs == 1.0 and target.train.batch_size == 32  # override, run setting
  assert target.data.hub_mirror == "/tmp/xtjax-never-written/assets/hub"  # {run_dir} resolved
  zero_shot = phases["zero_shot"]
  assert isinstance(zero_shot, EvalPhase) and zero_shot.deps == ("target",)
  with pytest.raises(Exception):  # frozen
    target.task = "pawsx"


@pytest.mark.parametrize("phase, key, value, message", [
    ("zero_shot", "langauges", ("en",), "phase zero_shot: unknown key 'langauges' (did you mean "
                                        "'languages'?)"),
    ("target", "head_mapp", {}, "phase target: unknown key 'head_mapp' (did you mean 'head_map'?)"),
    ("target", "train", dict(epoch=2.0), "phase target: unknown train key 'epoch' (did you mean "
                                         "'epochs'?)"),
    ("intermediate", "data", dict(lower_case=True), "phase intermediate: unknown data key "
                                                    "'lower_case'"),
    ("zero_shot", "task", "xnlii", "phase zero_shot: unknown task 'xnlii'"),
    ("zero_shot", "languages", ("en", "xx"), "phase zero_shot: unknown language(s) ['xx']"),
    ("target", "init_from", "intermedate", "phase target depends on unknown phase 'intermedate' "
                                           "(did you mean 'intermediate'?)"),
    ("target", "kind", "trian", "phase target: unknown kind 'trian' (did you mean 'train'?)"),
])
def test_mistakes_are_one_line_errors_before_anything_runs(phase, key, value, message):
  c = demo()
  c.phases[phase][key] = value
  with pytest.raises(ValueError, match=re.escape(message)):
    parse_phases(c)


def test_a_misspelt_late_phase_key_stops_the_cli_before_training(tmp_path, capsys):
  config = tmp_path / "typo.py"
  config.write_text("from configs.demo import get_config as demo\n\n\n"
                    "def get_config(arg=''):\n  c = demo()\n"
                    "  c.phases.zero_shot['langauges'] = ('en',)\n  return c\n")
  run_dir = tmp_path / "run"
  code = cli.main(["xtjax", "run", "--config", str(config), f"--config.run_dir={run_dir}"])
  err = capsys.readouterr().err
  assert code == 2 and len(err.strip().splitlines()) == 1
  assert "phase zero_shot: unknown key 'langauges' (did you mean 'languages'?)" in err
  assert not run_dir.exists()  # nothing ran: not even the demo assets


def test_task_data_names_trained_tasks_and_data_keys():
  c = demo()
  c.phases.intermediate.task_data = dict(xnli=dict(max_length=64))
  with pytest.raises(ValueError, match="task_data names 'xnli', which the phase does not train"):
    parse_phases(c)
  c.phases.intermediate.task_data = dict(mnli=dict(max_lenght=64))
  with pytest.raises(ValueError, match="unknown data key 'max_lenght' .did you mean 'max_length'"):
    parse_phases(c)
