"""Task data from prepared TensorFlow Datasets, in the hub source's exact columns and feature types.

`load_tfds` reads a TFDS dataset already prepared in ``data_dir`` and converts it, row by row, to
the columns and `datasets.Features` that `xtjax.data.tasks` gets from the Hugging Face hub for the
same task, split and language, so everything downstream is the same. It reads the prepared files
directly (`tfds.builder_from_directory` and a random-access data source), without the builders'
code and without TensorFlow; the data must therefore be prepared as ArrayRecord (or Parquet):
``tfds build NAME --file_format=array_record``. TFRecord files, ``tfds build``'s default, need
TensorFlow to read and are reported as missing data with that fix.

Builders are pinned to the versions read here, so that a prepared dataset of another version is
reported rather than read. Conversions:
- ``xnli``'s multilingual pairs become one row per pair in the asked language, as the hub's XNLI;
- PAWS-X labels become the hub's strings "0"/"1";
- ``xtreme_pos`` 1.0.0 swaps Tamil and Tagalog (its ``ta`` config holds Tagalog, ``tl`` Tamil), so
  ``ta`` reads ``xtreme_pos_tl`` and ``tl`` reads ``xtreme_pos_ta``. Its tag set has an 18th class
  "_" that the hub's 17 UPOS classes lack; its builder drops such tokens, so a row holding one is
  not what that builder wrote and raises a ValueError rather than being changed or dropped;
- TyDiQA-GoldP keeps the rows whose id starts with the language's name (``english-…``), as the
  hub's mixed ``tydiqa`` config is filtered; XQuAD's test split drops ``title``, which the hub's
  XQuAD lacks.

Translate-train: ``xnli_translate_train``, ``pawsx_translate_train`` and ``xquad_translate_train``
read XTREME's machine translations of the English training sets (TFDS ``xtreme_xnli``,
``xtreme_pawsx`` and xquad's ``translate-train`` split) in one language per call
(`TRANSLATE_TRAIN_LANGUAGES`), as rows of their English counterpart (MNLI, PAWS-X, SQuAD with its
``title``). ``xtreme_xnli`` keeps the pairs whose hypothesis has the language; it has no ``idx``,
so rows are numbered 0.. in the order read, as the hub numbers MNLI's.

Train and dev of the other tasks are English and ignore ``language``, as `Task.source` does.
Rows come in the prepared files' order (TFDS shuffles examples by key when it writes), not the
hub's. TFDS has no SocialIQA, XCOPA, UD 2.7 (XTREME-R's extra UD-POS languages; TFDS's is
UD 2.10) or XQuAD ``ro``.
"""

from __future__ import annotations

from collections.abc import Callable

import datasets
from etils import epath

from xtjax.data.tasks import (MLQA_LANGS, NER_TAGS, NLI_LABELS, PANX_LANGS, PAWSX_LANGS,
                              TYDIQA_NAMES, UDPOS_NAMES, UPOS_TAGS, WIKIANN_EXTRA, XNLI_LANGS,
                              XQUAD_LANGS)

try:
  import tensorflow_datasets as tfds
except ImportError as e:
  raise ImportError("the TFDS data source needs tensorflow-datasets: "
                    "pip install 'xtjax[tfds]'") from e

_MNLI, _SQUAD, _COPA = "glue/mnli:2.0.0", "squad/v1.1:3.0.0", "super_glue/copa:1.0.2"
_XNLI, _TYDIQA = "xnli:1.1.0", "tydi_qa/goldp:3.0.0"

