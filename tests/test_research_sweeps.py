"""The research sweeps (prefix vs fine-tuning, multilingual intermediate data, scaling, few-shot):
their grids and recipes, and their reports (per-language tables with the transfer gap, gains over
each row's baseline, merged few-shot rows, gain against parameter count)."""

from __future__ import annotations

import csv
import json
import math

import pytest
from matplotlib import image

import configs.sweeps.few_shot as few_shot
import configs.sweeps.multilingual_intermediate as multilingual
import configs.sweeps.phang2020 as phang2020
import configs.sweeps.prompt_vs_finetune as prompt_vs_finetune
import configs.sweeps.scaling as scaling
from xtjax import report, sweep as sweep_lib
from xtjax.config import MODELS
from xtjax.scaling import preset_parameters, write_scaling
from xtjax.scoring import TASK_LANGUAGES


def phases(config, group: str) -> dict:
  return next(c for c in sweep_lib.expand(config) if c.run_dir.endswith(f"/{group}")).phases


def test_prompt_vs_finetune_runs_each_target_both_ways_from_each_model():
  config = prompt_vs_finetune.get_config("large")
  runs = sweep_lib.runs(config)
  assert len(runs) == 20 and {r.setting for r in runs} == {"full", "prefix"}
  grid = phang2020.get_config("large")
  for group in ("none", "mnli"):
    p = phases(config, group)
    start = "intermediate" if group == "mnli" else "pretrained"
    for target in prompt_vs_finetune.TARGETS:
      trained = "squad" if target == "xquad" else target
      full, prefix = p[f"{trained}_full"], p[f"{trained}_prefix"]
      assert full.init_from == prefix.init_from == start
      assert "tuning" not in full and full.train.to_dict() == grid.targets[target].train.to_dict()
      assert prefix.tuning == "prefix"
      assert prefix.optim.warmup == 0 and prefix.optim.weight_decay == 0.0
      assert p[f"eval_{target}_prefix"].setting == "prefix"
      assert p[f"eval_{target}_full"].from_phase == f"{trained}_full"
  p = phases(config, "mnli")
  xnli, squad, udpos = p.xnli_prefix, p.squad_prefix, p.udpos_prefix
  assert (xnli.prefix_length, xnli.optim.lr, xnli.train.batch_size, xnli.train.epochs,
          xnli.data.max_length, xnli.data.dev_task) == (32, 1e-3, 16, 30.0, 128, "mnli")
  assert xnli.train.eval_every == math.ceil(392_702 / 16)  # one epoch
  assert (squad.prefix_length, squad.optim.lr, squad.train.batch_size, squad.data.max_length) == \
      (16, 5e-3, 8, 384)
  assert (udpos.optim.lr, udpos.train.batch_size, udpos.data.max_length) == (1e-2, 16, 152)
  assert config.report.baseline == "none/full"


def test_multilingual_intermediate_pairs_each_translated_task_with_its_english_original():
  config = multilingual.get_config("large")
  assert list(config.intermediates) == ["none", "mnli", "squad", "pawsx", "mnli_translated",
                                        "squad_translated", "pawsx_translated", "mnli_mlm"]
  assert len(sweep_lib.runs(config)) == 8 * 7
  settings = config.intermediates
  assert settings.mnli_translated.task == "xnli_translate_train"
  assert settings.mnli_translated.train.epochs == pytest.approx(3.0 / 15)  # 3 MNLI epochs' worth
  assert settings.squad_translated.train.epochs == pytest.approx(3.0 / 11)
  assert settings.pawsx_translated.train.epochs == pytest.approx(3.0 / 7)
  assert tuple(settings.mnli_mlm.tasks) == ("mnli", "mlm")
  assert len(config.run.data.mlm_sources) == len(TASK_LANGUAGES["xtreme-r"]["tatoeba"]) + 1
  p = phases(config, "mnli_translated")
  assert tuple(p.eval_udpos.languages) == tuple(
      l for l in TASK_LANGUAGES["xtreme-r"]["udpos"] if l not in ("kk", "th", "tl", "yo", "lt",
                                                                 "pl", "ro", "uk", "wo"))
  assert config.report.baselines.to_dict() == {"mnli_translated": "mnli", "mnli_mlm": "mnli",
                                                "squad_translated": "squad",
                                                "pawsx_translated": "pawsx"}


