"""The sweep report (table, markdown, CSV, heatmap) on a hand-made sweep directory."""

from __future__ import annotations

import csv
import json

import pytest
from matplotlib import image

from xtjax import report

# Per intermediate, per task: the avg_<metric> values its result.json holds. Scores, by hand:
#   none:  xnli 70.0, udpos 80.0 (F1, not token accuracy), tatoeba 50.0, xquad (50+70)/2 = 60.0
#          avg (70+80+50+60)/4 = 65.0
#   mnli:  75.0 (+5), 79.0 (-1), 56.0 (+6), (55+71)/2 = 63.0 (+3); avg 273/4 = 68.25 (+3.25)
#   squad: 71.0 (+1), 80.5 (+0.5), 49.0 (-1), (66+80)/2 = 73.0 (+13); avg 273.5/4 = 68.375 (+3.375)
SWEEP = {
    "none": {"xnli": {"accuracy": 70.0}, "udpos": {"f1": 80.0, "accuracy": 90.0},
             "tatoeba": {"accuracy": 50.0}, "xquad": {"exact_match": 50.0, "f1": 70.0}},
    "mnli": {"xnli": {"accuracy": 75.0}, "udpos": {"f1": 79.0, "accuracy": 91.0},
             "tatoeba": {"accuracy": 56.0}, "xquad": {"exact_match": 55.0, "f1": 71.0}},
    "squad": {"xnli": {"accuracy": 71.0}, "udpos": {"f1": 80.5, "accuracy": 92.0},
              "tatoeba": {"accuracy": 49.0}, "xquad": {"exact_match": 66.0, "f1": 80.0}},
}
SCORES = {"none": {"xnli": 70.0, "udpos": 80.0, "tatoeba": 50.0, "xquad": 60.0},
          "mnli": {"xnli": 75.0, "udpos": 79.0, "tatoeba": 56.0, "xquad": 63.0},
          "squad": {"xnli": 71.0, "udpos": 80.5, "tatoeba": 49.0, "xquad": 73.0}}


def write_result(folder, task: str, avgs: dict[str, float]) -> None:
  """result.json as evaluate_task writes it: two languages around each average."""
  metrics = {m: {"en": v + 1.0, "de": v - 1.0} for m, v in avgs.items()}
  folder.mkdir(parents=True)
  (folder / "result.json").write_text(json.dumps(
      {"task": task, "languages": ["en", "de"], "metrics": metrics,
       **{f"avg_{m}": v for m, v in avgs.items()}}))


@pytest.fixture
def sweep(tmp_path):
  root = tmp_path / "sweep"
  for intermediate, tasks in SWEEP.items():
    for task, avgs in tasks.items():
      write_result(root / intermediate / f"eval_{task}", task, avgs)
  return root


def md_rows(text: str) -> list[list[str]]:
  return [[c.strip() for c in line.strip("|").split("|")] for line in text.splitlines()
          if line.startswith("|")]


def test_collect_scores_qa_as_mean_of_em_and_f1(sweep):
  scores, skipped, _ = report.collect(sweep)
  assert scores == SCORES
  assert skipped == []


def test_table_order_averages_and_deltas(sweep):
  t = report.table(report.collect(sweep)[0])
  assert t.columns == ["xnli", "udpos", "tatoeba", "xquad", "avg"]  # the scorer's XTREME order
  assert t.avg_tasks == t.tasks and t.avg_header == "avg"
  assert [r.intermediate for r in t.rows] == ["none", "squad", "mnli"]  # best avg first
  none, squad, mnli = t.rows
  assert none.deltas is None
  assert none.scores == {**SCORES["none"], "avg": pytest.approx(65.0)}
  assert mnli.scores["avg"] == pytest.approx(68.25)
  assert squad.scores["avg"] == pytest.approx(68.375)
  assert mnli.deltas == pytest.approx({"xnli": 5.0, "udpos": -1.0, "tatoeba": 6.0, "xquad": 3.0,
                                       "avg": 3.25})
  assert squad.deltas == pytest.approx({"xnli": 1.0, "udpos": 0.5, "tatoeba": -1.0, "xquad": 13.0,
                                        "avg": 3.375})
  t = report.table(SCORES, baseline="mnli", tasks=["xquad", "xnli"])
  assert t.columns == ["xnli", "xquad", "avg"]
  assert [r.intermediate for r in t.rows] == ["mnli", "squad", "none"]
  # squad avg (71+73)/2 = 72 vs mnli (75+63)/2 = 69
  assert t.rows[1].deltas == pytest.approx({"xnli": -4.0, "xquad": 10.0, "avg": 3.0})