# task -> split -> (builder "name/config:version", "{lang}" filled in for test; TFDS split)
TFDS_SOURCES: dict[str, dict[str, tuple[str, str]]] = {
    "mnli": {"train": (_MNLI, "train"), "dev": (_MNLI, "validation_matched"),
             "test": (_MNLI, "validation_mismatched")},
    "xnli": {"train": (_MNLI, "train"), "dev": (_XNLI, "validation"), "test": (_XNLI, "test")},
    "pawsx": {"train": ("paws_x_wiki/en:1.0.0", "train"),
              "dev": ("paws_x_wiki/en:1.0.0", "validation"),
              "test": ("paws_x_wiki/{lang}:1.0.0", "test")},
    "udpos": {"train": ("xtreme_pos/xtreme_pos_en:1.0.0", "train"),
              "dev": ("xtreme_pos/xtreme_pos_en:1.0.0", "dev"),
              "test": ("xtreme_pos/xtreme_pos_{lang}:1.0.0", "test")},
    "panx": {"train": ("wikiann/en:1.0.0", "train"), "dev": ("wikiann/en:1.0.0", "validation"),
             "test": ("wikiann/{lang}:1.0.0", "test")},
    "squad": {"train": (_SQUAD, "train"), "dev": (_SQUAD, "validation"),
              "test": (_SQUAD, "validation")},
    "xquad": {"train": (_SQUAD, "train"), "dev": (_SQUAD, "validation"),
              "test": ("xquad/{lang}:3.0.0", "test")},
    "mlqa": {"train": (_SQUAD, "train"), "dev": (_SQUAD, "validation"),
             "test": ("mlqa/{lang}:1.0.0", "test")},
    "tydiqa": {"train": (_TYDIQA, "train"), "dev": (_TYDIQA, "validation"),
               "test": (_TYDIQA, "validation")},
    "copa": {"train": (_COPA, "train"), "dev": (_COPA, "validation"),
             "test": (_COPA, "validation")},
    "xcopa": {"train": (_COPA, "train"), "dev": (_COPA, "validation")},
    "xnli_translate_train": {"train": ("xtreme_xnli:1.1.0", "train")},
    "pawsx_translate_train": {"train": ("xtreme_pawsx/{lang}:1.0.0", "train")},
    "xquad_translate_train": {"train": ("xquad/{lang}:3.0.0", "translate-train")},
}
# task -> the test languages TFDS has
TFDS_LANGUAGES: dict[str, tuple[str, ...]] = {
    "mnli": ("en",), "xnli": XNLI_LANGS, "pawsx": PAWSX_LANGS, "udpos": tuple(UDPOS_NAMES),
    "panx": PANX_LANGS + WIKIANN_EXTRA, "squad": ("en",), "xquad": XQUAD_LANGS,
    "mlqa": MLQA_LANGS, "tydiqa": tuple(TYDIQA_NAMES), "copa": ("en",)}
# translate-train task -> the languages XTREME translated its English training set into
TRANSLATE_TRAIN_LANGUAGES: dict[str, tuple[str, ...]] = {
    task: tuple(l for l in langs if l != "en")
    for task, langs in (("xnli_translate_train", XNLI_LANGS),
                        ("pawsx_translate_train", PAWSX_LANGS),
                        ("xquad_translate_train", XQUAD_LANGS))}
_CONFIG_LANG = {"udpos": {"ta": "tl", "tl": "ta"}}  # xtreme_pos 1.0.0's swapped configs

_STR, _INT = datasets.Value("string"), datasets.Value("int32")
_QA = {"id": _STR, "title": _STR, "context": _STR, "question": _STR,
       "answers": datasets.Sequence({"answer_start": _INT, "text": _STR})}
_PANX = {"tokens": datasets.Sequence(_STR),
         "ner_tags": datasets.Sequence(datasets.ClassLabel(names=list(NER_TAGS))),
         "langs": datasets.Sequence(_STR)}


def _text(value) -> str:
  return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _texts(values) -> list[str]:
  return [_text(v) for v in values]


def _mnli(ex, lang):
  return {"premise": _text(ex["premise"]), "hypothesis": _text(ex["hypothesis"]),
          "label": int(ex["label"]), "idx": int(ex["idx"])}


def _pair(ex, lang) -> tuple[str, str] | None:
  """(premise, hypothesis) in ``lang`` of an xnli-like example, None if the hypothesis lacks it."""
  hypothesis = ex["hypothesis"]  # TranslationVariableLanguages: languages sorted, some missing
  langs = _texts(hypothesis["language"])
  if lang not in langs:
    return None
  return _text(ex["premise"][lang]), _text(hypothesis["translation"][langs.index(lang)])