@pytest.mark.parametrize("size", ["base", "large", "xl", "xxl"])
def test_scaling_sweeps_share_one_grid(size):
  config = scaling.get_config(size)
  assert config.run.model.checkpoint == MODELS[size]
  assert list(config.intermediates) == list(scaling.INTERMEDIATES)
  large = scaling.get_config("large")
  assert [r.describe().replace(size, "") for r in sweep_lib.runs(config)] == \
      [r.describe().replace("large", "") for r in sweep_lib.runs(large)]
  assert len(sweep_lib.runs(config)) == 4 * 9


def test_dry_runs_list_the_runs(capsys):
  for name, arg, count in (("prompt_vs_finetune", "large", 20),
                           ("multilingual_intermediate", "large", 56),
                           ("scaling", "xxl,fsdp", 36), ("few_shot", "large", None)):
    assert sweep_lib.main_sweep(["--config", f"configs/sweeps/{name}.py:{arg}", "--dry-run"]) == 0
    out = capsys.readouterr().out
    if count:
      assert f"\n{count} runs in " in out
  assert "none/xnli [k10]: phases pretrained -> xnli -> xnli_k10_ar -> eval_xnli_k10_ar" in out


def test_few_shot_phases_continue_each_target_model_per_language():
  config = few_shot.get_config("large")
  p = phases(config, "mnli")
  assert p.eval_xnli.setting == "k0" and p.eval_xnli.split == "test"
  for task, languages in few_shot.LANGUAGES.items():
    for k in few_shot.K:
      for lang in languages:
        phase = p[f"{task}_k{k}_{lang}"]
        assert phase.init_from == task and phase.few_shot_k == k
        assert tuple(phase.few_shot_languages) == (lang,) and phase.few_shot_seed == 0
        assert phase.train.batch_size == min(32 if task != "tydiqa" else 16, k)
        assert phase.train.selection == "last" and phase.train.epochs == 50.0
        evaluation = p[f"eval_{task}_k{k}_{lang}"]
        assert tuple(evaluation.languages) == (lang,) and evaluation.setting == f"k{k}"
  assert len(sweep_lib.runs(config)) == 2 * (4 + 3 * sum(map(len, few_shot.LANGUAGES.values())))
  assert config.report.baselines["mnli/k100"] == "mnli/k0"
  demo = few_shot.get_config("demo")
  assert [r.phases[-1] for r in sweep_lib.runs(demo)][:3] == ["eval_xnli", "eval_xnli_k10_de",
                                                              "eval_xnli_k10_ar"]


def test_variant_and_few_shot_keys_are_checked():
  config = prompt_vs_finetune.get_config("demo")
  config.variants.prefix.prefix_lenght = 3
  with pytest.raises(ValueError, match=r"variant prefix: unknown key\(s\) \['prefix_lenght'\]"):
    sweep_lib.expand(config)
  config = few_shot.get_config("demo")
  config.few_shot.kk = 3
  with pytest.raises(ValueError, match=r"few_shot: unknown key\(s\) \['kk'\]"):
    sweep_lib.expand(config)
  config = few_shot.get_config("demo")
  config.targets.tatoeba = dict(kind="retrieval", languages=("de",))
  with pytest.raises(ValueError, match="retrieval targets read the intermediate encoder"):
    sweep_lib.expand(config)


def write(folder, task: str, scores: dict[str, float], setting: str = "", metric="accuracy"):
  folder.mkdir(parents=True)
  (folder / "result.json").write_text(json.dumps(
      {"task": task, "setting": setting, "split": "dev", "languages": list(scores),
       "metrics": {metric: scores}, f"avg_{metric}": sum(scores.values()) / len(scores)}))


@pytest.fixture
def variant_sweep(tmp_path):
  """none and mnli, each fine-tuned and prefix-tuned; few-shot rows in two languages."""
  root = tmp_path / "sweep"
  write(root / "none" / "eval_xnli_full", "xnli", {"en": 80.0, "de": 70.0, "ar": 60.0}, "full")
  write(root / "none" / "eval_xnli_prefix", "xnli", {"en": 78.0, "de": 74.0, "ar": 70.0},
        "prefix")
  write(root / "mnli" / "eval_xnli_full", "xnli", {"en": 84.0, "de": 76.0, "ar": 62.0}, "full")
  write(root / "mnli" / "eval_xnli_prefix", "xnli", {"en": 83.0, "de": 79.0, "ar": 75.0},
        "prefix")
  (root / report.REPORT_SPEC).write_text(json.dumps(
      {"baseline": "none/full", "baselines": {"mnli/prefix": "none/prefix"}}))
  return root


