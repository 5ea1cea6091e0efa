"""The three-phase run end to end on generated data in the upstream schemas, with a tiny model:
phase bridging (dont_load, head_map), skip-if-finished, resume after interruption, clear errors."""

import json
import shutil

import jax
import numpy as np
import pytest

import configs.demo as demo_config
from xtjax import cli, fit, runner
from xtjax.checkpoint import PhaseCheckpoints
from xtjax.data.tasks import XNLI_LANGS, get_task
from xtjax.models.heads import ClassificationHead
from xtjax.phases.demo_assets import prepare
from xtjax.predict import load_task_data
from xtjax.run import Run

pytestmark = pytest.mark.slow  # trains demo-scale models end to end


def tiny_config(run_dir, **train):
  c = demo_config.get_config()
  c.run_dir = str(run_dir)
  c.demo.update(languages=("en", "de"), n_train=128, n_dev=24, n_test=24, vocab_size=400,
                hidden_size=32, max_positions=64)
  c.data.max_length = 64
  c.phases.zero_shot.languages = ("en", "de")
  c.train.update(batch_size=16, eval_batch_size=16, steps=6, eval_every=3, log_every=2, **train)
  return c


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
  config = tiny_config(tmp_path_factory.mktemp("run"))
  results = runner.run_all(config)
  return config, results


def selected_params(config, phase):
  run = Run(config)
  ckpt = PhaseCheckpoints(run.dir / phase / "checkpoints")
  step = run.result(phase)["selected_step"]
  shapes = ckpt.param_shapes(step)
  abstract = {k: jax.ShapeDtypeStruct(v.shape, v.dtype) for k, v in shapes.items()}
  return {k: np.asarray(v) for k, v in ckpt.restore(step, abstract)["params"].items()}


def test_every_phase_finishes_and_writes_its_outputs(finished_run):
  config, results = finished_run
  assert list(results) == ["demo_assets", "pretrained", "intermediate", "target", "zero_shot"]
  zero_shot = results["zero_shot"]
  assert set(zero_shot["metrics"]["accuracy"]) == {"en", "de"}
  assert zero_shot["examples"] == {"en": 24, "de": 24}
  out = Run(config).dir / "zero_shot"
  assert json.loads((out / "results.json").read_text())[0]["metrics"] == zero_shot["metrics"]
  assert "| xnli | accuracy |" in (out / "results.md").read_text()
  preds = (out / "predictions" / "xnli" / "test-de.tsv").read_text().split()
  assert len(preds) == 24 and set(preds) <= {"entailment", "neutral", "contradiction"}
  assert list((Run(config).dir / "target" / "tensorboard").glob("events.out.tfevents*"))
  target = results["target"]
  assert target["selected_step"] in (3, 6)
  assert [h["step"] for h in target["history"]] == [3, 6]


def test_target_starts_from_intermediate_encoder_and_fresh_dont_load_heads(finished_run):
  config, _ = finished_run
  run = Run(config)
  inter = selected_params(config, "intermediate")
  model, shardings = run.model([get_task("xnli")])
  params, plan = run.trained_params("intermediate", model, shardings,
                                    dont_load=["heads/xnli/.*"], fresh_seed=7)
  fresh = run.init_params(model, shardings, 7)
  encoder = [k for k in params if k.startswith("encoder/")]
  assert encoder and all(plan[k] == k for k in encoder)
  for k in encoder:
    np.testing.assert_array_equal(np.asarray(params[k]), inter[k], err_msg=k)
  heads = [k for k in params if k.startswith("heads/")]
  assert heads and all(plan[k] is None for k in heads)
  for k in heads:
    np.testing.assert_array_equal(np.asarray(params[k]), np.asarray(fresh[k]), err_msg=k)
  # With head_map instead, the MNLI head is carried over to XNLI exactly.
  params, _ = run.trained_params("intermediate", model, shardings, head_map={"xnli": "mnli"})
  for k in heads:
    np.testing.assert_array_equal(np.asarray(params[k]), inter[k.replace("xnli", "mnli")])


def test_mismatches_are_errors_naming_the_parameters(finished_run):
  config, _ = finished_run
  run = Run(config)
  model, shardings = run.model([get_task("xnli")])
  with pytest.raises(ValueError, match=r"missing from the checkpoint: \['heads/xnli/dense/bias'"):
    run.trained_params("intermediate", model, shardings)
  model5, shardings5 = run.model_with({"mnli": (ClassificationHead, 5)})
  with pytest.raises(ValueError, match=r"heads/mnli/out_proj/bias: checkpoint \(3,\) vs model \(5,\)"):
    run.trained_params("intermediate", model5, shardings5)


def test_rerunning_a_finished_run_does_nothing(finished_run, monkeypatch):
  config, results = finished_run
  for kind in runner.PHASES:
    monkeypatch.setitem(runner.PHASES, kind, lambda *a, **k: pytest.fail("a finished phase re-ran"))
  assert {k: v.to_json() for k, v in runner.run_all(config).items()} == json.loads(json.dumps(
      {k: v.to_json() for k, v in results.items()}))