def test_write_report(sweep, tmp_path):
  out = report.write_report(sweep, tmp_path / "out")
  assert {out[k].name for k in ("markdown", "csv", "heatmap")} == {"report.md", "report.csv",
                                                                    "heatmap.png"}
  text = out["markdown"].read_text()
  assert "avg: mean over all 4 tasks." in text and "delta vs none" in text
  assert md_rows(text) == [
      ["intermediate", "xnli", "udpos", "tatoeba", "xquad", "avg"],
      ["------------"] + [md_rows(text)[1][i] for i in range(1, 6)],
      ["none", "70.0", "80.0", "50.0", "60.0", "65.0"],
      ["squad", "71.0 (+1.0)", "80.5 (+0.5)", "49.0 (-1.0)", "73.0 (+13.0)", "68.4 (+3.4)"],
      ["mnli", "75.0 (+5.0)", "79.0 (-1.0)", "56.0 (+6.0)", "63.0 (+3.0)", "68.2 (+3.2)"]]
  assert all(c.strip("-") == ":" for c in md_rows(text)[1][1:])  # numbers right-aligned
  assert "Missing" not in text and "Skipped" not in text
  assert out["summary"].startswith(text) and "heatmap.png" in out["summary"]

  with open(out["csv"], newline="") as f:
    rows = list(csv.DictReader(f))
  assert len(rows) == 3 * 5
  assert rows[0] == {"intermediate": "none", "task": "xnli", "score": "70.00", "delta": ""}
  cells = {(r["intermediate"], r["task"]): (r["score"], r["delta"]) for r in rows}
  assert cells["squad", "xquad"] == ("73.00", "13.00")
  assert cells["mnli", "udpos"] == ("79.00", "-1.00")
  assert cells["mnli", "avg"] == ("68.25", "3.25")
  assert cells["none", "avg"] == ("65.00", "")

  png = out["heatmap"].read_bytes()
  assert png[:8] == b"\x89PNG\r\n\x1a\n"
  pixels = image.imread(out["heatmap"])
  height, width = pixels.shape[:2]
  assert 0 < height < width  # 3 rows by 5 columns, wider than tall
  assert pixels.std() > 0  # not blank


def test_default_out_dir_is_the_sweep(sweep):
  out = report.write_report(sweep)
  assert all((sweep / name).is_file() for name in ("report.md", "report.csv", "heatmap.png"))
  assert out["markdown"] == sweep / "report.md"


def test_missing_results_are_reported_not_zero(sweep, tmp_path):
  (sweep / "squad" / "eval_tatoeba" / "result.json").unlink()  # evaluation still running
  (sweep / "hellaswag").mkdir()  # training still running
  write_result(sweep / "mnli" / "eval_mnli_dev", "mnli", {"accuracy": 84.0})  # not XTREME
  (sweep / "none" / "eval_pawsx").mkdir()
  (sweep / "none" / "eval_pawsx" / "result.json").write_text('{"task": "pawsx", "metr')

  scores, skipped, _ = report.collect(sweep)
  assert "tatoeba" not in scores["squad"] and "hellaswag" not in scores
  assert skipped[0] == "hellaswag: no eval_<task> folder yet (unfinished)"
  assert skipped[1] == "mnli/eval_mnli_dev: mnli is not an XTREME task, so it has no score"
  assert skipped[2].startswith("none/eval_pawsx: result.json is not readable JSON")
  assert skipped[3] == "squad/eval_tatoeba: no result.json (unfinished)"
  assert len(skipped) == 4

  t = report.table(scores)
  assert t.avg_tasks == ["xnli", "udpos", "xquad"] and t.avg_header == "avg (3/4)"
  assert t.missing() == ["squad/tatoeba"]
  rows = {r.intermediate: r for r in t.rows}
  assert rows["none"].scores["avg"] == pytest.approx(70.0)  # (70+80+60)/3
  assert rows["squad"].scores["avg"] == pytest.approx(224.5 / 3)  # (71+80.5+73)/3
  assert rows["squad"].scores["tatoeba"] is None and rows["squad"].deltas["tatoeba"] is None
  assert rows["squad"].deltas["avg"] == pytest.approx(224.5 / 3 - 70.0)
  assert [r.intermediate for r in t.rows] == ["none", "squad", "mnli"]  # 74.83 > 72.33

  out = report.write_report(sweep, tmp_path / "out")
  text = out["markdown"].read_text()
  assert ("avg: mean over xnli, udpos, xquad only, the tasks every row has (missing for some row: "
          "tatoeba).") in text
  assert md_rows(text)[0][-1] == "avg (3/4)"
  assert md_rows(text)[3][:4] == ["squad", "71.0 (+1.0)", "80.5 (+0.5)", "n/a"]
  assert "Missing results (shown n/a, not counted as 0): squad/tatoeba." in text
  assert "- squad/eval_tatoeba: no result.json (unfinished)" in text
  with open(out["csv"], newline="") as f:
    cells = {(r["intermediate"], r["task"]): (r["score"], r["delta"]) for r in csv.DictReader(f)}
  assert cells["squad", "tatoeba"] == ("", "")
  assert out["heatmap"].stat().st_size > 0


def test_errors(sweep, tmp_path):
  with pytest.raises(FileNotFoundError, match=r"sweep directory .*nowhere does not exist"):
    report.collect(tmp_path / "nowhere")
  empty = tmp_path / "empty"
  (empty / "mnli" / "eval_xnli").mkdir(parents=True)
  with pytest.raises(FileNotFoundError,
                     match=r"no eval_<task>/result.json in .*empty: expected .*none/eval_xnli/"
                           r"result.json; skipped: mnli/eval_xnli: no result.json \(unfinished\)"):
    report.collect(empty)
  with pytest.raises(ValueError, match=r"baseline 'xlmr' has no finished evaluation in the sweep; "
                                       r"it has mnli, none, squad: pass --baseline"):
    report.write_report(sweep, baseline="xlmr")
  with pytest.raises(ValueError, match="no result for task mlqa; the sweep has xnli, udpos"):
    report.table(SCORES, tasks=["xnli", "mlqa"])
  (sweep / "mnli" / "eval_xquad" / "result.json").write_text('{"task": "xquad", "avg_f1": 71.0}')
  with pytest.raises(ValueError, match=r"mnli/eval_xquad/result.json holds no score for xquad"):
    report.collect(sweep)
  write_result(sweep / "mnli" / "eval_xnli_again", "xnli", {"accuracy": 1.0})
  with pytest.raises(ValueError, match="second xnli result in mnli"):
    report.collect(sweep)
