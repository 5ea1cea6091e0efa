"""Prefix tuning and few-shot phases in a run: a prefix phase on top of an intermediate model keeps
only prompts and heads in its checkpoints, records its backbone, reloads onto it and predicts
identically; a few-shot phase draws reproducible examples that its evaluations leave out; the
config keys' errors are one line."""

import json
import re

import jax
import numpy as np
import pytest

import configs.demo as demo_config
from xtjax import cli, runner
from xtjax.checkpoint import PhaseCheckpoints
from xtjax.cmdline import parse_config
from xtjax.data import few_shot, pipeline
from xtjax.data.tasks import get_task
from xtjax.phase_config import parse_phases
from xtjax.phases.evaluate import evaluate_task
from xtjax.phases.train import announce
from xtjax.predict import load_task_data
from xtjax.retrieval.encoder import Encoder
from xtjax.run import Run

N_DEV, K = 24, 8


def tiny_config(run_dir):
  c = demo_config.get_config()
  c.run_dir = str(run_dir)
  c.demo.update(languages=("en", "de"), n_train=128, n_dev=N_DEV, n_test=24, vocab_size=400,
                hidden_size=32, max_positions=64)
  c.data.max_length = 64
  c.train.update(batch_size=16, eval_batch_size=16, steps=6, eval_every=3, log_every=2)
  c.phases.zero_shot.languages = ("en", "de")
  c.phases.target.update(tuning="prefix", prefix_length=4)
  c.phases.few = dict(kind="train", task="xnli", init_from="target", tuning="prefix",
                      prefix_length=4, few_shot_k=K, few_shot_languages=("de",),
                      few_shot_seed=3, train=dict(batch_size=8, steps=2, eval_every=2))
  c.phases.few_dev = dict(kind="eval", task="xnli", from_phase="few", split="dev",
                          languages=("de",), setting="k8")
  c.phases.target_dev = dict(kind="eval", task="xnli", from_phase="target", split="dev",
                             languages=("de",))
  return c


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
  config = tiny_config(tmp_path_factory.mktemp("research"))
  return config, runner.run_all(config)


def restore(run, phase, step=None):
  ckpt = PhaseCheckpoints(run.dir / phase / "checkpoints")
  step = step or run.result(phase)["selected_step"]
  shapes = ckpt.param_shapes(step)
  abstract = {k: jax.ShapeDtypeStruct(v.shape, v.dtype) for k, v in shapes.items()}
  params = {k: np.asarray(v) for k, v in ckpt.restore(step, abstract)["params"].items()}
  meta = ckpt.meta(step)
  ckpt.close()
  return params, meta


def test_prefix_checkpoints_hold_prompts_and_heads_and_name_their_backbone(finished):
  config, results = finished
  run = Run(config)
  target = results["target"]
  assert target["tuning"] == "prefix" and results["intermediate"]["tuning"] == "full"
  backbone = {"phase": "intermediate", "step": results["intermediate"]["selected_step"]}
  assert target["backbone"] == backbone
  prompts, head = 4 * 2 * 2 * 32, 32 * 32 + 32 + 32 * 3 + 3  # P x layers x 2 x hidden
  assert target["parameters"]["trainable"] == prompts + head
  assert target["parameters"]["prompts"] == prompts
  for step in (3, 6):
    params, meta = restore(run, "target", step)
    assert sorted(params) == ["encoder/prefix/key_values", "heads/xnli/dense/bias",
                              "heads/xnli/dense/kernel", "heads/xnli/out_proj/bias",
                              "heads/xnli/out_proj/kernel"]
    assert meta["backbone"] == backbone
    moments = list(meta["checksums"]["opt_state"])  # every array of the optimizer state
    assert moments and all(("encoder/prefix/" in m or "heads/xnli/" in m) for m in moments
                           if "count" not in m), moments


def test_the_reported_trainable_fraction_is_the_hand_count(finished, capsys):
  config, results = finished
  encoder = sum(v.size for k, v in restore(Run(config), "intermediate")[0].items()
                if k.startswith("encoder/"))  # the stored backbone arrays
  prompts, head = 4 * 2 * 2 * 32, 32 * 32 + 32 + 32 * 3 + 3  # P x layers x 2 x hidden
  counts = results["target"]["parameters"]
  assert counts == {"total": encoder + prompts + head, "trainable": prompts + head,
                    "encoder": encoder, "prompts": prompts, "heads": head,
                    "fraction": (prompts + head) / (encoder + prompts + head)}
  full = results["intermediate"]["parameters"]
  assert full["trainable"] == full["total"] == encoder + head and full["fraction"] == 1.0
  announce(Run(config).phases["target"], counts)
  assert capsys.readouterr().out == (
      f"phase target (prefix tuning): {prompts + head:,} of {encoder + prompts + head:,} "
      f"parameters trainable ({100 * (prompts + head) / (encoder + prompts + head):.3f}%; "
      f"prompts {prompts:,}, heads {head:,}, encoder {encoder:,})\n")


