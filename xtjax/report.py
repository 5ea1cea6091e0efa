"""The results of an intermediate-task sweep as the paper shows them (``xtjax report --sweep DIR``).

A sweep directory holds one run directory per intermediate setting (``none``: the baseline without
an intermediate task) and in each, one ``eval_<task>/result.json`` per zero-shot evaluation. A
task's score is its XTREME ``avg_metric`` (``scoring.avg_metric``, as ``xtjax score`` reports it).
``write_report`` writes ``report.md``, ``report.csv`` and ``heatmap.png`` of the deltas against the
baseline.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from xtjax import scoring

# XTREME's tasks in the scorer's order, then those only XTREME-R has.
TASK_ORDER = list(dict.fromkeys(t for tasks in scoring.TASK_LANGUAGES.values() for t in tasks))


@dataclass
class Row:
  """One intermediate setting: ``scores`` and ``deltas`` (against the baseline; None for the
  baseline itself) per column, None where a result is missing."""
  intermediate: str
  scores: dict[str, float | None]
  deltas: dict[str, float | None] | None


@dataclass
class Table:
  """Rows (the baseline first, then best average first) over ``tasks`` and ``avg``, the mean over
  ``avg_tasks``: the tasks that every row has."""
  baseline: str
  tasks: list[str]
  avg_tasks: list[str]
  rows: list[Row]

  @property
  def columns(self) -> list[str]:
    return [*self.tasks, "avg"]

  @property
  def avg_header(self) -> str:
    if self.avg_tasks == self.tasks:
      return "avg"
    return f"avg ({len(self.avg_tasks)}/{len(self.tasks)})"

  def avg_note(self) -> str:
    if self.avg_tasks == self.tasks:
      return f"avg: mean over all {len(self.tasks)} tasks."
    partial = [t for t in self.tasks if t not in self.avg_tasks]
    if not self.avg_tasks:
      return ("avg: none, no task is finished for every row (missing for some row: "
              f"{', '.join(partial)}).")
    return (f"avg: mean over {', '.join(self.avg_tasks)} only, the tasks every row has "
            f"(missing for some row: {', '.join(partial)}).")

  def missing(self) -> list[str]:
    """``intermediate/task`` of each missing result."""
    return [f"{r.intermediate}/{t}" for r in self.rows for t in self.tasks if r.scores[t] is None]


def collect(sweep_dir: str | Path) -> tuple[dict[str, dict[str, float]], list[str], list[str]]:
  """``(scores, skipped, splits)``: ``scores[intermediate][task]`` is each finished evaluation's
  score; ``skipped`` says, one line each, which evaluations (or run directories without any) are
  left out and why, as unfinished ones are: never counted as 0; ``splits`` are the splits the
  scores are on."""
  root = Path(sweep_dir)
  if not root.is_dir():
    raise FileNotFoundError(f"sweep directory {root} does not exist; pass the folder that holds "
                            "<intermediate>/eval_<task>/result.json")
  scores: dict[str, dict[str, float]] = {}
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
      if task in scores.get(run.name, {}):
        raise ValueError(f"{path} is a second {task} result in {run.name}; keep one eval_{task}")
      splits.add(result.get("split", "test"))
      try:
        scores.setdefault(run.name, {})[task] = scoring.avg_metric(task, result)
      except (KeyError, ValueError) as e:
        raise ValueError(f"{path} holds no score for {task}: {e}") from None
  if not scores:
    more = " ..." if len(skipped) > 3 else ""
    why = f"; skipped: {'; '.join(skipped[:3])}{more}" if skipped else ""
    raise FileNotFoundError(f"no eval_<task>/result.json in {root}: expected one run directory per "
                            f"intermediate setting holding the zero-shot evaluations, e.g. "
                            f"{root / 'none' / 'eval_xnli' / 'result.json'}{why}")
  return scores, skipped, sorted(splits)


def _delta(score: float | None, base: float | None) -> float | None:
  return None if score is None or base is None else score - base


def table(scores: dict[str, dict[str, float]], baseline: str = "none",
          tasks: Sequence[str] | None = None) -> Table:
  """The baseline row, then the other intermediate settings best ``avg`` first, over ``tasks``
  (default: every task with a result) in XTREME order, with deltas against the baseline."""
  if baseline not in scores:
    raise ValueError(f"baseline {baseline!r} has no finished evaluation in the sweep; it has "
                     f"{', '.join(sorted(scores)) or 'none'}: pass --baseline to pick another")
  present = {t for row in scores.values() for t in row}
  if tasks:
    unknown = [t for t in tasks if t not in present]
    if unknown:
      raise ValueError(f"no result for task {', '.join(unknown)}; the sweep has "
                       f"{', '.join(t for t in TASK_ORDER if t in present)}")
    present = set(tasks)
  columns = [t for t in TASK_ORDER if t in present]
  avg_tasks = [t for t in columns if all(t in row for row in scores.values())]

  def cells(row: dict[str, float]) -> dict[str, float | None]:
    cell = {t: row.get(t) for t in columns}
    cell["avg"] = sum(row[t] for t in avg_tasks) / len(avg_tasks) if avg_tasks else None
    return cell

  base = cells(scores[baseline])
  rows = [Row(name, cell, {c: _delta(cell[c], base[c]) for c in cell})
          for name, cell in ((n, cells(s)) for n, s in scores.items() if n != baseline)]
  rows.sort(key=lambda r: (r.scores["avg"] is None, -(r.scores["avg"] or 0.0), r.intermediate))
  return Table(baseline, columns, avg_tasks, [Row(baseline, base, None), *rows])


def _score(value: float | None) -> str:
  return "n/a" if value is None else f"{value:.1f}"


def _signed(value: float) -> str:
  return f"{round(value, 1) + 0.0:+.1f}"  # + 0.0: no "-0.0"


def markdown(t: Table, skipped=(), title: str = "Intermediate-task sweep",
             splits=("test",)) -> str:
  """The table as aligned markdown with ``score (+delta)`` cells, then the missing and skipped
  results."""
  header = ["intermediate", *t.tasks, t.avg_header]
  body = [[r.intermediate, *(_score(r.scores[c]) if r.deltas is None or r.deltas[c] is None
                             else f"{_score(r.scores[c])} ({_signed(r.deltas[c])})"
                             for c in t.columns)] for r in t.rows]
  widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
  rule = ["-" * widths[0], *("-" * (w - 1) + ":" for w in widths[1:])]
  lines = [f"# {title}", "",
           f"Zero-shot XTREME score per task (its avg_metric) on the {' and '.join(splits)} "
           f"split{'s' if len(splits) > 1 else ''}, in points; cells: score (delta vs "
           f"{t.baseline}). {t.avg_note()}", ""]
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
        text, colour = _score(r.scores[c]), "black"
      elif r.deltas[c] is None:
        text, colour = "n/a", "grey"
      else:
        text = _signed(r.deltas[c])
        colour = "white" if abs(r.deltas[c]) > 0.6 * vmax else "black"
      ax.text(j, i, text, ha="center", va="center", fontsize=9, color=colour,
              style="italic" if r.deltas is None else "normal")
  ax.set_xticks(range(len(columns)), labels=[*t.tasks, t.avg_header])
  ax.set_yticks(range(len(t.rows)),
                labels=[f"{r.intermediate} (score)" if r.deltas is None else r.intermediate
                        for r in t.rows])
  ax.xaxis.tick_top()
  ax.tick_params(length=0)
  ax.axhline(0.5, color="black", linewidth=1)
  ax.axvline(len(columns) - 1.5, color="black", linewidth=1)
  fig.colorbar(image, ax=ax, shrink=0.9, label=f"delta vs {t.baseline} (points)")
  ax.set_title(title, fontsize=10)
  fig.savefig(path, dpi=150)


def write_report(sweep_dir: str | Path, out_dir: str | Path | None = None,
                 baseline: str = "none", tasks: Sequence[str] | None = None) -> dict:
  """Writes ``report.md``, ``report.csv`` (long: intermediate, task, score, delta) and
  ``heatmap.png`` in ``out_dir`` (default: the sweep directory). Returns their paths (``markdown``,
  ``csv``, ``heatmap``), the ``table``, the ``skipped`` evaluations and ``summary`` (to print)."""
  scores, skipped, splits = collect(sweep_dir)
  t = table(scores, baseline, tasks)
  out = Path(out_dir or sweep_dir)
  out.mkdir(parents=True, exist_ok=True)
  title = f"Intermediate-task sweep {Path(sweep_dir).resolve().name} ({'+'.join(splits)})"
  paths = {"markdown": out / "report.md", "csv": out / "report.csv", "heatmap": out / "heatmap.png"}
  text = markdown(t, skipped, title, splits)
  paths["markdown"].write_text(text, encoding="utf-8")
  _write_csv(t, paths["csv"])
  heatmap(t, paths["heatmap"], f"{title}: zero-shot delta vs {baseline}")
  summary = text + f"\nWrote {', '.join(p.name for p in paths.values())} in {out}\n"
  return {**paths, "table": t, "skipped": skipped, "summary": summary}
