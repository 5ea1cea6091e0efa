"""The results of a sweep as the paper shows them (``xtjax report --sweep DIR``), and per language.

A sweep directory holds one run directory per group (an intermediate setting; ``none``: the
baseline without an intermediate task) and in each, one ``eval_<task>*/result.json`` per
evaluation. A result's ``setting`` (a tuning mode, a few-shot k) makes its row
``<group>/<setting>``; results of one row and task in different languages (few-shot models, one
per language) are merged. A task's score is its XTREME ``avg_metric`` (``scoring.avg_metric``, as
``xtjax score`` reports it), and its score in one language the same over that language alone.

``write_report`` writes ``report.md``, ``report.csv`` and ``heatmap.png`` (rows x tasks, deltas
against the baseline) and ``languages.md``, ``languages.csv`` and ``languages_<task>.png`` (per
task, rows x languages with their mean and, where every row has English, the cross-lingual
transfer gap: English minus the mean of the other languages). Deltas are against the baseline
row, or the row that ``baselines`` names for a row (a translated intermediate task against its
English original); both default to the sweep's ``.report.json`` (written by ``xtjax sweep``
from the sweep config's ``report``).
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from xtjax import scoring

# XTREME's tasks in the scorer's order, then those only XTREME-R has.
TASK_ORDER = list(dict.fromkeys(t for tasks in scoring.TASK_LANGUAGES.values() for t in tasks))
REPORT_SPEC = ".report.json"  # the sweep's baselines, written by xtjax sweep
SOURCE_LANGUAGE = "en"  # the transfer gap is English minus the mean of the other languages


@dataclass
class Row:
  """One row (an intermediate setting, with its tuning mode or few-shot k): ``scores`` and
  ``deltas`` (against ``versus``, or the table's baseline when None; None for the baseline
  itself) per column, None where a result is missing."""
  intermediate: str
  scores: dict[str, float | None]
  deltas: dict[str, float | None] | None
  versus: str | None = None

  @property
  def label(self) -> str:
    return self.intermediate if self.versus is None else f"{self.intermediate} (vs {self.versus})"


@dataclass
class Table:
  """Rows (the baseline first) over ``tasks`` (tasks, or the languages of one task: ``unit``),
  ``avg``, the mean over ``avg_tasks`` (those that every row has), and with ``gap`` (a language)
  the transfer gap: that language's score minus the mean of the other ``avg_tasks``."""
  baseline: str
  tasks: list[str]
  avg_tasks: list[str]
  rows: list[Row]
  gap: str | None = None
  unit: str = "task"

  @property
  def columns(self) -> list[str]:
    return [*self.tasks, "avg", *(["gap"] if self.gap else [])]

  @property
  def avg_header(self) -> str:
    if self.avg_tasks == self.tasks:
      return "avg"
    return f"avg ({len(self.avg_tasks)}/{len(self.tasks)})"

  @property
  def headers(self) -> list[str]:
    return [*self.tasks, self.avg_header, *(["gap"] if self.gap else [])]

  def avg_note(self) -> str:
    units = f"{self.unit}s"
    if self.avg_tasks == self.tasks:
      return f"avg: mean over all {len(self.tasks)} {units}."
    partial = [t for t in self.tasks if t not in self.avg_tasks]
    if not self.avg_tasks:
      return (f"avg: none, no {self.unit} is finished for every row (missing for some row: "
              f"{', '.join(partial)}).")
    return (f"avg: mean over {', '.join(self.avg_tasks)} only, the {units} every row has "
            f"(missing for some row: {', '.join(partial)}).")

  def missing(self) -> list[str]:
    """``intermediate/task`` of each missing result."""
    return [f"{r.intermediate}/{t}" for r in self.rows for t in self.tasks if r.scores[t] is None]


