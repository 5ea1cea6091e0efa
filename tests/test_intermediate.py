"""Intermediate-task training as in the paper: every intermediate task loads from its upstream
schema, and a multi-task phase (three task kinds plus multilingual MLM) feeds two target tasks."""

import json

import numpy as np
import pytest

from xtjax import kinds, runner
from xtjax.config import base_config
from xtjax.data import batches, pipeline, tasks
from xtjax.predict import load_task_data
from xtjax.run import Run

pytestmark = pytest.mark.slow  # trains demo-scale models end to end


def data_config(a, **kw):
  c = base_config().data
  c.update(hub_mirror=a["hub"], ccgbank_dir=a["ccgbank"], mlm_sources=tuple(f"{a['mlm']}/{l}.txt" for l in ("en", "de", "zh")),
           mlm_dev_texts=20, **kw)
  return c


@pytest.mark.parametrize("name", tasks.INTERMEDIATE_TASKS + ("mlm",))
def test_every_intermediate_task_loads(name, intermediate_assets):
  data = data_config(intermediate_assets)
  task = pipeline.resolve(tasks.get_task(name), data)
  rows, report = pipeline.load_rows(task, "train", None, data)
  assert report["kept"] == len(rows) > 0
  if name == "anli_plus":  # SNLI + MNLI + ANLI r1-r3, reported per source
    assert len(report["sources"]) == 5 and report["malformed"] == {
        "label -1 not in ['entailment', 'neutral', 'contradiction']": 1}
    assert len(rows) == 47 + 48 + 3 * 24
  if name == "squad_v2":  # unanswerable questions are valid rows
    assert sum(1 for a in rows["answers"] if not a["text"]) == 16
  if name == "hellaswag":
    assert len(rows[0]["choices"]) == 4 and rows[0]["question"] == ""
  if name == "commonsenseqa":
    assert len(rows[0]["choices"]) == 5
  if name == "ccg":
    assert task.num_labels == 6 and set(rows[0]["tags"]) <= set(range(6))
  if name == "mlm":
    assert len(rows) == 3 * 180
  # Rows become model features of the task's kind (every training example covered).
  c = base_config()
  c.model.checkpoint = intermediate_assets["model"]
  run = Run(c)
  if task.kind == "question_answering":  # windows of 128 tokens leave no room for stride 128
    with pytest.raises(ValueError, match="data.doc_stride 128 leaves no room"):
      load_task_data(run, task, "train", None, data)
    data.doc_stride = 32
  _, features, _ = load_task_data(run, task, "train", None, data)
  assert features["input_ids"].shape[-1] == data.max_length
  assert batches.num_rows(features) >= (1 if name == "mlm" else len(rows))


def test_translate_train_adds_the_translations_to_english(intermediate_assets):
  data = data_config(intermediate_assets)
  rows, report = pipeline.load_rows(tasks.get_task("pawsx_translate_train"), "train", None, data)
  # English (one malformed row reported) plus the hub's machine-translated PAWS-X.<lang> train sets.
  assert len(report["sources"]) == 7 and report["malformed"] == {"label '2' not in ['0', '1']": 1}
  assert len(rows) == 47 + 6 * 48
  xnli_tt = tasks.get_task("xnli_translate_train")
  assert [s.repo for s in xnli_tt.sources("train")][1:] == ["tfds:xnli_translate_train"] * 14
  assert xnli_tt.test == tasks.get_task("xnli").test


def test_ccgbank_missing_is_a_clear_error():
  data = base_config().data
  with pytest.raises(FileNotFoundError, match="LDC2005T13.*data.ccgbank_dir"):
    pipeline.resolve(tasks.get_task("ccg"), data)


def test_task_mixture_follows_the_weights_and_resumes():
  parts = [({"input_ids": np.full((40, 4), i, np.int32), "attention_mask": np.ones((40, 4), np.int32),
             "label": np.zeros(40, np.int32)}, ("input_ids", "attention_mask", "label"), None)
           for i in range(3)]
  it = batches.train_batches(parts, 4, seed=0, weights=[6, 3, 1], num_batches=3000)
  drawn = [int(next(it)["task"]) for _ in range(3000)]
  np.testing.assert_allclose(np.bincount(drawn) / 3000, [0.6, 0.3, 0.1], atol=0.03)
  it = batches.train_batches(parts, 4, seed=0, weights=[6, 3, 1], num_batches=3000)
  for _ in range(10):
    next(it)
  state = it.get_state()
  ahead = [next(it) for _ in range(5)]
  again = batches.train_batches(parts, 4, seed=0, weights=[6, 3, 1], num_batches=3000)
  again.set_state(state)
  for a, b in zip(ahead, [next(again) for _ in range(5)]):
    assert int(a["task"]) == int(b["task"]) and (a["input_ids"] == b["input_ids"]).all()
  assert int(ahead[0]["task"]) == drawn[10]  # batches carry the task drawn for their index