def _xnli(ex, lang):
  pair = _pair(ex, lang)
  if pair is None:
    return None
  return {"sentence1": pair[0], "sentence2": pair[1], "language": lang,
          "gold_label": NLI_LABELS[int(ex["label"])]}


def _xtreme_xnli(ex, lang):
  pair = _pair(ex, lang)
  if pair is None:
    return None
  return {"premise": pair[0], "hypothesis": pair[1], "label": int(ex["label"])}


def _pawsx(ex, lang):
  return {"sentence1": _text(ex["sentence1"]), "sentence2": _text(ex["sentence2"]),
          "label": str(int(ex["label"]))}


def _udpos(ex, lang):
  tokens, tags = _texts(ex["tokens"]), [int(t) for t in ex["upos"]]
  if any(t >= len(UPOS_TAGS) for t in tags):
    raise ValueError(f"xtreme_pos row {' '.join(tokens)[:60]!r} has the tag '_', which the hub's "
                     "17 UPOS tags lack (xtreme_pos 1.0.0 drops such tokens when it builds)")
  return {"tokens": tokens, "pos_tags": tags}


def _panx(ex, lang):
  return {"tokens": _texts(ex["tokens"]), "ner_tags": [int(t) for t in ex["tags"]],
          "langs": _texts(ex["langs"])}


def _wikiann(ex, lang):
  return {**_panx(ex, lang), "spans": _texts(ex["spans"])}


def _qa(ex, lang):
  answers = ex["answers"]
  return {"id": _text(ex["id"]), "title": _text(ex["title"]), "context": _text(ex["context"]),
          "question": _text(ex["question"]),
          "answers": {"answer_start": [int(a) for a in answers["answer_start"]],
                      "text": _texts(answers["text"])}}


def _xquad(ex, lang):
  row = _qa(ex, lang)
  del row["title"]
  return row


def _tydiqa(ex, lang):
  return _qa(ex, lang) if _text(ex["id"]).startswith(TYDIQA_NAMES[lang] + "-") else None


def _copa(ex, lang):
  return {**{k: _text(ex[k]) for k in ("premise", "choice1", "choice2", "question")},
          "idx": int(ex["idx"]), "label": int(ex["label"])}


Convert = Callable[[dict, str], dict | None]
_MNLI_FEATURES = datasets.Features({"premise": _STR, "hypothesis": _STR,
                                    "label": datasets.ClassLabel(names=list(NLI_LABELS)),
                                    "idx": _INT})
_PAWSX_FEATURES = datasets.Features({"sentence1": _STR, "sentence2": _STR, "label": _STR})
# TFDS dataset name -> (the hub's features, row conversion: None drops the row)
SCHEMAS: dict[str, tuple[datasets.Features, Convert]] = {
    "glue": (_MNLI_FEATURES, _mnli),
    "xnli": (datasets.Features({"sentence1": _STR, "sentence2": _STR, "language": _STR,
                                "gold_label": _STR}), _xnli),
    "xtreme_xnli": (_MNLI_FEATURES, _xtreme_xnli),  # idx: numbered by load_tfds
    "paws_x_wiki": (_PAWSX_FEATURES, _pawsx),
    "xtreme_pawsx": (_PAWSX_FEATURES, _pawsx),
    "xtreme_pos": (datasets.Features({
        "tokens": datasets.Sequence(_STR),
        "pos_tags": datasets.Sequence(datasets.ClassLabel(names=list(UPOS_TAGS)))}), _udpos),
    "wikiann": (datasets.Features(_PANX), _panx),  # the hub's PAN-X; XTREME-R's extras: below
    "squad": (datasets.Features(_QA), _qa),
    "mlqa": (datasets.Features(_QA), _qa),
    "xquad": (datasets.Features({k: v for k, v in _QA.items() if k != "title"}), _xquad),
    "tydi_qa": (datasets.Features(_QA), _tydiqa),
    "super_glue": (datasets.Features({
        "premise": _STR, "choice1": _STR, "choice2": _STR, "question": _STR, "idx": _INT,
        "label": datasets.ClassLabel(names=["choice1", "choice2"])}), _copa),
}
# unimelb-nlp/wikiann, the hub source of WIKIANN_EXTRA, also has the spans column
_WIKIANN = (datasets.Features({**_PANX, "spans": datasets.Sequence(_STR)}), _wikiann)
# xquad's translate-train split is translated SQuAD train, read as SQuAD (with its title)
_XQUAD_TRANSLATE_TRAIN = (datasets.Features(_QA), _qa)
_CHUNK = 1024  # examples per read