def results(sweep_dir: str | Path) -> tuple[dict, list[str], list[str]]:
  """``(found, skipped, splits)``: ``found[(row, task)]`` is (path, result) of each finished
  evaluation (a row's results of one task in different languages merged); ``skipped`` says, one
  line each, which evaluations (or run directories without any) are left out and why, as
  unfinished ones are: never counted as 0; ``splits`` are the splits the results are on."""
  root = Path(sweep_dir)
  if not root.is_dir():
    raise FileNotFoundError(f"sweep directory {root} does not exist; pass the folder that holds "
                            "<intermediate>/eval_<task>/result.json")
  parts: dict[tuple[str, str], list] = {}
  skipped, splits = [], set()
  for run in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
    evals = sorted(p for p in run.glob("eval_*") if p.is_dir())
    if not evals:
      skipped.append(f"{run.name}: no eval_<task> folder yet (unfinished)")
    for folder in evals:
      name, path = f"{run.name}/{folder.name}", folder / "result.json"
      if not path.is_file():
        skipped.append(f"{name}: no result.json (unfinished)")
        continue
      try:
        result = json.loads(path.read_text(encoding="utf-8"))
      except json.JSONDecodeError as e:
        skipped.append(f"{name}: result.json is not readable JSON ({e}; still being written?)")
        continue
      task = result.get("task", folder.name.removeprefix("eval_"))
      if task not in TASK_ORDER:
        skipped.append(f"{name}: {task} is not an XTREME task, so it has no score")
        continue
      row = f"{run.name}/{result['setting']}" if result.get("setting") else run.name
      parts.setdefault((row, task), []).append((path, result))
      splits.add(result.get("split", "test"))
  if not parts:
    more = " ..." if len(skipped) > 3 else ""
    why = f"; skipped: {'; '.join(skipped[:3])}{more}" if skipped else ""
    raise FileNotFoundError(f"no eval_<task>/result.json in {root}: expected one run directory per "
                            f"intermediate setting holding the zero-shot evaluations, e.g. "
                            f"{root / 'none' / 'eval_xnli' / 'result.json'}{why}")
  return {key: _merge(key, found) for key, found in parts.items()}, skipped, sorted(splits)


def _merge(key: tuple[str, str], found: list) -> tuple[Path, dict]:
  """One result from a row's results of one task, each in other languages."""
  if len(found) == 1:
    return found[0]
  row, task = key
  languages, metrics = [], {}
  for path, result in found:
    own = list(result.get("languages") or [])
    if not own or set(own) & set(languages):
      raise ValueError(f"{path} is a second {task} result in {row}; keep one eval_{task} per "
                       "language")
    languages += own
    for metric, values in result.get("metrics", {}).items():
      metrics.setdefault(metric, {}).update(values)
  merged = {"task": task, "languages": languages, "metrics": metrics,
            **{f"avg_{m}": float(np.mean(list(v.values()))) for m, v in metrics.items()}}
  return found[0][0], merged


def collect(sweep_dir: str | Path) -> tuple[dict[str, dict[str, float]], list[str], list[str]]:
  """``(scores, skipped, splits)``: ``scores[row][task]`` is each finished evaluation's score
  (see `results` for the rest)."""
  found, skipped, splits = results(sweep_dir)
  scores: dict[str, dict[str, float]] = {}
  for (row, task), (path, result) in found.items():
    try:
      scores.setdefault(row, {})[task] = scoring.avg_metric(task, result)
    except (KeyError, ValueError) as e:
      raise ValueError(f"{path} holds no score for {task}: {e}") from None
  return scores, skipped, splits


def language_scores(task: str, result: dict) -> dict[str, float]:
  """{language: ``task``'s score in that language} of one result."""
  metrics = result.get("metrics", {})
  languages = result.get("languages") or sorted({l for v in metrics.values() for l in v})
  return {l: scoring.avg_metric(task, {f"avg_{m}": v[l] for m, v in metrics.items() if l in v})
          for l in languages}


def _delta(score: float | None, base: float | None) -> float | None:
  return None if score is None or base is None else score - base


