"""Task definitions: where each split lives on the Hugging Face hub and how its rows read.

A `Source` names a hub dataset (repo, config, split, optional language filter) and the columns
holding the two texts and the label. Every split loads through ``datasets.load_dataset``, from the
hub or from a local mirror of the same layout (``data.hub_mirror``, used offline and in tests).
"""

from __future__ import annotations

import dataclasses

NLI_LABELS = ("entailment", "neutral", "contradiction")
XNLI_LANGS = ("ar", "bg", "de", "el", "en", "es", "fr", "hi", "ru", "sw", "th", "tr", "ur", "vi",
              "zh")


@dataclasses.dataclass(frozen=True)
class Source:
  repo: str
  config: str | None
  split: str
  text_a: str
  text_b: str | None
  label: str
  language_column: str | None = None  # rows are filtered on this column when a language is given


@dataclasses.dataclass(frozen=True)
class Task:
  """A classification task: English train and dev sources, and a test source per language."""

  name: str
  kind: str
  labels: tuple[str, ...]
  train: Source
  dev: Source
  test: Source
  languages: tuple[str, ...] = ("en",)
  metric: str = "accuracy"

  def source(self, split: str) -> Source:
    if split not in ("train", "dev", "test"):
      raise ValueError(f"unknown split {split!r} of task {self.name}: use train, dev or test")
    return getattr(self, split)


_MNLI = dict(repo="nyu-mll/glue", config="mnli", text_a="premise", text_b="hypothesis", label="label")
_XNLI = dict(repo="google/xtreme", config="XNLI", text_a="sentence1", text_b="sentence2",
             label="gold_label", language_column="language")

TASKS = {
    "mnli": Task("mnli", "classification", NLI_LABELS,
                 train=Source(split="train", **_MNLI),
                 dev=Source(split="validation_matched", **_MNLI),
                 test=Source(split="validation_mismatched", **_MNLI)),
    # XTREME trains XNLI on English MNLI and selects models on the English XNLI dev set.
    "xnli": Task("xnli", "classification", NLI_LABELS,
                 train=Source(split="train", **_MNLI),
                 dev=Source(split="validation", **_XNLI),
                 test=Source(split="test", **_XNLI),
                 languages=XNLI_LANGS),
}


def get_task(name: str) -> Task:
  if name not in TASKS:
    raise ValueError(f"unknown task {name!r}: xtjax knows {', '.join(sorted(TASKS))}")
  return TASKS[name]


def check_languages(task: Task, languages) -> tuple[str, ...]:
  languages = tuple(languages) if languages else task.languages
  unknown = [l for l in languages if l not in task.languages]
  if unknown:
    raise ValueError(f"unknown language(s) {unknown} for task {task.name}: "
                     f"it has {', '.join(task.languages)}")
  return languages
