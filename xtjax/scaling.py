"""The gain from intermediate training against model size (``xtjax report --scaling DIR ...``).

Each DIR is a sweep of the same intermediate x target grid at one model size
(``configs/sweeps/scaling.py:<size>``). The gain of an intermediate setting on a task is its score
minus the baseline's (``none``, or the sweep's ``report.baseline``) in the same sweep, as
``xtjax report`` computes it, and ``avg`` the mean over the tasks every row of that sweep has. A
sweep's size is its encoder's parameter count (prompts and heads apart) as its train phases
recorded it, else that of its config's preset (`xtjax.models.xlmr.PRESETS`).

``write_scaling`` writes ``scaling.md`` (a table per intermediate setting: sweeps by size x tasks
and avg), ``scaling.csv`` (long: sweep, parameters, setting, task, score, baseline, gain) and
``scaling.png`` (a panel per task and one for avg: gain against parameter count, log scale, a
line per setting).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from xtjax.models.xlmr import PRESETS, XLMREncoder
from xtjax.params import Model, parameter_counts
from xtjax.report import collect, read_spec, score_text, signed_text, table


def preset_parameters(name: str) -> int:
  """The encoder parameter count of preset ``name`` (shapes only, nothing allocated)."""
  model = Model.create(lambda rngs: XLMREncoder(PRESETS[name], rngs=rngs))
  return parameter_counts(model.shapes())["total"]


def sweep_parameters(sweep_dir: str | Path) -> int:
  """The encoder parameter count of a sweep's model: recorded by any of its train phases, else
  from its config's preset."""
  root = Path(sweep_dir)
  for path in sorted(root.glob("[!.]*/*/result.json")):
    count = (json.loads(path.read_text(encoding="utf-8")).get("parameters") or {}).get("encoder")
    if count:
      return int(count)
  names = []
  for path in sorted(root.glob("[!.]*/config.json")):
    names.append(json.loads(path.read_text(encoding="utf-8"))["model"]["checkpoint"])
    if names[-1] in PRESETS:
      return preset_parameters(names[-1])
  raise ValueError(f"{root}: no finished train phase records its parameter count and its model "
                   f"({', '.join(sorted(set(names))) or 'no config.json'}) is not one of the "
                   f"presets {', '.join(PRESETS)}")


def _millions(n: int) -> str:
  return f"{n / 1e9:.2f}B" if n >= 1e9 else f"{n / 1e6:.1f}M"


def gains(sweep_dirs: Sequence[str | Path], baseline: str | None = None) -> list[dict]:
  """Per sweep, smallest first: ``name``, ``parameters``, ``baseline`` and ``table`` (the
  `xtjax.report.Table` of its scores, whose deltas are the gains)."""
  out = []
  for directory in sweep_dirs:
    scores, _, _ = collect(directory)
    base = baseline or read_spec(directory).get("baseline") or "none"
    out.append({"name": Path(directory).resolve().name, "parameters": sweep_parameters(directory),
                "baseline": base, "table": table(scores, base)})
  return sorted(out, key=lambda s: s["parameters"])


def markdown(sweeps: list[dict]) -> str:
  """A table per intermediate setting: the sweeps by size x tasks and avg, cells gain (score)."""
  settings = list(dict.fromkeys(r.intermediate for s in sweeps for r in s["table"].rows[1:]))
  tasks = list(dict.fromkeys(t for s in sweeps for t in s["table"].tasks))
  lines = ["# Gain from intermediate training against model size", "",
           "Cells: gain in points over each sweep's baseline (its own score in brackets); avg: "
           "the sweep's mean over the tasks all its rows have. Sweeps: "
           + ", ".join(f"{s['name']} ({_millions(s['parameters'])} parameters, baseline "
                       f"{s['baseline']})" for s in sweeps) + ".", ""]
  for setting in settings:
    lines += [f"## {setting}", "", "| model | parameters | " + " | ".join(tasks) + " | avg |",
              "|---|---:|" + "---:|" * (len(tasks) + 1)]
    for s in sweeps:
      row = next((r for r in s["table"].rows[1:] if r.intermediate == setting), None)
      cells = []
      for c in [*tasks, "avg"]:
        score = None if row is None else row.scores.get(c)
        gain = None if row is None else row.deltas.get(c)
        cells.append("n/a" if gain is None else f"{signed_text(gain)} ({score_text(score)})")
      lines.append(f"| {s['name']} | {_millions(s['parameters'])} | " + " | ".join(cells) + " |")
    lines.append("")
  return "\n".join(lines)