def table(scores: dict[str, dict[str, float]], baseline: str = "none",
          tasks: Sequence[str] | None = None, *, baselines: Mapping[str, str] | None = None,
          order: Sequence[str] | None = None, gap: str | None = None,
          unit: str = "task") -> Table:
  """The baseline row, then the other rows (best ``avg`` first, or in ``scores``' order when
  ``order`` gives the columns' order) over ``tasks`` (default: every column with a result), with
  deltas against the baseline or the row ``baselines`` names for a row."""
  baselines = dict(baselines or {})
  for name in [baseline, *(b for r, b in baselines.items() if r in scores)]:
    if name not in scores:
      raise ValueError(f"baseline {name!r} has no finished evaluation in the sweep; it has "
                       f"{', '.join(sorted(scores)) or 'none'}: pass --baseline to pick another")
  present = {t for row in scores.values() for t in row}
  if tasks:
    unknown = [t for t in tasks if t not in present]
    if unknown:
      raise ValueError(f"no result for {unit} {', '.join(unknown)}; the sweep has "
                       f"{', '.join(t for t in (order or TASK_ORDER) if t in present)}")
    present = set(tasks)
  columns = [t for t in (order or TASK_ORDER) if t in present]
  avg_tasks = [t for t in columns if all(t in row for row in scores.values())]
  rest = [t for t in avg_tasks if t != gap]

  def cells(row: dict[str, float]) -> dict[str, float | None]:
    cell = {t: row.get(t) for t in columns}
    cell["avg"] = sum(row[t] for t in avg_tasks) / len(avg_tasks) if avg_tasks else None
    if gap:
      cell["gap"] = row[gap] - sum(row[t] for t in rest) / len(rest) \
          if gap in avg_tasks and rest else None
    return cell

  full = {name: cells(s) for name, s in scores.items()}
  rows = []
  for name, cell in full.items():
    if name == baseline:
      continue
    versus = baselines.get(name, baseline)
    rows.append(Row(name, cell, {c: _delta(cell[c], full[versus][c]) for c in cell},
                    None if versus == baseline else versus))
  if order is None:
    rows.sort(key=lambda r: (r.scores["avg"] is None, -(r.scores["avg"] or 0.0), r.intermediate))
  return Table(baseline, columns, avg_tasks, [Row(baseline, full[baseline], None), *rows], gap,
               unit)


def score_text(value: float | None) -> str:
  return "n/a" if value is None else f"{value:.1f}"


def signed_text(value: float) -> str:
  return f"{round(value, 1) + 0.0:+.1f}"  # + 0.0: no "-0.0"


def _versus(t: Table) -> str:
  if any(r.versus for r in t.rows):
    return f"{t.baseline}, or the row named after vs"
  return t.baseline


def _splits(splits) -> str:
  return f"the {' and '.join(splits)} split{'s' if len(splits) > 1 else ''}"


def markdown(t: Table, skipped=(), title: str = "Intermediate-task sweep",
             splits=("test",), intro: str | None = None, first: str = "intermediate",
             heading: str = "#") -> str:
  """The table as aligned markdown with ``score (+delta)`` cells, then the missing and skipped
  results."""
  header = [first, *t.headers]
  body = [[r.label, *(score_text(r.scores[c]) if r.deltas is None or r.deltas[c] is None
                      else f"{score_text(r.scores[c])} ({signed_text(r.deltas[c])})"
                      for c in t.columns)] for r in t.rows]
  widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
  rule = ["-" * widths[0], *("-" * (w - 1) + ":" for w in widths[1:])]
  intro = intro or (f"Zero-shot XTREME score per task (its avg_metric) on {_splits(splits)}, in "
                    f"points; cells: score (delta vs {_versus(t)}).")
  lines = [f"{heading} {title}", "", f"{intro} {t.avg_note()}", ""]
  lines += ["| " + " | ".join(c.ljust(w) if i == 0 else c.rjust(w)
                              for i, (c, w) in enumerate(zip(line, widths))) + " |"
            for line in [header, rule, *body]]
  if t.missing():
    lines += ["", f"Missing results (shown n/a, not counted as 0): {', '.join(t.missing())}."]
  if skipped:
    lines += ["", "Skipped evaluations:", *(f"- {s}" for s in skipped)]
  return "\n".join(lines) + "\n"