def source(task: str, split: str, language: str | None) -> tuple[str, str, str]:
  """(builder "name/config:version", TFDS split, language) of a task's split."""
  if task not in TFDS_SOURCES:
    raise ValueError(f"no TFDS source for task {task!r}: TFDS has {', '.join(TFDS_SOURCES)}")
  splits = TFDS_SOURCES[task]
  if split not in splits:
    raise ValueError(f"no TFDS source for split {split!r} of task {task}: "
                     f"it has {', '.join(splits)}")
  if task in TRANSLATE_TRAIN_LANGUAGES:
    if language not in TRANSLATE_TRAIN_LANGUAGES[task]:
      raise ValueError(f"no TFDS source for language {language!r} of task {task} train: "
                       f"TFDS has {', '.join(TRANSLATE_TRAIN_LANGUAGES[task])}")
  elif split != "test":
    language = "en"
  elif language not in TFDS_LANGUAGES[task]:
    raise ValueError(f"no TFDS source for language {language!r} of task {task} test: "
                     f"TFDS has {', '.join(TFDS_LANGUAGES[task])}")
  builder, tfds_split = splits[split]
  config_lang = _CONFIG_LANG.get(task, {}).get(language, language)
  return builder.format(lang=config_lang), tfds_split, language


def schema(builder: str, language: str,
           split: str | None = None) -> tuple[datasets.Features, Convert]:
  """The hub's features for a builder's rows (of TFDS ``split``) in ``language``, and the row
  conversion."""
  name = builder.split("/")[0].split(":")[0]
  if name == "wikiann" and language in WIKIANN_EXTRA:
    return _WIKIANN
  if name == "xquad" and split == "translate-train":
    return _XQUAD_TRANSLATE_TRAIN
  return SCHEMAS[name]


def read(builder: str, split: str, data_dir: str | None = None):
  """The prepared split as a random-access sequence of decoded examples (numpy and bytes)."""
  data_dir = data_dir or tfds.core.constants.get_default_data_dir()
  name, version = builder.split(":")
  path = epath.Path(data_dir) / name / version
  fix = (f"run `tfds build {builder} --data_dir={data_dir} --file_format=array_record` "
         f"(or tfds.data_source({builder!r}, data_dir=..., download=True)) on a machine with network")
  if not (path / "dataset_info.json").exists():
    raise FileNotFoundError(f"TFDS dataset {builder} is not prepared in {data_dir}: {fix}")
  prepared = tfds.builder_from_directory(path)
  try:
    return prepared.as_data_source(split=split)
  except NotImplementedError:
    raise FileNotFoundError(
        f"TFDS dataset {builder} in {data_dir} is stored as {prepared.info.file_format.value}, "
        f"which needs TensorFlow to read: {fix}") from None


def load_tfds(task: str, split: str, language: str | None,
              data_dir: str | None = None) -> datasets.Dataset:
  """One split of a task from TFDS prepared in ``data_dir`` (default: TFDS's), with the hub
  source's columns and features; ``language`` picks the test (or translate-train) language."""
  builder, tfds_split, language = source(task, split, language)
  features, convert = schema(builder, language, tfds_split)
  examples = read(builder, tfds_split, data_dir)
  rows = []
  for start in range(0, len(examples), _CHUNK):
    for ex in examples.__getitems__(list(range(start, min(start + _CHUNK, len(examples))))):
      row = convert(ex, language)
      if row is not None:
        rows.append(row)
  if not rows:
    raise ValueError(f"TFDS dataset {builder} split {tfds_split} has no rows for {task} {split} "
                     f"in language {language!r}")
  if "idx" in features and "idx" not in rows[0]:  # xtreme_xnli: numbered as the hub's MNLI
    rows = [{**row, "idx": i} for i, row in enumerate(rows)]
  return datasets.Dataset.from_list(rows, features=features)
