"""Result tables of evaluation phases: ``results.json``, ``results.md`` (one row per task and
metric, a column per language) and ``results.csv``."""

from __future__ import annotations

import csv
import io
import json

import jax


def markdown_table(results: list[dict]) -> str:
  """One row per task and metric, one column per language (tasks may differ in languages)."""
  lines = []
  for r in results:
    langs = list(r["languages"])
    lines += ["| task | metric | " + " | ".join(langs) + " | avg |",
              "|" + "---|" * (len(langs) + 3)]
    for metric, values in r["metrics"].items():
      lines.append(f"| {r['task']} | {metric} | " + " | ".join(f"{values[l]:.1f}" for l in langs)
                   + f" | {r['avg_' + metric]:.1f} |")
    lines.append("")
  return "\n".join(lines)


def write_results(out_dir, results: list[dict], title: str) -> str:
  """results.json/.md/.csv in ``out_dir``; returns the markdown table (also printed)."""
  table = markdown_table(results)
  if jax.process_index() == 0:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (out_dir / "results.md").write_text(table)
    buf = io.StringIO()
    rows = [["task", "language", "metric", "value", "examples"]]
    for r in results:
      rows += [[r["task"], l, m, f"{v[l]:.2f}", r.get("examples", {}).get(l, "")]
               for m, v in r["metrics"].items() for l in r["languages"]]
    csv.writer(buf).writerows(rows)
    (out_dir / "results.csv").write_text(buf.getvalue())
    print(f"\n{title}:\n{table}")
  return table
