"""JSON, CSV and markdown outputs of the analysis commands."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path


def write_json(path: Path, value) -> None:
  path.write_text(json.dumps(value, indent=2, allow_nan=True) + "\n", encoding="utf-8")


def write_csv(path: Path, header: list[str], rows: list[list]) -> None:
  with path.open("w", newline="", encoding="utf-8") as f:
    writer = csv.writer(f)
    writer.writerow(header)
    writer.writerows([[cell_text(v) for v in row] for row in rows])


def cell_text(value, digits: int = 4) -> str:
  """Floats with ``digits`` decimals; None and NaN as "n/a"."""
  if value is None or (isinstance(value, float) and math.isnan(value)):
    return "n/a"
  return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def markdown(header: list[str], rows: list[list], digits: int = 3) -> str:
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  lines += ["| " + " | ".join(cell_text(v, digits) for v in row) + " |" for row in rows]
  return "\n".join(lines) + "\n"