def test_a_prefix_phase_reloads_onto_its_backbone_and_predicts_identically(finished, tmp_path):
  config, results = finished
  run = Run(config)
  model, shardings = run.model([get_task("xnli")], phase="target")
  assert "encoder/prefix/key_values" in model.shapes()
  params, plan = run.trained_params("target", model, shardings)
  backbone, _ = restore(run, "intermediate")
  own, _ = restore(run, "target")
  for k, v in params.items():
    expected = own[k] if k in own else backbone[k]
    assert np.asarray(v).tobytes() == expected.tobytes(), k
  assert all(plan[k] == k for k in params)
  again = evaluate_task(run, "xnli", "target", ["en", "de"], out_dir=tmp_path)
  assert again["metrics"] == results["zero_shot"]["metrics"]
  for lang in ("en", "de"):
    name = f"predictions/xnli/test-{lang}.tsv"
    assert (tmp_path / name).read_text() == (run.dir / "zero_shot" / name).read_text()
  with pytest.raises(ValueError, match="checkpoint parameters the model lacks: "
                                       r"\['encoder/prefix/key_values'\]"):
    run.trained_params("target", *run.model([get_task("xnli")]))  # a model without prompts


def test_readers_of_a_prefix_phase_include_its_prompts(finished):
  config, _ = finished
  run = Run(config)
  texts = ["Anna has 3 apples .", "Ben keeps 2 red cups ."]
  with_prompts = Encoder(run, "target", [2], max_length=32)(texts)
  backbone = Encoder(run, "intermediate", [2], max_length=32)(texts)
  assert with_prompts.shape == backbone.shape == (2, 1, 32)
  assert not np.allclose(with_prompts, backbone, atol=1e-3)


def test_few_shot_phase_trains_on_drawn_rows_that_its_evaluation_leaves_out(finished):
  config, results = finished
  few = results["few"]
  record = few["few_shot"]
  assert record["task"] == "xnli" and record["k"] == K and record["seed"] == 3
  de = record["languages"]["de"]
  assert de["split"] == "dev" and de["available"] == N_DEV
  assert len(set(de["rows"])) == K and all(0 <= r < N_DEV for r in de["rows"])
  assert few["train_sizes"] == {"xnli": K}
  assert few["backbone"]["phase"] == "intermediate"  # prompts on prompts: the same backbone
  assert few["loaded_from"]["encoder/prefix/key_values"] == "encoder/prefix/key_values"
  assert results["few_dev"]["examples"] == {"de": N_DEV - K}
  assert results["few_dev"]["data"]["de"]["few_shot_excluded"] == K
  assert results["few_dev"]["setting"] == "k8"
  assert results["target_dev"]["examples"] == {"de": N_DEV}  # its model saw none of them
  assert results["zero_shot"]["examples"] == {"en": 24, "de": 24}


def test_few_shot_draws_are_reproducible_and_nested(finished):
  config, results = finished
  run = Run(config)
  task, data = get_task("xnli"), run.data
  rows, record = few_shot.draw(task, "de", K, 3, data)
  assert record == results["few"]["few_shot"]["languages"]["de"]  # the phase's own draw
  again, _ = few_shot.draw(task, "de", K, 3, data)
  assert rows[:] == again[:]
  other = few_shot.draw(task, "de", K, 4, data)[1]["rows"]
  assert other != record["rows"]
  assert few_shot.draw(task, "de", 16, 3, data)[1]["rows"][:K] == record["rows"]  # nested
  dev, _ = pipeline.load_rows(task, "dev", "de", data)
  assert [dev[i]["text_a"] for i in record["rows"]] == rows["text_a"]
  held = few_shot.held_out(task, "dev", "de", [results["few"]["few_shot"]])
  assert held == set(record["rows"])
  assert few_shot.held_out(task, "test", "de", [results["few"]["few_shot"]]) == set()
  kept, _, report = load_task_data(run, task, "dev", "de", data, exclude=held)
  assert len(kept) == N_DEV - K and report["few_shot_excluded"] == K
  with pytest.raises(ValueError, match="fewer than few_shot_k=25"):
    few_shot.draw(task, "de", 25, 3, data)