def _write_csv(sweeps: list[dict], path: Path) -> None:
  with open(path, "w", newline="", encoding="utf-8") as f:
    writer = csv.writer(f)
    writer.writerow(["sweep", "parameters", "setting", "task", "score", "baseline", "gain"])
    for s in sweeps:
      t = s["table"]
      for r in t.rows[1:]:
        for c in t.columns:
          base, gain = t.rows[0].scores[c], r.deltas[c]
          writer.writerow([s["name"], s["parameters"], r.intermediate, c,
                           "" if r.scores[c] is None else f"{r.scores[c]:.2f}",
                           "" if base is None else f"{base:.2f}",
                           "" if gain is None else f"{gain:.2f}"])


def plot(sweeps: list[dict], path: Path) -> None:
  """A panel per task and one for avg: gain against parameter count, a line per setting."""
  panels = [*dict.fromkeys(t for s in sweeps for t in s["table"].tasks), "avg"]
  settings = list(dict.fromkeys(r.intermediate for s in sweeps for r in s["table"].rows[1:]))
  cols = min(4, len(panels))
  rows = -(-len(panels) // cols)
  fig = Figure(figsize=(3.4 * cols, 2.8 * rows + 0.6), layout="constrained")
  FigureCanvasAgg(fig)
  axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
  for ax, panel in zip(axes, panels):
    for setting in settings:
      xs, ys = [], []
      for s in sweeps:
        row = next((r for r in s["table"].rows[1:] if r.intermediate == setting), None)
        if row is not None and row.deltas.get(panel) is not None:
          xs.append(s["parameters"])
          ys.append(row.deltas[panel])
      if xs:
        ax.plot(xs, ys, marker="o", label=setting)
    ax.axhline(0.0, color="grey", linewidth=0.8, linestyle="--")
    ax.set_xscale("log")
    ax.set_title("average over tasks" if panel == "avg" else panel, fontsize=10)
    ax.set_xlabel("encoder parameters")
    ax.set_ylabel("gain (points)")
  for ax in axes[len(panels):]:
    ax.set_visible(False)
  handles, labels = axes[0].get_legend_handles_labels()
  if handles:
    fig.legend(handles, labels, loc="outside upper center", ncols=min(len(labels), 6),
               fontsize=9)
  fig.savefig(path, dpi=150)


def write_scaling(sweep_dirs: Sequence[str | Path], out_dir: str | Path | None = None,
                  baseline: str | None = None) -> dict:
  """Writes ``scaling.md``, ``scaling.csv`` and ``scaling.png`` in ``out_dir`` (default: the
  first sweep's parent folder); returns their paths, the ``sweeps`` and ``summary``."""
  if len(sweep_dirs) < 2:
    raise ValueError("--scaling compares sweeps of several model sizes: give two or more DIRs")
  sweeps = gains(sweep_dirs, baseline)
  out = Path(out_dir or Path(sweep_dirs[0]).resolve().parent)
  out.mkdir(parents=True, exist_ok=True)
  paths = {"markdown": out / "scaling.md", "csv": out / "scaling.csv", "plot": out / "scaling.png"}
  text = markdown(sweeps)
  paths["markdown"].write_text(text, encoding="utf-8")
  _write_csv(sweeps, paths["csv"])
  plot(sweeps, paths["plot"])
  summary = text + f"\nWrote {', '.join(p.name for p in paths.values())} in {out}\n"
  return {**paths, "sweeps": sweeps, "summary": summary}