def md_rows(text: str) -> list[list[str]]:
  return [[c.strip() for c in line.strip("|").split("|")] for line in text.splitlines()
          if line.startswith("|")]


def test_per_language_report_puts_tuning_modes_side_by_side_with_the_gap(variant_sweep):
  out = report.write_report(variant_sweep)
  t = out["language_tables"]["xnli"]
  assert t.tasks == ["en", "de", "ar"] and t.columns == ["en", "de", "ar", "avg", "gap"]
  rows = {r.intermediate: r for r in t.rows}
  assert [r.intermediate for r in t.rows] == ["none/full", "none/prefix", "mnli/full",
                                              "mnli/prefix"]
  assert rows["none/full"].scores["gap"] == pytest.approx(80 - 65)  # en - mean(de, ar)
  assert rows["none/prefix"].scores["gap"] == pytest.approx(78 - 72)
  assert rows["none/prefix"].deltas["gap"] == pytest.approx(6 - 15)
  assert rows["mnli/full"].deltas["de"] == pytest.approx(6.0) and rows["mnli/full"].versus is None
  # mnli/prefix against none/prefix, as the spec says: the intermediate task's gain under prefix
  assert rows["mnli/prefix"].versus == "none/prefix"
  assert rows["mnli/prefix"].deltas == pytest.approx(
      {"en": 5.0, "de": 5.0, "ar": 5.0, "avg": 5.0, "gap": 0.0})
  text = out["languages"].read_text()
  table = md_rows(text)
  assert table[0] == ["row", "en", "de", "ar", "avg", "gap"]
  assert table[4] == ["mnli/full", "84.0 (+4.0)", "76.0 (+6.0)", "62.0 (+2.0)", "74.0 (+4.0)",
                      "15.0 (+0.0)"]
  assert table[5][0] == "mnli/prefix (vs none/prefix)"
  assert "gap: en minus the mean of the other languages" in text
  with open(out["languages_csv"], newline="") as f:
    cells = {(r["row"], r["language"]): r for r in csv.DictReader(f)}
  assert cells["mnli/prefix", "de"]["versus"] == "none/prefix"
  assert cells["mnli/prefix", "de"]["delta"] == "5.00"
  assert cells["none/full", "gap"]["score"] == "15.00"
  pixels = image.imread(out["language_heatmaps"][0])
  assert out["language_heatmaps"][0].name == "languages_xnli.png" and pixels.std() > 0
  assert "Wrote languages.md, languages.csv, languages_xnli.png" in out["summary"]
  paper = md_rows(out["markdown"].read_text())
  assert paper[2][0] == "none/full" and {r[0] for r in paper[3:]} == {
      "mnli/full", "none/prefix", "mnli/prefix (vs none/prefix)"}


def test_tasks_without_english_have_no_gap_column(variant_sweep):
  for row, scores in (("none", {"de": 60.0, "fr": 50.0}), ("mnli", {"de": 70.0, "fr": 52.0})):
    write(variant_sweep / row / "eval_tatoeba_full", "tatoeba", scores, "full")
  out = report.write_report(variant_sweep)
  t = out["language_tables"]["tatoeba"]
  assert t.gap is None and t.columns == ["de", "fr", "avg"]
  assert t.rows[1].deltas == {"de": 10.0, "fr": 2.0, "avg": 6.0}
  tatoeba = out["languages"].read_text().split("## tatoeba")[1]
  assert "gap" not in tatoeba and md_rows(tatoeba)[0] == ["row", "de", "fr", "avg"]
  assert out["language_tables"]["xnli"].gap == "en"


def test_few_shot_rows_merge_their_languages(tmp_path):
  root = tmp_path / "sweep"
  write(root / "none" / "eval_xnli", "xnli", {"en": 80.0, "de": 70.0, "ar": 60.0}, "k0")
  write(root / "none" / "eval_xnli_k10_de", "xnli", {"de": 73.0}, "k10")
  write(root / "none" / "eval_xnli_k10_ar", "xnli", {"ar": 66.0}, "k10")
  write(root / "none" / "eval_xnli_k100_de", "xnli", {"de": 75.0}, "k100")
  write(root / "none" / "eval_xnli_k100_ar", "xnli", {"ar": 69.0}, "k100")
  scores, skipped, _ = report.collect(root)
  assert scores == {"none/k0": {"xnli": 70.0}, "none/k10": {"xnli": 69.5},
                    "none/k100": {"xnli": 72.0}} and not skipped
  out = report.write_report(root, baseline="none/k0")
  t = out["language_tables"]["xnli"]
  assert [r.intermediate for r in t.rows] == ["none/k0", "none/k10", "none/k100"]
  assert t.avg_tasks == ["de", "ar"] and t.avg_header == "avg (2/3)"
  k10 = t.rows[1]
  assert k10.scores["en"] is None and t.gap is None and "gap" not in t.columns  # no en in k10
  assert k10.deltas == {"en": None, "de": 3.0, "ar": 6.0, "avg": 4.5}
  write(root / "none" / "eval_xnli_k10_de_again", "xnli", {"de": 1.0}, "k10")
  with pytest.raises(ValueError, match="is a second xnli result in none/k10"):
    report.collect(root)


