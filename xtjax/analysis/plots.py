"""The analysis PNGs, drawn with matplotlib's Agg canvas (no display needed): measures against
layer, retention per language, a language x language heatmap, throughput against fertility."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator


def _figure(width: float, height: float) -> Figure:
  fig = Figure(figsize=(width, height), layout="constrained")
  FigureCanvasAgg(fig)
  return fig


def layer_lines(path: Path, series: dict[str, tuple[list, list]], *, ylabel: str, title: str,
                xlabel: str = "layer", dashed: dict[str, tuple[list, list]] | None = None) -> None:
  """One line per checkpoint (``series[label] = (xs, ys)``); ``dashed`` lines share colours."""
  fig = _figure(6.4, 4.0)
  ax = fig.add_subplot()
  for i, (label, (xs, ys)) in enumerate(series.items()):
    colour = f"C{i % 10}"
    ax.plot(xs, ys, marker="o", color=colour, label=label)
    if dashed and label in dashed:
      ax.plot(*dashed[label], linestyle="--", color=colour, alpha=0.7)
  ax.set_xlabel(xlabel)
  ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # layers are whole numbers
  ax.set_ylabel(ylabel)
  ax.set_title(title, fontsize=10)
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8)
  fig.savefig(path, dpi=150)


def retention_bars(path: Path, languages: list[str], ticks: list[str],
                   panels: dict[str, dict[str, list[float]]], *, title: str) -> None:
  """One panel per measure; in each, a group of bars per language (one bar per checkpoint) of
  the retention ratio, with the pretrained model's 1.0 marked."""
  fig = _figure(max(6.0, 0.55 * len(languages) * max(1, len(next(iter(panels.values()))))),
                2.4 * len(panels) + 0.8)
  axes = fig.subplots(len(panels), 1, squeeze=False)[:, 0]
  for ax, (measure, bars) in zip(axes, panels.items()):
    width = 0.8 / max(len(bars), 1)
    for i, (label, values) in enumerate(bars.items()):
      x = np.arange(len(languages)) + (i - (len(bars) - 1) / 2) * width
      ax.bar(x, np.asarray(values, float), width, label=label, color=f"C{(i + 1) % 10}")
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(languages)), labels=ticks, fontsize=8)
    ax.set_ylabel(f"{measure}\nretention", fontsize=9)
    ax.grid(axis="y", alpha=0.3)
  axes[0].legend(fontsize=8)
  axes[0].set_title(title, fontsize=10)
  fig.savefig(path, dpi=150)


def heatmap(path: Path, matrix: np.ndarray, rows: list[str], columns: list[str], *, xlabel: str,
            ylabel: str, title: str, colourbar: str) -> None:
  """``matrix`` [rows, columns] on a sequential map, each cell annotated."""
  fig = _figure(0.6 * len(columns) + 2.6, 0.5 * len(rows) + 1.8)
  ax = fig.add_subplot()
  grid = np.ma.masked_invalid(np.asarray(matrix, float))
  image = ax.imshow(grid, cmap=matplotlib.colormaps["viridis"], aspect="auto")
  middle = float(grid.mean()) if grid.count() else 0.0
  for i in range(len(rows)):
    for j in range(len(columns)):
      value = matrix[i][j]
      ax.text(j, i, "n/a" if not np.isfinite(value) else f"{value:.1f}", ha="center",
              va="center", fontsize=8, color="black" if value > middle else "white")
  ax.set_xticks(range(len(columns)), labels=columns)
  ax.set_yticks(range(len(rows)), labels=rows)
  ax.set_xlabel(xlabel)
  ax.set_ylabel(ylabel)
  ax.set_title(title, fontsize=10)
  fig.colorbar(image, ax=ax, shrink=0.9, label=colourbar)
  fig.savefig(path, dpi=150)


def scatter(path: Path, points: list[tuple[float, float, str, str]], *, xlabel: str, ylabel: str,
            title: str) -> None:
  """Points (x, y, annotation, group), one colour per group."""
  fig = _figure(6.4, 4.4)
  ax = fig.add_subplot()
  groups = list(dict.fromkeys(p[3] for p in points))
  for i, group in enumerate(groups):
    mine = [p for p in points if p[3] == group]
    ax.scatter([p[0] for p in mine], [p[1] for p in mine], color=f"C{i % 10}", label=group)
    for x, y, text, _ in mine:
      ax.annotate(text, (x, y), textcoords="offset points", xytext=(3, 3), fontsize=7)
  ax.set_xlabel(xlabel)
  ax.set_ylabel(ylabel)
  ax.set_title(title, fontsize=10)
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8)
  fig.savefig(path, dpi=150)
