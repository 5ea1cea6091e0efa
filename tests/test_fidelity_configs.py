"""The replication configs hold upstream's values: XTREME's scripts for configs/xtreme/targets.py,
jiant's X-STILTs scripts for the Phang et al. sweep and its MNLI -> XNLI cell. Each expected value
below is read off the upstream file and line named beside it, and checked on the phases as the
runner builds them (run settings merged with the phase's)."""

from __future__ import annotations

import pytest

import configs.phang2020.mnli_xnli as mnli_xnli
import configs.sweeps.phang2020 as phang2020
import configs.xtreme.targets as targets
from xtjax import sweep as sweep_lib
from xtjax.phase_config import parse_phases

# google-research/xtreme: (lr base, lr large, warmup, weight decay, epochs, batch, eval_every,
# selection, max_length) per trained phase.
XTREME = {
    "xnli": (2e-5, 3e-5, 0, 0.0, 5.0, 32, 100, "best_dev", 128),  # train_xnli.sh 25-27, 39-47, 67
    "pawsx": (2e-5, 2e-5, 0, 0.0, 5.0, 32, 200, "best_dev", 128),  # train_pawsx.sh 25-27, 62
    "udpos": (2e-5, 2e-5, 0, 0.0, 10.0, 32, 500, "best_dev", 128),  # train_udpos.sh 25-27, 60
    "panx": (2e-5, 2e-5, 0, 0.0, 10.0, 32, 1000, "best_dev", 128),  # train_panx.sh 25-27, 61
    "squad": (3e-5, 3e-5, 500, 1e-4, 3.0, 32, None, "last", 384),  # train_qa.sh 26-31, 68-73
    "tydiqa": (3e-5, 3e-5, 500, 1e-4, 3.0, 32, None, "last", 384),
    "siqa": (2e-5, 3e-5, 0, 0.0, 5.0, 32, None, "last", 128),  # train_xcopa.sh 30, 44-54
    "copa": (2e-5, 3e-5, 0, 0.0, 5.0, 32, None, "last", 128),
}
# (layer, pooling) of BUCC and Tatoeba per size: run_bucc2018.sh 66/75, run_tatoeba.sh 37-41.
RETRIEVAL = {"base": {"bucc2018": (8, "cls"), "tatoeba": (8, "mean")},
             "large": {"bucc2018": (20, "cls"), "tatoeba": (14, "mean")},
             "xl": {"bucc2018": (32, "cls"), "tatoeba": (0, "mean")}}


def phases(config):
  return parse_phases(config)


@pytest.mark.parametrize("size", ["base", "large", "xl"])
def test_xtreme_targets_equal_the_official_scripts(size):
  built = phases(targets.get_config(f"{size},xtreme"))
  built.update(phases(targets.get_config(f"{size},xtreme-r,xcopa")))
  for name, (lr_base, lr_large, warmup, decay, epochs, batch, every, selection,
             length) in XTREME.items():
    p = built[name]
    assert p.optim.lr == (lr_base if size == "base" else lr_large), name
    assert (p.optim.warmup, p.optim.weight_decay, p.optim.eps, p.optim.clip) == (
        warmup, decay, 1e-8, 1.0), name
    assert (p.train.epochs, p.train.batch_size, p.train.selection) == (epochs, batch, selection)
    assert p.data.max_length == length, name
    if every is not None:
      assert p.train.eval_every == every and p.train.dev_examples == 0, name
    assert tuple(p.dont_load) == (() if name == "copa" else ("heads/.*",)), name
  assert dict(built["copa"].head_map) == {"copa": "siqa"}
  for name in ("squad", "tydiqa"):  # run_squad.py 582-588; train_qa.sh 67
    data = built[name].data
    assert (data.doc_stride, data.max_query_length, data.qa_postprocess) == (128, 64, "official")
  for name in ("eval_xquad", "eval_mlqa", "eval_tydiqa"):
    assert (built[name].data.qa_postprocess, built[name].data.max_length) == ("official", 384)
  # run_xcopa.py 303-310: COPA asks "What was the cause/effect?", SocialIQA appends the question.
  assert built["copa"].data.mc_prompt == built["eval_xcopa"].data.mc_prompt == (
      "{premise} What was the {connective}?")
  assert built["siqa"].data.mc_prompt == "{premise} {question}"
  for task, (layer, pooling) in RETRIEVAL[size].items():
    p = built[f"eval_{task}"]
    assert (p.layer, p.pooling, p.include_special, p.max_length) == (layer, pooling, True,
                                                                          512)
    assert p.from_phase == "pretrained"