def test_row_baselines_that_name_missing_rows_are_errors(variant_sweep):
  scores = report.collect(variant_sweep)[0]
  with pytest.raises(ValueError, match="baseline 'mnli/k0' has no finished evaluation"):
    report.table(scores, "none/full", baselines={"mnli/full": "mnli/k0"})


def test_write_spec_records_the_report_baselines(tmp_path):
  config = few_shot.get_config("demo")
  config.sweep_dir = str(tmp_path / "s")
  sweep_lib.write_spec(config)
  spec = json.loads((tmp_path / "s" / report.REPORT_SPEC).read_text())
  assert spec == {"baseline": "none/k0", "baselines": {"none/k10": "none/k0",
                                                       "none/k50": "none/k0",
                                                       "none/k200": "none/k0"}}
  assert report.read_spec(tmp_path / "s") == spec


def scaling_sweep(root, encoder: int | None, gains: dict[str, float], checkpoint="local/model"):
  for task, gain in gains.items():
    write(root / "none" / f"eval_{task}", task, {"en": 70.0, "de": 60.0})
    write(root / "mnli" / f"eval_{task}", task, {"en": 70.0 + gain, "de": 60.0 + gain})
  (root / "none" / "config.json").write_text(json.dumps({"model": {"checkpoint": checkpoint}}))
  if encoder:
    (root / "none" / "xnli").mkdir()
    (root / "none" / "xnli" / "result.json").write_text(json.dumps(
        {"phase": "xnli", "parameters": {"encoder": encoder, "total": encoder + 99}}))


def test_scaling_report_plots_gain_against_parameters(tmp_path, capsys):
  scaling_sweep(tmp_path / "big", 2_000_000, {"xnli": 4.0, "udpos": 2.0})
  scaling_sweep(tmp_path / "small", 500_000, {"xnli": 1.0, "udpos": -1.0})
  scaling_sweep(tmp_path / "base", None, {"xnli": 0.5, "udpos": 0.5}, "FacebookAI/xlm-roberta-base")
  dirs = [str(tmp_path / n) for n in ("big", "base", "small")]
  assert sweep_lib.main_report(["--scaling", *dirs, "--out", str(tmp_path / "out")]) == 0
  out = capsys.readouterr().out
  assert "| small | 0.5M | +1.0 (66.0) | -1.0 (64.0) | +0.0 (65.0) |" in out
  assert "| big | 2.0M | +4.0 (69.0) | +2.0 (67.0) | +3.0 (68.0) |" in out
  assert "| base | 277.5M |" in out  # the preset's count: no train phase recorded one
  assert preset_parameters("FacebookAI/xlm-roberta-base") == 277_453_056
  with open(tmp_path / "out" / "scaling.csv", newline="") as f:
    rows = list(csv.DictReader(f))
  assert [r["sweep"] for r in rows if r["task"] == "avg"] == ["small", "big", "base"]
  big = next(r for r in rows if r["sweep"] == "big" and r["task"] == "xnli")
  assert big == {"sweep": "big", "parameters": "2000000", "setting": "mnli", "task": "xnli",
                 "score": "69.00", "baseline": "65.00", "gain": "4.00"}
  pixels = image.imread(tmp_path / "out" / "scaling.png")
  assert pixels.std() > 0
  result = write_scaling(dirs[:2])
  assert result["plot"] == tmp_path / "scaling.png"
  with pytest.raises(ValueError, match="give two or more DIRs"):
    write_scaling(dirs[:1])
  with pytest.raises(SystemExit):  # argparse: --sweep or --scaling, not both
    sweep_lib.main_report(["--scaling", dirs[0], "--sweep", dirs[1]])