def _write_csv(t: Table, path: Path) -> None:
  with open(path, "w", newline="", encoding="utf-8") as f:
    writer = csv.writer(f)
    writer.writerow(["intermediate", "task", "score", "delta"])
    for r in t.rows:
      for c in t.columns:
        delta = None if r.deltas is None else r.deltas[c]
        writer.writerow([r.intermediate, c, "" if r.scores[c] is None else f"{r.scores[c]:.2f}",
                         "" if delta is None else f"{delta:.2f}"])


def heatmap(t: Table, path: str | Path, title: str = "Intermediate-task sweep") -> None:
  """Deltas against the baseline coloured on a diverging map centred at 0, each cell annotated;
  the baseline row, uncoloured, shows its scores."""
  columns = t.columns
  grid = np.array([[np.nan if r.deltas is None or r.deltas[c] is None else r.deltas[c]
                    for c in columns] for r in t.rows])
  finite = np.abs(grid[np.isfinite(grid)])
  vmax = max(float(finite.max()) if finite.size else 0.0, 0.5)
  fig = Figure(figsize=(0.9 * len(columns) + 3.0, 0.5 * len(t.rows) + 1.6), layout="constrained")
  FigureCanvasAgg(fig)
  ax = fig.add_subplot()
  cmap = matplotlib.colormaps["RdBu"].with_extremes(bad="#f2f2f2")
  image = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=-vmax, vmax=vmax, aspect="auto")
  for i, r in enumerate(t.rows):
    for j, c in enumerate(columns):
      if r.deltas is None:
        text, colour = score_text(r.scores[c]), "black"
      elif r.deltas[c] is None:
        text, colour = "n/a", "grey"
      else:
        text = signed_text(r.deltas[c])
        colour = "white" if abs(r.deltas[c]) > 0.6 * vmax else "black"
      ax.text(j, i, text, ha="center", va="center", fontsize=9, color=colour,
              style="italic" if r.deltas is None else "normal")
  ax.set_xticks(range(len(columns)), labels=t.headers)
  ax.set_yticks(range(len(t.rows)),
                labels=[f"{r.label} (score)" if r.deltas is None else r.label for r in t.rows])
  ax.xaxis.tick_top()
  ax.tick_params(length=0)
  ax.axhline(0.5, color="black", linewidth=1)
  ax.axvline(len(t.tasks) - 0.5, color="black", linewidth=1)
  fig.colorbar(image, ax=ax, shrink=0.9, label="delta (points)")
  ax.set_title(title, fontsize=10)
  fig.savefig(path, dpi=150)


def read_spec(sweep_dir: str | Path) -> dict:
  """The sweep's ``.report.json`` ({"baseline": ..., "baselines": {row: row}}), or {}."""
  path = Path(sweep_dir) / REPORT_SPEC
  return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _natural(text: str) -> list:
  """Sort key that orders numbers by value (k10 before k100)."""
  return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def language_tables(found: dict, baseline: str, baselines: Mapping[str, str],
                    tasks: Sequence[str]) -> tuple[dict[str, Table], list[str]]:
  """({task: rows x languages}, notes): per task, each row's score in each language (English
  first, then in the order the results list them), with the transfer gap where every row has
  English (not Tatoeba and BUCC, whose languages are each paired with English, nor few-shot
  rows, one model per target language)."""
  tables, notes = {}, []
  for task in tasks:
    scores, order = {}, [SOURCE_LANGUAGE]
    for (row, name), (path, result) in found.items():
      if name == task:
        try:
          scores[row] = language_scores(task, result)
        except (KeyError, ValueError) as e:
          raise ValueError(f"{path} holds no per-language score for {task}: {e}") from None
        order += [l for l in scores[row] if l not in order]
    if baseline not in scores:
      notes.append(f"{task}: no per-language table, the baseline {baseline} has no result")
      continue
    first = baseline.split("/")[0]  # the baseline's group first, then the others; k0 < k10
    scores = {r: scores[r] for r in sorted(scores, key=lambda r: (r.split("/")[0] != first,
                                                                 _natural(r)))}
    gap = SOURCE_LANGUAGE if all(SOURCE_LANGUAGE in s for s in scores.values()) else None
    tables[task] = table(scores, baseline, baselines={r: b for r, b in baselines.items()
                                                      if b in scores},
                         order=order, gap=gap, unit="language")
  return tables, notes