def test_interrupted_phase_resumes_to_the_same_result(finished_run, tmp_path, monkeypatch):
  config, results = finished_run
  config = config.copy_and_resolve_references()
  config.run_dir = str(tmp_path)
  src = Run(finished_run[0]).dir
  for phase in ("demo_assets", "pretrained", "intermediate"):
    shutil.copytree(src / phase, tmp_path / phase)
  shutil.copytree(src / "assets", tmp_path / "assets")

  real_flush, calls = fit.flush_metrics, []

  def crash_after_first_eval(pending, step, phase):
    calls.append(step)
    if step == 4:  # the checkpoint of step 3 exists; steps 4.. are lost
      raise KeyboardInterrupt
    return real_flush(pending, step, phase)

  monkeypatch.setattr(fit, "flush_metrics", crash_after_first_eval)
  with pytest.raises(KeyboardInterrupt):
    runner.run_all(config, only=["target"])
  assert Run(config).result("target") is None
  monkeypatch.setattr(fit, "flush_metrics", real_flush)
  resumed = runner.run_all(config, only=["target"])["target"]
  assert resumed["history"] == results["target"]["history"]  # identical dev accuracy per step
  ours, theirs = selected_params(config, "target"), selected_params(finished_run[0], "target")
  for k in theirs:
    np.testing.assert_allclose(ours[k], theirs[k], atol=1e-6, err_msg=k)


def test_nan_loss_stops_with_a_clear_error(finished_run, tmp_path):
  config, _ = finished_run
  with pytest.raises(FloatingPointError, match="phase target: loss is nan by step 2"):
    fit.flush_metrics([{"loss": np.float32("nan"), "count": 1, "correct": 0,
                              "grad_norm": 1.0}] * 2, 2, "target")


def test_cli_errors_are_one_clear_line(capsys, tmp_path):
  assert cli.main(["xtjax", "run", "--config", "configs/demo.py", "--config.optim.lrr=1"]) == 2
  err = capsys.readouterr().err.strip()
  assert "lrr" in err and len(err.splitlines()) == 1
  assert cli.main(["xtjax", "bogus"]) == 2
  assert "unknown command 'bogus'" in capsys.readouterr().err


def test_missing_data_is_a_clear_error(finished_run, tmp_path):
  config = tiny_config(tmp_path)
  config.data.hub_mirror = str(tmp_path / "nowhere")
  run = Run(config)
  with pytest.raises(FileNotFoundError, match="nyu-mll/glue.*does not exist under data.hub_mirror"):
    load_task_data(run, get_task("mnli"), "train", None, run.phases["intermediate"].data)


def test_mnli_xnli_config_through_the_cli(tmp_path, capsys):
  """configs/phang2020/mnli_xnli.py as a user runs it, on hub-layout fixtures of all 15 languages."""
  spec = demo_config.get_config().demo
  spec.update(languages=XNLI_LANGS, n_train=64, n_dev=16, n_test=8, seed=1, vocab_size=500,
              hidden_size=32, num_layers=1, num_heads=2, max_positions=64)
  prepare(tmp_path, spec)
  assets = tmp_path / "assets"
  code = cli.main(["xtjax", "run", "--config", "configs/phang2020/mnli_xnli.py:base",
                   f"--config.run_dir={tmp_path / 'run'}",
                   f"--config.model.checkpoint={assets / 'model'}",
                   f"--config.data.hub_mirror={assets / 'hub'}", "--config.model.dtype=float32",
                   "--config.data.max_length=64", "--config.train.steps=2",
                   "--config.train.batch_size=16", "--config.train.eval_batch_size=16",
                   "--config.optim.lr=1e-4"])
  assert code == 0
  table = capsys.readouterr().out
  assert "| task | metric | " + " | ".join(XNLI_LANGS) + " | avg |" in table
  result = json.loads((tmp_path / "run" / "zero_shot" / "results.json").read_text())[0]
  assert list(result["metrics"]["accuracy"]) == list(XNLI_LANGS)
  assert all(n == 8 for n in result["examples"].values())
  target = json.loads((tmp_path / "run" / "target" / "result.json").read_text())
  # jiant's protocol: the encoder comes from the intermediate phase, the XNLI head is fresh (jiant
  # names it apart from the MNLI head), and the model is selected on MNLI's dev set.
  assert target["loaded_from"]["heads/xnli/out_proj/kernel"] is None
  assert target["loaded_from"]["encoder/layers/0/output/kernel"] == "encoder/layers/0/output/kernel"
  assert target["dev_tasks"] == {"xnli": "mnli"}
  inter = json.loads((tmp_path / "run" / "intermediate" / "result.json").read_text())
  assert inter["selected_step"] == inter["steps_done"]  # the Simple API keeps the last step


def test_early_stopping_counts_evaluations_since_the_best():
  h = lambda *scores: [{"dev_score": s} for s in scores]
  assert fit.stale_evals(h(1.0)) == 0
  assert fit.stale_evals(h(1.0, 3.0, 2.0, 2.5)) == 2
  assert fit.stale_evals(h(3.0, 3.0, 3.0)) == 2  # a tie is no improvement, as jiant
