"""Scores a leaderboard-style prediction folder against a label folder, as official ``evaluate.py``.

Both folders hold ``<task>/test-<lang>.<ext>`` in the XTREME formats: one label per line (``tsv``),
one tag per line with a blank line after each sentence (tagging ``tsv``), ``{qid: answer}`` JSON
for QA predictions and SQuAD-format JSON for QA labels, ``{"label": int}`` lines for XCOPA
(``jsonl``), ``src_id<TAB>trg_id`` lines for BUCC, one integer per line for Tatoeba, and
``{id: [ids, ...]}`` JSON for Mewsli-X and LAReQA. ``write_predictions``/``write_labels`` produce
them and ``read_predictions``/``read_labels`` read them back.

Differences from upstream (google-research/xtreme ``evaluate.py``): LAReQA is scored (upstream lists
no languages for it, so it cannot be scored there) over the 11 XQuAD-R languages; tagging tasks also
report token ``accuracy``; XTREME-R reports ``category_mean``; Tatoeba lines are parsed as integers;
a predicted task without a label folder is an error instead of being skipped.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from xtjax.metrics import (accuracy, bucc_scores, lareqa_map, mewslix_map, qa_scores,
                           tagging_scores)


def _langs(codes: str) -> list[str]:
  return codes.split(",")


TASK_LANGUAGES = {
    "xtreme": {
        "pawsx": _langs("de,en,es,fr,ja,ko,zh"),
        "xnli": _langs("ar,bg,de,el,en,es,fr,hi,ru,sw,th,tr,ur,vi,zh"),
        "panx": _langs("ar,he,vi,id,jv,ms,tl,eu,ml,ta,te,af,nl,en,de,el,bn,hi,mr,ur,fa,fr,"
                       "it,pt,es,bg,ru,ja,ka,ko,th,sw,yo,my,zh,kk,tr,et,fi,hu"),
        "udpos": _langs("af,ar,bg,de,el,en,es,et,eu,fa,fi,fr,he,hi,hu,id,it,ja,kk,ko,mr,"
                        "nl,pt,ru,ta,te,th,tl,tr,ur,vi,yo,zh"),
        "bucc2018": _langs("de,fr,ru,zh"),
        "tatoeba": _langs("ar,he,vi,id,jv,tl,eu,ml,ta,te,af,nl,de,el,bn,hi,mr,ur,fa,fr,it,"
                          "pt,es,bg,ru,ja,ka,ko,th,sw,zh,kk,tr,et,fi,hu"),
        "xquad": _langs("en,es,de,el,ru,tr,ar,vi,th,zh,hi"),
        "mlqa": _langs("en,es,de,ar,hi,vi,zh"),
        "tydiqa": _langs("en,ar,bn,fi,id,ko,ru,sw,te"),
    },
    "xtreme-r": {
        "xnli": _langs("ar,bg,de,el,en,es,fr,hi,ru,sw,th,tr,ur,vi,zh"),
        "panx": _langs("ar,he,vi,id,jv,ms,tl,eu,ml,ta,te,af,nl,en,de,el,bn,hi,mr,ur,fa,fr,"
                       "it,pt,es,bg,ru,ja,ka,ko,th,sw,yo,my,zh,kk,tr,et,fi,hu,qu,pl,uk,az,"
                       "lt,pa,gu,ro"),
        "udpos": _langs("af,ar,bg,de,el,en,es,et,eu,fa,fi,fr,he,hi,hu,id,it,ja,kk,ko,mr,"
                        "nl,pt,ru,ta,te,th,tl,tr,ur,vi,yo,zh,lt,pl,uk,wo,ro"),
        "tatoeba": _langs("ar,he,vi,id,jv,tl,eu,ml,ta,te,af,nl,de,el,bn,hi,mr,ur,fa,fr,it,"
                          "pt,es,bg,ru,ja,ka,ko,th,sw,zh,kk,tr,et,fi,hu,az,lt,pl,uk,ro"),
        "xcopa": _langs("et,ht,id,it,qu,sw,ta,th,tr,vi,zh"),
        "lareqa": _langs("en,es,de,el,ru,tr,ar,vi,th,zh,hi"),
        "mewslix": _langs("ar,de,en,es,fa,ja,pl,ro,ta,tr,uk"),
        "xquad": _langs("en,es,de,el,ru,tr,ar,vi,th,zh,hi,ro"),
        "mlqa": _langs("en,es,de,ar,hi,vi,zh"),
        "tydiqa": _langs("en,ar,bn,fi,id,ko,ru,sw,te"),
    },
}

TASK_GROUPS = {
    "xtreme": {
        "classification": ["pawsx", "xnli"],
        "tagging": ["udpos", "panx"],
        "qa": ["xquad", "mlqa", "tydiqa"],
        "retrieval": ["bucc2018", "tatoeba"],
    },
    "xtreme-r": {
        "classification": ["xnli", "xcopa"],
        "tagging": ["udpos", "panx"],
        "qa": ["xquad", "mlqa", "tydiqa"],
        "retrieval": ["tatoeba", "mewslix"],
        "multi_choice": ["xcopa"],
    },
}

# The XTREME-R paper's average: the mean of these four category means (reported as category_mean).
XTREME_R_CATEGORIES = {
    "classification": ["xnli", "xcopa"],
    "structured_prediction": ["udpos", "panx"],
    "qa": ["xquad", "mlqa", "tydiqa"],
    "retrieval": ["mewslix", "lareqa", "tatoeba"],
}

_KIND = {"pawsx": "label", "xnli": "label", "udpos": "tag", "panx": "tag", "xquad": "squad",
         "tydiqa": "squad", "mlqa": "mlqa", "xcopa": "xcopa", "bucc2018": "bucc",
         "tatoeba": "tatoeba", "mewslix": "ranking", "lareqa": "ranking"}
_EXT = {"label": "tsv", "tag": "tsv", "squad": "json", "mlqa": "json", "xcopa": "jsonl",
        "bucc": "tsv", "tatoeba": "tsv", "ranking": "json"}
_ONE_PER_EXAMPLE = {"label": "lines", "tag": "sentences", "xcopa": "lines", "tatoeba": "lines"}


def in_leaderboard(task: str, lang: str) -> bool:
  """Whether the leaderboard scores ``task`` in ``lang`` (and so has a file format for it)."""
  return task in _KIND and any(lang in langs.get(task, []) for langs in TASK_LANGUAGES.values())


def task_file(root: str | Path, task: str, lang: str) -> Path:
  """``root/<task>/test-<lang>.<ext>``, checking that the task and language exist in a benchmark."""
  if task not in _KIND:
    raise ValueError(f"unknown task {task!r}; use one of {', '.join(_KIND)}")
  known = {l for langs in TASK_LANGUAGES.values() for l in langs.get(task, [])}
  if lang not in known:
    raise ValueError(f"{task} has no language {lang!r}; use one of {', '.join(sorted(known))}")
  return Path(root) / task / f"test-{lang}.{_EXT[_KIND[task]]}"


def _write(path: Path, kind: str, values, gold: bool) -> Path:
  if kind in ("squad", "mlqa") and gold:
    qas = []
    for qid, answers in values.items():
      if isinstance(answers, str):
        raise ValueError(f"gold answers for {qid!r} are a string; pass a list of answer texts")
      qas.append({"id": qid, "answers": [{"text": a} for a in answers]})
    text = json.dumps({"version": "1.1", "data": [{"paragraphs": [{"qas": qas}]}]},
                      ensure_ascii=False)
  elif kind in ("squad", "mlqa"):
    text = json.dumps(dict(values), ensure_ascii=False)
  elif kind == "ranking":
    text = json.dumps({k: list(v) for k, v in values.items()}, ensure_ascii=False)
  elif kind == "tag":
    text = "".join("".join(f"{t}\n" for t in sent) + "\n" for sent in values)
  elif kind == "xcopa":
    text = "".join(json.dumps({"label": int(v)}) + "\n" for v in values)
  elif kind == "bucc":
    text = "".join(f"{src}\t{trg}\n" for src, trg in values)
  elif kind == "tatoeba":
    text = "".join(f"{int(v)}\n" for v in values)
  else:
    text = "".join(f"{v}\n" for v in values)
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text(text, encoding="utf-8")
  return path


def write_predictions(task: str, lang: str, values, out_dir: str | Path) -> Path:
  """Writes ``out_dir/<task>/test-<lang>.<ext>`` in the leaderboard's prediction format.

  ``values``: classification, list of label strings; tagging, list of tag lists; QA, dict qid ->
  answer text; xcopa and tatoeba, list of ints; bucc2018, list of (src_id, trg_id); mewslix and
  lareqa, dict id -> ranked list of ids.
  """
  return _write(task_file(out_dir, task, lang), _KIND[task], values, gold=False)


def write_labels(task: str, lang: str, values, out_dir: str | Path) -> Path:
  """Writes gold labels like ``write_predictions``; QA gold is dict qid -> list of answer texts."""
  return _write(task_file(out_dir, task, lang), _KIND[task], values, gold=True)


def _lines(path: Path) -> list[str]:
  with open(path, encoding="utf-8") as f:
    return [line.strip() for line in f]


def _read_tags(path: Path) -> list[list[str]]:
  """As upstream ``read_tag``: each blank line closes a sentence (repeated ones give empty ones)."""
  sentences, sentence = [], []
  for line in _lines(path):
    if line:
      sentence.append(line)
    else:
      sentences.append(sentence)
      sentence = []
  if sentence:
    sentences.append(sentence)
  return sentences


def _read_json(path: Path):
  with open(path, encoding="utf-8") as f:
    return json.load(f)


def _read_squad_gold(path: Path) -> dict[str, list[str]]:
  data = _read_json(path)
  gold = {}
  for article in data["data"] if isinstance(data, dict) else data:
    for paragraph in article["paragraphs"]:
      for qa in paragraph["qas"]:
        if qa["id"] in gold:
          raise ValueError(f"{path}: question id {qa['id']!r} appears twice; ids must be unique")
        gold[qa["id"]] = [a["text"] for a in qa["answers"]]
  return gold


def _read_ints(path: Path, parse) -> list[int]:
  values = []
  for i, line in enumerate(_lines(path), 1):
    if not line:
      continue
    try:
      values.append(parse(line))
    except (ValueError, KeyError, TypeError):
      raise ValueError(f"{path}:{i}: cannot read {line!r}; write the file with "
                       "write_predictions/write_labels") from None
  return values


def _read(path: Path, kind: str, gold: bool):
  if kind in ("squad", "mlqa") and gold:
    return _read_squad_gold(path)
  if kind in ("squad", "mlqa", "ranking"):
    data = _read_json(path)
    if not isinstance(data, dict):
      raise ValueError(f"{path} is not a JSON object; write {{id: ...}} with write_predictions")
    return data
  if kind == "tag":
    return _read_tags(path)
  if kind == "xcopa":
    return _read_ints(path, lambda line: json.loads(line)["label"])
  if kind == "tatoeba":
    return _read_ints(path, int)
  if kind == "bucc":
    return [tuple(line.split("\t")) for line in _lines(path)]
  return _lines(path)


def read_predictions(task: str, lang: str, in_dir: str | Path):
  """Reads what ``write_predictions`` wrote (the same Python values)."""
  return _read(task_file(in_dir, task, lang), _KIND[task], gold=False)


def read_labels(task: str, lang: str, in_dir: str | Path):
  """Reads what ``write_labels`` wrote (the same Python values)."""
  return _read(task_file(in_dir, task, lang), _KIND[task], gold=True)


def _score_file(task: str, lang: str, pred_path: Path, label_path: Path) -> dict[str, float]:
  kind = _KIND[task]
  preds, labels = _read(pred_path, kind, gold=False), _read(label_path, kind, gold=True)
  if kind in _ONE_PER_EXAMPLE and len(preds) != len(labels):
    unit = _ONE_PER_EXAMPLE[kind]
    raise ValueError(f"{pred_path} has {len(preds)} {unit} but {label_path} has {len(labels)}; "
                     f"write one prediction per gold example")
  try:
    if kind == "tag":
      return tagging_scores(labels, preds)
    if kind in ("squad", "mlqa"):
      return qa_scores(preds, labels, lang if kind == "mlqa" else None)
    if kind == "bucc":
      return bucc_scores(preds, labels)
    if kind == "ranking":
      return {"map@20": (mewslix_map if task == "mewslix" else lareqa_map)(preds, labels)}
    return {"accuracy": accuracy(preds, labels)}
  except ValueError as e:
    raise ValueError(f"{pred_path} against {label_path}: {e}") from None


def avg_metric(task: str, scores: Mapping[str, float]) -> float:
  """A task's headline score from its ``avg_<metric>`` values: (avg_exact_match + avg_f1) / 2 for
  QA, else the first of avg_f1, avg_accuracy, avg_map@20 present."""
  if task not in _KIND:
    raise ValueError(f"unknown task {task!r}: use one of {', '.join(_KIND)}")
  if _KIND[task] in ("squad", "mlqa"):
    if "avg_exact_match" not in scores or "avg_f1" not in scores:
      raise ValueError(f"{task} needs avg_exact_match and avg_f1")
    return (scores["avg_exact_match"] + scores["avg_f1"]) / 2
  for m in ("avg_f1", "avg_accuracy", "avg_map@20"):
    if m in scores:
      return scores[m]
  raise ValueError(f"{task} has none of avg_f1, avg_accuracy, avg_map@20")


def _score_task(task: str, langs: list[str], pred_root: Path, label_root: Path) -> dict:
  scores: dict = {}
  for lang in langs:
    pred_path, label_path = task_file(pred_root, task, lang), task_file(label_root, task, lang)
    for path in (pred_path, label_path):
      if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; {task} needs test-<lang> files for all "
                                f"{len(langs)} languages ({','.join(langs)})")
    for metric, value in _score_file(task, lang, pred_path, label_path).items():
      scores.setdefault(metric, {})[lang] = value
  for metric in list(scores):
    scores[f"avg_{metric}"] = sum(scores[metric].values()) / len(scores[metric])
  scores["avg_metric"] = avg_metric(task, scores)
  return scores


def _select_tasks(pred_root: Path, label_root: Path, benchmark: str,
                  tasks: Sequence[str] | None) -> list[str]:
  task_langs = TASK_LANGUAGES[benchmark]
  for root, what in ((pred_root, "prediction"), (label_root, "label")):
    if not root.is_dir():
      raise FileNotFoundError(f"{what} folder {root} does not exist; pass the folder that holds "
                              "<task>/test-<lang>.<ext>")
  if not tasks:
    selected = [t for t in task_langs if (pred_root / t).is_dir()]
    if not selected:
      raise FileNotFoundError(f"{pred_root} holds no {benchmark} task folder; expected some of "
                              f"{', '.join(task_langs)}")
  else:
    for t in tasks:
      if t not in task_langs:
        raise ValueError(f"unknown {benchmark} task {t!r}; use some of {', '.join(task_langs)}")
      if not (pred_root / t).is_dir():
        raise FileNotFoundError(f"{pred_root / t} is missing; write its predictions or leave "
                                f"{t} out of the tasks")
    selected = [t for t in task_langs if t in tasks]
  for t in selected:
    if not (label_root / t).is_dir():
      raise FileNotFoundError(f"{label_root / t} is missing but {pred_root / t} exists; write its "
                              f"labels or leave {t} out of the tasks")
  return selected


def score(prediction_dir: str | Path, label_dir: str | Path, benchmark: str,
          tasks: Sequence[str] | None = None) -> dict:
  """The official report for ``benchmark`` ("xtreme" or "xtreme-r"), as ``evaluate.py`` writes it.

  Scores ``tasks`` (default: every task folder in ``prediction_dir``) in every language of the task.
  Returns ``all_task`` (mean of the tasks' ``avg_metric``, only when every task is scored), each
  group of ``TASK_GROUPS`` whose tasks are all scored (mean ``avg_metric``), for XTREME-R
  ``category_mean`` (mean over ``XTREME_R_CATEGORIES`` of the mean ``avg_metric``, only when every
  task is scored), then per task ``{metric: {lang: value}}``, ``avg_<metric>`` and ``avg_metric``
  ((avg_exact_match + avg_f1) / 2 for QA, else avg_f1, avg_accuracy or avg_map@20). Percentages.
  """
  if benchmark not in TASK_LANGUAGES:
    raise ValueError(f"unknown benchmark {benchmark!r}; use one of {', '.join(TASK_LANGUAGES)}")
  pred_root, label_root = Path(prediction_dir), Path(label_dir)
  task_langs = TASK_LANGUAGES[benchmark]
  detailed = {t: _score_task(t, task_langs[t], pred_root, label_root)
              for t in _select_tasks(pred_root, label_root, benchmark, tasks)}

  def mean_metric(group: list[str]) -> float:
    return sum(detailed[t]["avg_metric"] for t in group) / len(group)

  report: dict = {}
  complete = set(detailed) == set(task_langs)
  if complete:
    report["all_task"] = mean_metric(list(task_langs))
  for group, group_tasks in TASK_GROUPS[benchmark].items():
    if set(group_tasks) <= set(detailed):
      report[group] = mean_metric(group_tasks)
  if complete and benchmark == "xtreme-r":
    categories = [mean_metric(c) for c in XTREME_R_CATEGORIES.values()]
    report["category_mean"] = sum(categories) / len(categories)
  report.update(detailed)
  return report


def format_report(report: dict) -> str:
  """The report as indented JSON, as ``evaluate.py --output_file`` writes it."""
  return json.dumps(report, indent=2, ensure_ascii=False)