def test_xtreme_r_tatoeba_reads_the_squad_model_as_run_tatoeba():
  built = phases(targets.get_config("large,xtreme-r,tatoeba"))
  p = built["eval_tatoeba"]
  assert (p.from_phase, p.layer, p.pooling) == ("squad", 14, "mean") and "squad" in built


def test_phang2020_sweep_equals_jiants_scripts():
  configs = {sweep_lib.group_name(c): phases(c) for c in
             sweep_lib.expand(phang2020.get_config("large"))}
  assert "intermediate" not in configs["none"]
  for name in ("mnli", "squad", "multitask"):
    p = configs[name]["intermediate"]
    # Simple API runscript.py 38-61: 3 epochs, 256 tokens, lr 1e-5; no evaluation, last model.
    assert (p.train.epochs, p.train.batch_size, p.train.selection, p.train.patience) == (
        3.0, 32, "last", 0)
    assert (p.optim.lr, p.optim.warmup, p.optim.weight_decay, p.data.max_length) == (
        1e-5, 0.1, 0.01, 256)
  # d_write_configs.sh, c_tokenize_and_cache.sh: (epochs, batch, tokens) per target.
  want = {"xnli": (2.0, 32, 256), "pawsx": (5.0, 32, 256), "udpos": (10.0, 32, 256),
          "panx": (10.0, 32, 256), "squad": (2.0, 16, 384), "tydiqa": (2.0, 16, 384)}
  built = configs["mnli"]
  for name, (epochs, batch, length) in want.items():
    p = built[name]
    assert (p.train.epochs, p.train.batch_size, p.data.max_length) == (epochs, batch, length)
    # e_run_models.sh 15-17, xtreme_runconfig_writer.py 44 and 48: lr 1e-5, 10% warmup, every
    # 1000 steps on 500 dev examples, patience 30, the best model.
    assert (p.optim.lr, p.optim.warmup, p.optim.weight_decay) == (1e-5, 0.1, 0.01)
    assert (p.train.eval_every, p.train.dev_examples, p.train.patience, p.train.selection) == (
        1000, 500, 30, "best_dev")
    assert p.data.dev_task == ("mnli" if name == "xnli" else ""), name
    assert (p.data.doc_stride, p.data.max_query_length, p.data.qa_postprocess) == (
        128, 64, "jiant")
    assert p.init_from == "intermediate" and tuple(p.dont_load) == ("heads/.*",)
  for task in ("bucc2018", "tatoeba"):  # xtreme_runconfig_writer.py 56 and 120-124
    p = built[f"eval_{task}"]
    assert (p.layer, p.pooling, p.include_special, p.max_length) == (0, "mean", True, 512)
    assert p.from_phase == "intermediate"


def test_mnli_xnli_is_the_sweeps_cell():
  built = phases(mnli_xnli.get_config("large"))
  sweep_cell = {sweep_lib.group_name(c): phases(c) for c in
                sweep_lib.expand(phang2020.get_config("large"))}["mnli"]
  for name, cell in (("intermediate", "intermediate"), ("target", "xnli")):
    mine, theirs = built[name], sweep_cell[cell]
    for group in ("optim", "train"):
      assert getattr(mine, group).to_dict() == getattr(theirs, group).to_dict(), (name, group)
    for key in ("max_length", "dev_task", "qa_postprocess"):
      assert mine.data[key] == theirs.data[key], (name, key)
  assert not built["target"].head_map and tuple(built["target"].dont_load) == ("heads/.*",)
