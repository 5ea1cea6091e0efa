"""Every XTREME / XTREME-R target task end to end on upstream-schema fixtures: load, preprocess,
train a few steps (configs/xtreme/targets.py through the CLI), predict every language, write the
leaderboard files, export the gold labels and score them with ``xtjax score``."""

import json

import pytest

from xtjax import cli, scoring
from xtjax.phases.evaluate import evaluate_task
from xtjax.run import Run

pytestmark = pytest.mark.slow  # trains demo-scale models end to end

QA_PHASES = ("squad", "tydiqa")


def overrides(run_dir, hub, model, phases=QA_PHASES):
  flags = [f"--config.run_dir={run_dir}", f"--config.model.checkpoint={model}",
           f"--config.data.hub_mirror={hub}", "--config.model.dtype=float32",
           "--config.data.max_length=64", "--config.data.doc_stride=32",
           "--config.train.steps=2", "--config.train.batch_size=8",
           "--config.train.eval_batch_size=8", "--config.train.eval_every=2",
           "--config.train.log_every=1", "--config.optim.lr=1e-3"]
  evals = [f"eval_{t}" for t in ("xquad", "mlqa", "tydiqa")] if phases else []
  return flags + [f"--config.phases.{p}.data.max_length=64" for p in (*phases, *evals)]


def score_against_export(capsys, run_dir, hub, benchmark, tasks):
  """Scores the evaluator's prediction folder against exported gold labels; returns both."""
  labels = run_dir / f"labels-{benchmark}"
  assert cli.main(["xtjax", "export-labels", "--benchmark", benchmark, "--out", str(labels),
                   "--hub-mirror", hub, "--tasks", ",".join(tasks)]) == 0
  capsys.readouterr()
  assert cli.main(["xtjax", "score", "--predictions", str(run_dir / f"eval-{benchmark}" / "predictions"),
                   "--labels", str(labels), "--benchmark", benchmark]) == 0
  report = json.loads(capsys.readouterr().out)
  results = json.loads((run_dir / f"eval-{benchmark}" / "results.json").read_text())
  return report, {r["task"]: r for r in results}


def check_same_numbers(report, results, benchmark):
  for task, r in results.items():
    assert list(r["languages"]) == scoring.TASK_LANGUAGES[benchmark][task]
    for metric, values in r["metrics"].items():
      assert report[task][metric] == pytest.approx(values, abs=1e-9), (task, metric)
      assert report[task][f"avg_{metric}"] == pytest.approx(r[f"avg_{metric}"])


@pytest.fixture(scope="module")
def xtreme_run(xtreme_assets, tmp_path_factory):
  hub, model = xtreme_assets
  run_dir = tmp_path_factory.mktemp("targets")
  assert cli.main(["xtjax", "train", "--config", "configs/xtreme/targets.py:base,xtreme"]
                  + overrides(run_dir, hub, model)) == 0
  return run_dir


def test_xtreme_tasks_train_predict_and_score(xtreme_run, xtreme_assets, capsys):
  hub, _ = xtreme_assets
  tasks = ["xnli", "pawsx", "udpos", "panx", "xquad", "mlqa", "tydiqa"]
  assert cli.main(["xtjax", "eval", "--checkpoint", str(xtreme_run), "--tasks", ",".join(tasks),
                   "--benchmark", "xtreme"]) == 0
  report, results = score_against_export(capsys, xtreme_run, hub, "xtreme", tasks)
  check_same_numbers(report, results, "xtreme")
  assert report["classification"] == pytest.approx(
      (report["xnli"]["avg_metric"] + report["pawsx"]["avg_metric"]) / 2)
  assert report["qa"] == pytest.approx(sum(report[t]["avg_metric"] for t in ("xquad", "mlqa", "tydiqa")) / 3)
  assert "all_task" not in report  # BUCC and Tatoeba were not evaluated
  for task in ("xquad", "mlqa"):  # both zero-shot from the one SQuAD model
    assert results[task]["from_phase"] == "squad"
  # Every result says how it was computed: UD-POS from the hub is labelled approximate, QA
  # records its answer post-processing (XTREME's get_final_text in targets.py).
  assert "approximate" in results["udpos"]["protocol"]["udpos_source"]
  assert results["xquad"]["protocol"]["qa_postprocess"] == "official"
  # No test example is dropped: a prediction and a gold line for each row of the fixture.
  for task, lang in (("panx", "de"), ("udpos", "el"), ("xquad", "zh"), ("xnli", "fr")):
    gold = scoring.read_labels(task, lang, xtreme_run / "labels-xtreme")
    predicted = scoring.read_predictions(task, lang, xtreme_run / "eval-xtreme" / "predictions")
    assert len(gold) == len(predicted) == results[task]["examples"][lang], (task, lang)
  # Model selection on English dev is recorded with its metric.
  squad = json.loads((xtreme_run / "squad" / "result.json").read_text())
  assert squad["dev_metric"] == {"squad": "f1"} and squad["selected_step"] == 2
  assert squad["data"]["train"]["squad"]["malformed"] == {"answer_start out of range": 1}
  pawsx = json.loads((xtreme_run / "pawsx" / "result.json").read_text())
  assert pawsx["data"]["train"]["pawsx"] == {"rows": 48, "kept": 47,
                                    "malformed": {"label '2' not in ['0', '1']": 1}}
  udpos = json.loads((xtreme_run / "udpos" / "result.json").read_text())
  assert set(udpos["dev"]["udpos"]) == {"f1", "precision", "recall", "accuracy"}