def _write_language_csv(tables: dict[str, Table], path: Path) -> None:
  with open(path, "w", newline="", encoding="utf-8") as f:
    writer = csv.writer(f)
    writer.writerow(["row", "task", "language", "score", "versus", "delta"])
    for task, t in tables.items():
      for r in t.rows:
        for c in t.columns:
          delta = None if r.deltas is None else r.deltas[c]
          writer.writerow([r.intermediate, task, c,
                           "" if r.scores[c] is None else f"{r.scores[c]:.2f}",
                           "" if r.deltas is None else (r.versus or t.baseline),
                           "" if delta is None else f"{delta:.2f}"])


def write_report(sweep_dir: str | Path, out_dir: str | Path | None = None,
                 baseline: str | None = None, tasks: Sequence[str] | None = None) -> dict:
  """Writes ``report.md``, ``report.csv`` (long: intermediate, task, score, delta) and
  ``heatmap.png``, and the per-language ``languages.md``, ``languages.csv`` and
  ``languages_<task>.png``, in ``out_dir`` (default: the sweep directory). Returns their paths
  (``markdown``, ``csv``, ``heatmap``, ``languages``, ``languages_csv``, ``language_heatmaps``),
  the ``table``, the ``language_tables``, the ``skipped`` evaluations and ``summary`` (to
  print)."""
  spec = read_spec(sweep_dir)
  baseline = baseline or spec.get("baseline") or "none"
  baselines = spec.get("baselines") or {}
  found, skipped, splits = results(sweep_dir)
  scores, _, _ = collect(sweep_dir)
  t = table(scores, baseline, tasks, baselines={r: b for r, b in baselines.items()
                                                 if b in scores})
  out = Path(out_dir or sweep_dir)
  out.mkdir(parents=True, exist_ok=True)
  name = Path(sweep_dir).resolve().name
  title = f"Intermediate-task sweep {name} ({'+'.join(splits)})"
  paths = {"markdown": out / "report.md", "csv": out / "report.csv", "heatmap": out / "heatmap.png"}
  text = markdown(t, skipped, title, splits)
  paths["markdown"].write_text(text, encoding="utf-8")
  _write_csv(t, paths["csv"])
  heatmap(t, paths["heatmap"], f"{title}: zero-shot delta vs {_versus(t)}")

  tables, notes = language_tables(found, baseline, baselines, t.tasks)
  intro = (f"Each row's score in each language (the task's metric; QA: (EM+F1)/2), in points, on "
           f"{_splits(splits)}; cells: score (delta vs {{versus}}).")
  gap_note = (f" gap: {SOURCE_LANGUAGE} minus the mean of the other languages of avg, the "
              f"cross-lingual transfer gap (smaller: better transfer).")
  sections = [f"# Per-language scores of sweep {name} ({'+'.join(splits)})", ""]
  sections += [f"{n}." for n in notes]
  lang_paths = {"languages": out / "languages.md", "languages_csv": out / "languages.csv",
                "language_heatmaps": []}
  for task, lt in tables.items():
    note = intro.format(versus=_versus(lt)) + (gap_note if lt.gap else "")
    sections.append(markdown(lt, (), task, splits, note, "row", "##"))
    png = out / f"languages_{task}.png"
    heatmap(lt, png, f"{name} {task}: per-language delta vs {_versus(lt)}")
    lang_paths["language_heatmaps"].append(png)
  lang_text = "\n".join(sections) + "\n"
  lang_paths["languages"].write_text(lang_text, encoding="utf-8")
  _write_language_csv(tables, lang_paths["languages_csv"])
  files = [lang_paths["languages"], lang_paths["languages_csv"], *lang_paths["language_heatmaps"]]
  summary = (text + f"\nWrote {', '.join(p.name for p in paths.values())} in {out}\n\n" +
             lang_text + f"\nWrote {', '.join(p.name for p in files)} in {out}\n")
  return {**paths, **lang_paths, "table": t, "language_tables": tables, "skipped": skipped,
          "summary": summary}