def tiny_run(a, run_dir, **train):
  """A run on the fixture model and data (max length 48) with a pretrained phase."""
  c = base_config()
  c.run_dir = str(run_dir)
  c.model.update(checkpoint=a["model"], dtype="float32")
  c.data = data_config(a, max_length=48, doc_stride=16)
  c.train.update(batch_size=8, eval_batch_size=8, **train)
  c.optim.lr = 1e-3
  c.phases.pretrained = dict(kind="pretrained")
  return c


def test_multitask_intermediate_feeds_two_targets(intermediate_assets, tmp_path):
  c = tiny_run(intermediate_assets, tmp_path, steps=8, eval_every=4, log_every=2)
  c.phases.intermediate = dict(kind="train", tasks=("squad", "hellaswag", "ccg", "mlm"),
                               init_from="pretrained", dont_load=["heads/.*"])
  for target in ("xnli", "udpos"):
    c.phases[target] = dict(kind="train", task=target, init_from="intermediate",
                            dont_load=["heads/.*"], train=dict(steps=2, eval_every=2))
    c.phases[f"eval_{target}"] = dict(kind="eval", task=target, from_phase=target,
                                      languages=("en", "de", "zh"))
  results = runner.run_all(c)
  inter = results["intermediate"]
  assert inter["tasks"] == ["squad", "hellaswag", "ccg", "mlm"]
  assert set(inter["dev"]) == {"squad", "hellaswag", "ccg"}  # MLM takes no part in selection
  assert inter["dev_score"] == pytest.approx(np.mean([inter["dev"]["squad"]["f1"],
                                                      inter["dev"]["hellaswag"]["accuracy"],
                                                      inter["dev"]["ccg"]["accuracy"]]))
  assert set(inter["train_sizes"]) == set(inter["tasks"]) and inter["selected_step"] in (4, 8)
  for k in ("heads/squad/qa_outputs/kernel", "heads/hellaswag/classifier/kernel",
            "heads/ccg/classifier/kernel", "heads/mlm/bias"):
    assert k in inter["loaded_from"] and inter["loaded_from"][k] is None  # fresh heads
  for target in ("xnli", "udpos"):
    plan = results[target]["loaded_from"]
    assert plan["encoder/layers/0/output/kernel"] == "encoder/layers/0/output/kernel"
    assert all(k.startswith(f"heads/{target}/") for k, v in plan.items() if v is None)
    scores = results[f"eval_{target}"]["metrics"]
    assert set(next(iter(scores.values()))) == {"en", "de", "zh"}
  saved = json.loads((tmp_path / "intermediate" / "result.json").read_text())
  assert saved["selected_step"] == inter["selected_step"]


def test_all_nine_intermediate_tasks_train_together(intermediate_assets, tmp_path):
  """The sweep's multitask setting at fixture scale: every head receives updates."""
  # mix_temperature 1e6: near-uniform task draws, so every task is drawn in 40 steps.
  c = tiny_run(intermediate_assets, tmp_path, steps=40, eval_every=40, log_every=10,
               dev_examples=8, mix_temperature=1e6)
  c.phases.multitask = dict(kind="train", tasks=tasks.INTERMEDIATE_TASKS, init_from="pretrained",
                            dont_load=["heads/.*"])
  result = runner.run_all(c)["multitask"]
  assert set(result["dev"]) == set(tasks.INTERMEDIATE_TASKS)
  run = Run(c)
  model, shardings = run.model_with({t: (kinds.get(tasks.get_task(t).kind).head,
                                         len(result["labels"][t])) for t in tasks.INTERMEDIATE_TASKS})
  fresh = run.init_params(model, shardings, c.seed)
  trained, _ = run.trained_params("multitask", model, shardings)
  for t in tasks.INTERMEDIATE_TASKS:
    heads = [k for k in trained if k.startswith(f"heads/{t}/")]
    assert heads and any(not np.allclose(trained[k], fresh[k]) for k in heads), t