def test_xtreme_r_languages_from_the_same_models(xtreme_run, xtreme_assets, capsys):
  """XTREME-R's added languages (UD v2.7, WikiANN, XQuAD ro) are evaluated by the same models."""
  hub, _ = xtreme_assets
  tasks = ["xnli", "udpos", "panx", "xquad", "mlqa", "tydiqa"]
  assert cli.main(["xtjax", "eval", "--checkpoint", str(xtreme_run), "--tasks", ",".join(tasks),
                   "--benchmark", "xtreme-r"]) == 0
  report, results = score_against_export(capsys, xtreme_run, hub, "xtreme-r", tasks)
  check_same_numbers(report, results, "xtreme-r")
  assert {"lt", "pl", "uk", "wo", "ro"} <= set(report["udpos"]["f1"])
  assert {"qu", "az", "gu", "pa"} <= set(report["panx"]["f1"])


def test_xcopa_through_siqa_and_copa(xtreme_assets, tmp_path, capsys):
  hub, model = xtreme_assets
  assert cli.main(["xtjax", "run", "--config", "configs/xtreme/targets.py:base,xtreme-r,xcopa"]
                  + overrides(tmp_path, hub, model, phases=())) == 0
  copa = json.loads((tmp_path / "copa" / "result.json").read_text())
  assert copa["loaded_from"]["heads/copa/classifier/kernel"] == "heads/siqa/classifier/kernel"
  result = json.loads((tmp_path / "eval_xcopa" / "result.json").read_text())
  assert list(result["metrics"]["accuracy"]) == scoring.TASK_LANGUAGES["xtreme-r"]["xcopa"]
  preds = scoring.read_predictions("xcopa", "qu", tmp_path / "eval_xcopa" / "predictions")
  assert len(preds) == 6 and set(preds) <= {0, 1}
  capsys.readouterr()
  assert cli.main(["xtjax", "export-labels", "--benchmark", "xtreme-r", "--out",
                   str(tmp_path / "gold"), "--hub-mirror", hub, "--tasks", "xcopa"]) == 0
  capsys.readouterr()
  assert cli.main(["xtjax", "score", "--predictions", str(tmp_path / "eval_xcopa" / "predictions"),
                   "--labels", str(tmp_path / "gold"), "--benchmark", "xtreme-r"]) == 0
  report = json.loads(capsys.readouterr().out)
  assert report["xcopa"]["accuracy"] == pytest.approx(result["metrics"]["accuracy"])


def test_eval_checkpoint_errors_are_one_line(xtreme_run, capsys):
  assert cli.main(["xtjax", "eval", "--checkpoint", str(xtreme_run), "--tasks", "xcopa",
                   "--benchmark", "xtreme"]) == 2
  assert "task 'xcopa' is not part of xtreme" in capsys.readouterr().err
  assert cli.main(["xtjax", "eval", "--checkpoint", str(xtreme_run), "--tasks", "xcopa",
                   "--benchmark", "xtreme-r"]) == 2
  err = capsys.readouterr().err
  errors = [l for l in err.splitlines() if l.startswith("xtjax eval:")]  # the rest is the log
  assert len(errors) == 1 and "no phase of" in err and "trains task 'xcopa'" in errors[0]
  assert cli.main(["xtjax", "eval", "--checkpoint", "/nonexistent", "--tasks", "xnli"]) == 2
  assert "config.json is missing" in capsys.readouterr().err


def test_predictions_do_not_depend_on_the_eval_batch_size(xtreme_run):
  run = Run.from_dir(str(xtreme_run))
  cases = (("panx", "panx", "de"), ("xquad", "squad", "zh"), ("xnli", "xnli", "fr"))
  results = {}
  for batch in (8, 24):
    results[batch] = [evaluate_task(run, t, phase, [lang], out_dir=xtreme_run / f"b{batch}",
                                    batch_size=batch)["metrics"] for t, phase, lang in cases]
  assert results[8] == results[24]
  for task, _, lang in cases:
    assert (scoring.read_predictions(task, lang, xtreme_run / "b8" / "predictions")
            == scoring.read_predictions(task, lang, xtreme_run / "b24" / "predictions"))
