"""Invalid UTF-8 as a one-line error naming the file, the row (or line) and the fix, instead of a
UnicodeDecodeError from deep inside datasets or tokenizers that names neither."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

FIX = "re-encode it as UTF-8 (e.g. iconv -f latin1 -t utf-8) or remove the row"


def _valid(array) -> bool:
  try:
    array.validate(full=True)  # checks the UTF-8 of every string, nested ones included
    return True
  except pa.ArrowInvalid:
    return False


def _first_invalid(array) -> int:
  """The index of the first element of ``array`` with invalid UTF-8 (``array`` has one)."""
  lo, hi = 0, len(array)
  while hi - lo > 1:
    mid = (lo + hi) // 2
    if _valid(array.slice(lo, mid - lo)):
      lo = mid
    else:
      hi = mid
  return lo


def check_parquet(path: str) -> None:
  """Raises ValueError naming ``path``, the row and the column if any string in the Parquet file
  is not valid UTF-8."""
  file = pq.ParquetFile(path)
  offset = 0
  for group in range(file.num_row_groups):
    table = file.read_row_group(group)
    for column in table.column_names:
      start = offset
      for chunk in table.column(column).chunks:
        if not _valid(chunk):
          row = start + _first_invalid(chunk)
          raise ValueError(f"{path} row {row} (column {column}) is not valid UTF-8: {FIX}")
        start += len(chunk)
    offset += table.num_rows


def read_lines(path: str):
  """The lines of a UTF-8 text file; a line that is not UTF-8 is a one-line ValueError naming the
  file, the line number and the byte."""
  with open(path, "rb") as f:
    for number, raw in enumerate(f, 1):
      try:
        yield raw.decode("utf-8")
      except UnicodeDecodeError as e:
        raise ValueError(f"{path} line {number} is not valid UTF-8 (byte {e.start}: "
                         f"{raw[e.start:e.start + 1]!r}): {FIX}") from None