def test_few_shot_skips_malformed_rows(finished, monkeypatch):
  config, _ = finished
  run = Run(config)
  task = get_task("xnli")
  raw = pipeline.read_source(task, task.few_shot_source("de")[1], "dev", "de", run.data)
  first = few_shot.draw(task, "de", K, 3, run.data)[1]["rows"]
  bad = first[0]
  broken = raw.map(lambda row, i: {**row, "gold_label": "maybe" if i == bad else row["gold_label"]},
                   with_indices=True)
  monkeypatch.setattr(pipeline, "read_source", lambda *a: broken)
  rows = few_shot.draw(task, "de", K, 3, run.data)[1]["rows"]
  assert bad not in rows and rows[:K - 1] == first[1:]


def test_sources_of_few_shot_examples():
  assert get_task("panx").few_shot_source("de")[0] == "train"
  assert get_task("panx").few_shot_source("de")[1].configs == ("PAN-X.de",)
  assert get_task("udpos").few_shot_source("de")[1].split == "train"
  assert get_task("pawsx").few_shot_source("fr")[1].configs == ("PAWS-X.fr",)
  assert get_task("tydiqa").few_shot_source("fi")[1].id_prefix == "finnish-"
  assert get_task("xnli").few_shot_source("de")[0] == "dev"  # no per-language train set
  xquad = get_task("xquad")
  assert xquad.few_shot_source("de")[1] == xquad.source("test", "de")  # left out of the test
  with pytest.raises(ValueError, match="task udpos has no train or dev set in 'th'"):
    get_task("udpos").few_shot_source("th")


def phases_of(**target):
  c = tiny_config("/tmp/unused")
  del c.phases["few"], c.phases["few_dev"]
  c.phases.target.update(target)
  return c


@pytest.mark.parametrize("target,message", [
    (dict(tuning="prefx"), "phase target: unknown tuning 'prefx' (did you mean 'prefix'?)"),
    (dict(prefix_length=-1), "phase target: prefix_length -1 and prefix_hidden_size 512"),
    (dict(few_shot_k=10), "phase target: few_shot_k needs few_shot_languages"),
    (dict(few_shot_k=10, few_shot_languages=("yo",)),
     "phase target: task xnli has no train or dev set in 'yo' to draw few-shot examples from"),
    (dict(few_shot_k=-1), "phase target: few_shot_k -1"),
])
def test_tuning_and_few_shot_errors_are_one_line(target, message):
  with pytest.raises(ValueError, match=re.escape(message)):
    parse_phases(phases_of(**target))


def test_whole_encoder_phases_cannot_start_from_a_prefix_phase():
  c = phases_of()
  c.phases.again = dict(kind="train", task="xnli", init_from="target")
  with pytest.raises(ValueError, match="phase again fine-tunes the whole encoder but starts from "
                                       "prefix phase target"):
    parse_phases(c)


def test_every_train_phase_takes_tuning_on_the_command_line(capsys, tmp_path):
  argv = ["xtjax", "--config", "configs/demo.py", f"--config.run_dir={tmp_path}",
          "--config.phases.target.tuning=prefix", "--config.phases.target.prefix_length=8",
          "--config.phases.target.few_shot_seed=2", "--config.phases.target.optim.lr=5e-3",
          "--config.phases.target.train.batch_size=8"]
  config, _ = parse_config("run", argv, lambda values: None, "configs/demo.py")
  phases = parse_phases(config)
  assert (phases["target"].tuning, phases["target"].prefix_length) == ("prefix", 8)
  assert phases["intermediate"].tuning == "full" and "tuning" not in config.phases.intermediate
  target, intermediate = phases["target"], phases["intermediate"]
  assert (target.optim.lr, target.optim.warmup, target.train.batch_size, target.train.epochs) == \
      (5e-3, 0.1, 8, 1.0)  # the file's epochs kept, the rest from the run's settings
  assert (intermediate.optim.lr, intermediate.train.batch_size) == (1e-3, 32)
  assert cli.main(["xtjax", "run", "--config", "configs/demo.py", f"--config.run_dir={tmp_path}",
                   "--config.phases.target.optim.lrr=1e-3"]) == 2
  assert capsys.readouterr().err == ("xtjax run: phase target: unknown optim key 'lrr' (did you "
                                     "mean 'lr'?)\n")
  assert cli.main(["xtjax", "run", "--config", "configs/demo.py",
                   f"--config.run_dir={tmp_path}", "--config.phases.target.tunning=prefix"]) == 2
  err = capsys.readouterr().err
  assert err.count("\n") == 1 and err.startswith(
      "xtjax run: phase target: unknown key 'tunning' (did you mean 'tuning'?)")
  assert not (tmp_path / "config.json").exists()


def test_the_result_records_what_the_report_reads(finished):
  config, _ = finished
  saved = json.loads((Run(config).dir / "few_dev" / "result.json").read_text())
  assert saved["setting"] == "k8" and saved["task"] == "xnli"
