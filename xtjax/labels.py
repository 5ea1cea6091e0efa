"""``xtjax export-labels``: the gold label folder of a benchmark, from the same data the
evaluator reads, laid out as ``xtjax score`` and the official ``evaluate.py`` expect."""

from __future__ import annotations

import logging

from xtjax import kinds, scoring
from xtjax.config import base_config
from xtjax.data import pipeline
from xtjax.data.tasks import TASKS, get_task

log = logging.getLogger(__name__)


def export_labels(benchmark: str, out_dir, tasks=None, *, source: str = "hub",
                  hub_mirror: str | None = None, tfds_data_dir: str | None = None,
                  ud_dir: str | None = None) -> dict:
  """Writes ``out_dir/<task>/test-<lang>.<ext>`` for every language of each task, one gold line
  per test example (malformed ones included, as the official files hold them); returns
  {task: {lang: number of examples}}."""
  if benchmark not in scoring.TASK_LANGUAGES:
    raise ValueError(f"unknown benchmark {benchmark!r}: use {', '.join(scoring.TASK_LANGUAGES)}")
  langs = scoring.TASK_LANGUAGES[benchmark]
  tasks = list(tasks) if tasks else [t for t in langs if t in TASKS]
  for t in tasks:
    if t not in langs:
      raise ValueError(f"task {t!r} is not part of {benchmark}: it has {', '.join(langs)}")
  data = base_config().data
  data.update(source=source, hub_mirror=hub_mirror, tfds_data_dir=tfds_data_dir, ud_dir=ud_dir)
  written = {}
  for name in tasks:
    task = get_task(name)
    for lang in langs[name]:
      rows, report = pipeline.load_rows(task, "test", lang, data)
      scoring.write_labels(name, lang, kinds.get(task.kind).gold(task, rows[:]), out_dir)
      written.setdefault(name, {})[lang] = len(rows)
      log.info("%s %s: %d labels (%s)", name, lang, len(rows), report)
  return written
