"""Task definitions: where each split lives on the Hugging Face hub and how its rows read.

A `Source` names a hub dataset (repo, one or more configs whose rows are concatenated, split,
optional row filter for one language) and the upstream columns that hold the fields of the task's
kind (see `xtjax.data.rows`). Every split loads through ``datasets.load_dataset``, from the hub or
from a local mirror of the same layout (``data.hub_mirror``, used offline and in tests).

XTREME trains on English only: the train and dev sources are English, and ``Task.test[lang]`` is
the zero-shot evaluation source of each language. Language lists are the official scorer's
(`xtjax.scoring.TASK_LANGUAGES`); a task holds the union over XTREME and XTREME-R.
"""

from __future__ import annotations

import dataclasses

from xtjax import scoring

NLI_LABELS = ("entailment", "neutral", "contradiction")
UPOS_TAGS = ("ADJ", "ADP", "ADV", "AUX", "CCONJ", "DET", "INTJ", "NOUN", "NUM", "PART", "PRON",
             "PROPN", "PUNCT", "SCONJ", "SYM", "VERB", "X")
NER_TAGS = ("O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC")
KINDS = ("classification", "multiple_choice", "token_classification", "question_answering")


@dataclasses.dataclass(frozen=True)
class Source:
  """One split of one hub dataset; ``columns`` maps the kind's fields to upstream column names."""

  repo: str
  configs: tuple[str | None, ...]
  split: str
  columns: tuple[tuple[str, str], ...] = ()
  language_column: str | None = None  # keep rows whose column equals ``language_value``
  language_value: str | None = None
  id_prefix: str | None = None  # keep rows whose id starts with this (TyDiQA: "english-")
  label_offset: int = 0  # SocialIQA labels count from 1
  layout: str = ""  # multiple choice rows laid out other than choice1..N columns (see kinds.py)
  revision: str | None = None  # the hub revision read (a repo whose main holds only a script)
  ud: str | None = None  # UD-POS: read this language from data.ud_dir when it is set
  skip_tags: tuple[str, ...] = ()  # tagging: tokens with these tags are left out (UD "_")
  translation: str | None = None  # translate-train: the language this source translates into

  def column(self, field: str) -> str:
    return dict(self.columns).get(field, field)

  def describe(self) -> str:
    configs = "+".join(c or "default" for c in self.configs)
    at = f", revision {self.revision}" if self.revision else ""
    return f"{self.repo} (config {configs}, split {self.split}{at})"


@dataclasses.dataclass(frozen=True)
class Task:
  """English train and dev sources (several are concatenated), a test source per language, and a
  dev source per language that has one (``dev_languages``: evaluation on dev, as the paper's
  tables)."""

  name: str
  kind: str
  train: Source | tuple[Source, ...]
  dev: Source | tuple[Source, ...]
  test: dict[str, Source]
  labels: tuple[str, ...] = ()  # class or tag names; multiple choice: the choice count as names
  metric: str = "accuracy"  # the dev metric that selects the checkpoint
  model_task: str | None = None  # a task whose trained model this one shares (xquad: squad)
  null_answers: bool = False  # QA with unanswerable questions (SQuAD v2.0)
  dev_languages: dict[str, Source] = dataclasses.field(default_factory=dict)
  # Training sets in other languages than English (few-shot examples come from these first).
  train_languages: dict[str, Source] = dataclasses.field(default_factory=dict)

  def sources(self, split: str, language: str | None = None) -> tuple[Source, ...]:
    source = self.source(split, language)
    return source if isinstance(source, tuple) else (source,)

  @property
  def languages(self) -> tuple[str, ...]:
    return tuple(self.test)

  def split_languages(self, split: str) -> tuple[str, ...]:
    """The languages with a ``split`` (test or dev) set to evaluate."""
    return tuple(self.dev_languages) if split == "dev" else self.languages

  @property
  def num_labels(self) -> int:
    return len(self.labels)

  def few_shot_source(self, language: str) -> tuple[str, Source]:
    """(split, source) that few-shot examples in ``language`` are drawn from: the language's
    train split where the task has one (``train_languages``), else its dev split."""
    if language in self.train_languages:
      return "train", self.train_languages[language]
    if language in self.dev_languages:
      return "dev", self.dev_languages[language]
    have = sorted(set(self.train_languages) | set(self.dev_languages))
    raise ValueError(f"task {self.name} has no train or dev set in {language!r} to draw "
                     f"few-shot examples from: it has {', '.join(have) or 'none'}")

  def source(self, split: str, language: str | None = None) -> Source | tuple[Source, ...]:
    """``train`` and ``dev`` (language None) are English; ``test`` and ``dev`` of ``language``
    are that language's evaluation sets, ``train`` of ``language`` its training set."""
    if split == "train" and language is not None:
      if language not in self.train_languages:
        raise ValueError(f"task {self.name} has no train set in {language!r}: it has "
                         f"{', '.join(self.train_languages) or 'none'}")
      return self.train_languages[language]
    if split == "dev" and language is not None:
      if language not in self.dev_languages:
        raise ValueError(f"task {self.name} has no dev set in {language!r}: it has "
                         f"{', '.join(self.dev_languages) or 'none'}")
      return self.dev_languages[language]
    if split in ("train", "dev"):
      return getattr(self, split)
    if split != "test":
      raise ValueError(f"unknown split {split!r} of task {self.name}: use train, dev or test")
    if language not in self.test:
      raise ValueError(f"unknown language {language!r} for task {self.name}: "
                       f"it has {', '.join(self.test)}")
    return self.test[language]


def _src(repo, configs, split, **kw) -> Source:
  configs = (configs,) if configs is None or isinstance(configs, str) else tuple(configs)
  kw["columns"] = tuple(kw.get("columns", {}).items())
  return Source(repo, configs, split, **kw)


XTREME = "google/xtreme"

# --- classification -------------------------------------------------------------------------
_MNLI = dict(columns={"text_a": "premise", "text_b": "hypothesis", "label": "label"})
_XNLI = dict(columns={"text_a": "sentence1", "text_b": "sentence2", "label": "gold_label"},
             language_column="language")
_PAIR = dict(columns={"text_a": "sentence1", "text_b": "sentence2", "label": "label"})
XNLI_LANGS = ("ar", "bg", "de", "el", "en", "es", "fr", "hi", "ru", "sw", "th", "tr", "ur", "vi",
              "zh")
PAWSX_LANGS = ("de", "en", "es", "fr", "ja", "ko", "zh")

# --- tagging: UD-POS from data.ud_dir (the official UD 2.5 / 2.7 releases, treebanks selected by
# language code as XTREME's download_data.sh: xtjax.data.udpos) or, without it, from the hub:
# google/xtreme's udpos.<EnglishName> (UD 2.5), which merges every treebank of a language *name*
# (Ancient Greek into Greek, Classical Chinese into Chinese: results say "approximate"), and
# universal_dependencies (UD 2.7) for XTREME-R's additions, all treebanks of a language merged.
UDPOS_NAMES = {
    "af": "Afrikaans", "ar": "Arabic", "bg": "Bulgarian", "de": "German", "el": "Greek",
    "en": "English", "es": "Spanish", "et": "Estonian", "eu": "Basque", "fa": "Persian",
    "fi": "Finnish", "fr": "French", "he": "Hebrew", "hi": "Hindi", "hu": "Hungarian",
    "id": "Indonesian", "it": "Italian", "ja": "Japanese", "kk": "Kazakh", "ko": "Korean",
    "mr": "Marathi", "nl": "Dutch", "pt": "Portuguese", "ru": "Russian", "ta": "Tamil",
    "te": "Telugu", "th": "Thai", "tl": "Tagalog", "tr": "Turkish", "ur": "Urdu",
    "vi": "Vietnamese", "yo": "Yoruba", "zh": "Chinese"}
UDPOS_NO_DEV = ("kk", "th", "tl", "yo")  # UD 2.5 has no dev set in these (29 languages have one)
UD27_TREEBANKS = {"lt": ("lt_alksnis", "lt_hse"), "pl": ("pl_lfg", "pl_pdb", "pl_pud"),
                  "ro": ("ro_nonstandard", "ro_rrt", "ro_simonero"), "uk": ("uk_iu",),
                  "wo": ("wo_wtb",)}
PANX_LANGS = ("af", "ar", "bg", "bn", "de", "el", "en", "es", "et", "eu", "fa", "fi", "fr", "he",
              "hi", "hu", "id", "it", "ja", "jv", "ka", "kk", "ko", "ml", "mr", "ms", "my", "nl",
              "pt", "ru", "sw", "ta", "te", "th", "tl", "tr", "ur", "vi", "yo", "zh")
WIKIANN_EXTRA = ("az", "gu", "lt", "pa", "pl", "qu", "ro", "uk")  # XTREME-R: unimelb-nlp/wikiann

# --- QA: trained on SQuAD v1.1; TyDiQA-GoldP on its English part, tested on the GoldP dev sets.
XQUAD_LANGS = ("ar", "de", "el", "en", "es", "hi", "ru", "th", "tr", "vi", "zh")
MLQA_LANGS = ("ar", "de", "en", "es", "hi", "vi", "zh")
TYDIQA_NAMES = {"ar": "arabic", "bn": "bengali", "en": "english", "fi": "finnish",
                "id": "indonesian", "ko": "korean", "ru": "russian", "sw": "swahili",
                "te": "telugu"}
XCOPA_LANGS = ("et", "ht", "id", "it", "qu", "sw", "ta", "th", "tr", "vi", "zh")

# Hub repos whose main branch holds only a loading script, which datasets >= 4 refuses to run:
# their Parquet conversion is read instead.
PARQUET = "refs/convert/parquet"
_UPOS = dict(columns={"tags": "pos_tags"})
# UD 2.7 on the hub lists multi-word tokens as words tagged "_"; XTREME reads words only.
_UD27 = dict(columns={"tags": "upos"}, revision=PARQUET, skip_tags=("_",))
_NER = dict(columns={"tags": "ner_tags"})
_COPA = dict(columns={"label": "label"})
_SIQA = dict(columns={"premise": "context", "choice1": "answerA", "choice2": "answerB",
                      "choice3": "answerC"}, label_offset=1, revision=PARQUET)


def _tydiqa(split: str, lang: str) -> Source:
  return _src(XTREME, "tydiqa", split, id_prefix=TYDIQA_NAMES[lang] + "-")


TASKS = {
    "mnli": Task("mnli", "classification", labels=NLI_LABELS,
                 train=_src("nyu-mll/glue", "mnli", "train", **_MNLI),
                 dev=_src("nyu-mll/glue", "mnli", "validation_matched", **_MNLI),
                 test={"en": _src("nyu-mll/glue", "mnli", "validation_mismatched", **_MNLI)}),
    # XTREME trains XNLI on English MNLI and selects models on the English XNLI dev set.
    "xnli": Task("xnli", "classification", labels=NLI_LABELS,
                 train=_src("nyu-mll/glue", "mnli", "train", **_MNLI),
                 dev=_src(XTREME, "XNLI", "validation", language_value="en", **_XNLI),
                 test={l: _src(XTREME, "XNLI", "test", language_value=l, **_XNLI)
                       for l in XNLI_LANGS},
                 dev_languages={l: _src(XTREME, "XNLI", "validation", language_value=l, **_XNLI)
                                for l in XNLI_LANGS}),
    "pawsx": Task("pawsx", "classification", labels=("0", "1"),
                  train=_src(XTREME, "PAWS-X.en", "train", **_PAIR),
                  dev=_src(XTREME, "PAWS-X.en", "validation", **_PAIR),
                  test={l: _src(XTREME, f"PAWS-X.{l}", "test", **_PAIR) for l in PAWSX_LANGS},
                  dev_languages={l: _src(XTREME, f"PAWS-X.{l}", "validation", **_PAIR)
                                 for l in PAWSX_LANGS},
                  # PAWS-X.<lang> train: the English train set machine-translated (PAWS-X's)
                  train_languages={l: _src(XTREME, f"PAWS-X.{l}", "train", **_PAIR)
                                   for l in PAWSX_LANGS if l != "en"}),
    "udpos": Task("udpos", "token_classification", labels=UPOS_TAGS, metric="f1",
                  train=_src(XTREME, "udpos.English", "train", ud="en", **_UPOS),
                  dev=_src(XTREME, "udpos.English", "validation", ud="en", **_UPOS),
                  test={**{l: _src(XTREME, f"udpos.{n}", "test", ud=l, **_UPOS)
                           for l, n in UDPOS_NAMES.items()},
                        **{l: _src("universal-dependencies/universal_dependencies", t, "test",
                                   ud=l, **_UD27) for l, t in UD27_TREEBANKS.items()}},
                  dev_languages={l: _src(XTREME, f"udpos.{n}", "validation", ud=l, **_UPOS)
                                 for l, n in UDPOS_NAMES.items() if l not in UDPOS_NO_DEV},
                  train_languages={l: _src(XTREME, f"udpos.{n}", "train", ud=l, **_UPOS)
                                   for l, n in UDPOS_NAMES.items()
                                   if l != "en" and l not in UDPOS_NO_DEV}),
    "panx": Task("panx", "token_classification", labels=NER_TAGS, metric="f1",
                 train=_src(XTREME, "PAN-X.en", "train", **_NER),
                 dev=_src(XTREME, "PAN-X.en", "validation", **_NER),
                 test={**{l: _src(XTREME, f"PAN-X.{l}", "test", **_NER) for l in PANX_LANGS},
                       **{l: _src("unimelb-nlp/wikiann", l, "test", **_NER)
                          for l in WIKIANN_EXTRA}},
                 dev_languages={l: _src(XTREME, f"PAN-X.{l}", "validation", **_NER)
                                for l in PANX_LANGS},
                 train_languages={l: _src(XTREME, f"PAN-X.{l}", "train", **_NER)
                                  for l in PANX_LANGS if l != "en"}),
    "squad": Task("squad", "question_answering", metric="f1",
                  train=_src(XTREME, "SQuAD", "train"), dev=_src(XTREME, "SQuAD", "validation"),
                  test={"en": _src(XTREME, "SQuAD", "validation")}),
    "xquad": Task("xquad", "question_answering", metric="f1", model_task="squad",
                  train=_src(XTREME, "SQuAD", "train"), dev=_src(XTREME, "SQuAD", "validation"),
                  test={**{l: _src(XTREME, f"XQuAD.{l}", "validation") for l in XQUAD_LANGS},
                        "ro": _src("google/xquad", "xquad.ro", "validation")},
                  # XQuAD has one set per language, jiant's "val" and XTREME's test alike.
                  dev_languages={l: _src(XTREME, f"XQuAD.{l}", "validation")
                                 for l in XQUAD_LANGS}),
    "mlqa": Task("mlqa", "question_answering", metric="f1", model_task="squad",
                 train=_src(XTREME, "SQuAD", "train"), dev=_src(XTREME, "SQuAD", "validation"),
                 test={l: _src(XTREME, f"MLQA.{l}.{l}", "test") for l in MLQA_LANGS},
                 dev_languages={l: _src(XTREME, f"MLQA.{l}.{l}", "validation")
                                for l in MLQA_LANGS}),
    "tydiqa": Task("tydiqa", "question_answering", metric="f1",
                   train=_tydiqa("train", "en"), dev=_tydiqa("validation", "en"),
                   test={l: _tydiqa("validation", l) for l in TYDIQA_NAMES},
                   # the GoldP dev sets are XTREME's test sets and jiant's "val" alike.
                   dev_languages={l: _tydiqa("validation", l) for l in TYDIQA_NAMES},
                   # the GoldP train set has every language (XTREME trains on its English part)
                   train_languages={l: _tydiqa("train", l) for l in TYDIQA_NAMES if l != "en"}),
    # XTREME-R's XCOPA recipe: SocialIQA, then English COPA, then zero-shot XCOPA.
    "siqa": Task("siqa", "multiple_choice", labels=("1", "2", "3"),
                 train=_src("allenai/social_i_qa", None, "train", **_SIQA),
                 dev=_src("allenai/social_i_qa", None, "validation", **_SIQA),
                 test={"en": _src("allenai/social_i_qa", None, "validation", **_SIQA)}),
    "copa": Task("copa", "multiple_choice", labels=("choice1", "choice2"),
                 train=_src("aps/super_glue", "copa", "train", **_COPA),
                 dev=_src("aps/super_glue", "copa", "validation", **_COPA),
                 test={"en": _src("aps/super_glue", "copa", "validation", **_COPA)}),
    "xcopa": Task("xcopa", "multiple_choice", labels=("choice1", "choice2"),
                  train=_src("aps/super_glue", "copa", "train", **_COPA),
                  dev=_src("aps/super_glue", "copa", "validation", **_COPA),
                  test={l: _src("cambridgeltl/xcopa", l, "test", **_COPA) for l in XCOPA_LANGS}),
}


# --- intermediate tasks of Phang et al. (2020).
_NLI = dict(columns={"text_a": "premise", "text_b": "hypothesis", "label": "label"})
_QQP = dict(columns={"text_a": "question1", "text_b": "question2", "label": "label"})
_COSMOS = dict(columns={"premise": "context", **{f"choice{i + 1}": f"answer{i}" for i in range(4)}},
               revision=PARQUET)
_HELLASWAG = dict(layout="hellaswag")
_CSQA = dict(layout="commonsenseqa")
# ANLI+ = SNLI + MNLI + ANLI rounds 1-3 with one head (SNLI rows without a gold label, -1, are
# reported as malformed); model selection on the three ANLI dev rounds together.
_ANLI = tuple(_src("facebook/anli", "plain_text", f"train_r{r}", **_NLI) for r in (1, 2, 3))
_ANLI_DEV = tuple(_src("facebook/anli", "plain_text", f"dev_r{r}", **_NLI) for r in (1, 2, 3))

TASKS.update({
    "anli_plus": Task("anli_plus", "classification", labels=NLI_LABELS,
                      train=(_src("stanfordnlp/snli", "plain_text", "train", **_NLI),
                             _src("nyu-mll/glue", "mnli", "train", **_MNLI)) + _ANLI,
                      dev=_ANLI_DEV, test={"en": _ANLI_DEV}),
    "qqp": Task("qqp", "classification", labels=("not_duplicate", "duplicate"),
                train=_src("nyu-mll/glue", "qqp", "train", **_QQP),
                dev=_src("nyu-mll/glue", "qqp", "validation", **_QQP),
                test={"en": _src("nyu-mll/glue", "qqp", "validation", **_QQP)}),
    "squad_v2": Task("squad_v2", "question_answering", metric="f1", null_answers=True,
                     train=_src("rajpurkar/squad_v2", "squad_v2", "train"),
                     dev=_src("rajpurkar/squad_v2", "squad_v2", "validation"),
                     test={"en": _src("rajpurkar/squad_v2", "squad_v2", "validation")}),
    "hellaswag": Task("hellaswag", "multiple_choice", labels=("0", "1", "2", "3"),
                      train=_src("Rowan/hellaswag", None, "train", **_HELLASWAG),
                      dev=_src("Rowan/hellaswag", None, "validation", **_HELLASWAG),
                      test={"en": _src("Rowan/hellaswag", None, "validation", **_HELLASWAG)}),
    "cosmosqa": Task("cosmosqa", "multiple_choice", labels=("0", "1", "2", "3"),
                     train=_src("allenai/cosmos_qa", None, "train", **_COSMOS),
                     dev=_src("allenai/cosmos_qa", None, "validation", **_COSMOS),
                     test={"en": _src("allenai/cosmos_qa", None, "validation", **_COSMOS)}),
    "commonsenseqa": Task("commonsenseqa", "multiple_choice", labels=("A", "B", "C", "D", "E"),
                          train=_src("tau/commonsense_qa", None, "train", **_CSQA),
                          dev=_src("tau/commonsense_qa", None, "validation", **_CSQA),
                          test={"en": _src("tau/commonsense_qa", None, "validation", **_CSQA)}),
    # CCGbank is licensed (LDC2005T13): read from data.ccgbank_dir; the supertag set is built
    # from all three splits, as jiant numbers every category (see xtjax/data/ccg.py).
    "ccg": Task("ccg", "token_classification", metric="accuracy",
                train=_src("ccgbank", None, "train"), dev=_src("ccgbank", None, "dev"),
                test={"en": _src("ccgbank", None, "test")}),
    # Multilingual masked-language modelling on data.mlm_sources (hub text datasets or files).
    "mlm": Task("mlm", "masked_lm", metric="accuracy",
                train=_src("mlm", None, "train"), dev=_src("mlm", None, "dev"),
                test={"en": _src("mlm", None, "dev")}),
})


def _translate_train(name: str, base: str, tfds_task: str, languages, hub_config=None) -> Task:
  """``base`` trained on its English data plus XTREME's machine translations of it into every
  ``languages`` (XTREME's translate-train-all), evaluated like ``base``. The translations are
  read from TFDS (``tfds:<task>`` sources) unless the hub has them (PAWS-X)."""
  task = TASKS[base]
  if hub_config:
    extra = tuple(_src(XTREME, hub_config.format(l=l), "train", translation=l, **_PAIR)
                  for l in languages)
  else:
    extra = tuple(Source(f"tfds:{tfds_task}", (l,), "train", task.sources("train")[0].columns,
                         translation=l) for l in languages)
  return dataclasses.replace(task, name=name, train=task.sources("train") + extra,
                             model_task=None)


TASKS.update({
    "xnli_translate_train": _translate_train(
        "xnli_translate_train", "xnli", "xnli_translate_train", [l for l in XNLI_LANGS if l != "en"]),
    "pawsx_translate_train": _translate_train(
        "pawsx_translate_train", "pawsx", "pawsx_translate_train",
        [l for l in PAWSX_LANGS if l != "en"], hub_config="PAWS-X.{l}"),
    "xquad_translate_train": _translate_train(
        "xquad_translate_train", "xquad", "xquad_translate_train",
        [l for l in XQUAD_LANGS if l != "en"]),
})
INTERMEDIATE_TASKS = ("anli_plus", "mnli", "qqp", "squad", "squad_v2", "hellaswag", "ccg",
                      "cosmosqa", "commonsenseqa")


def get_task(name: str) -> Task:
  if name not in TASKS:
    raise ValueError(f"unknown task {name!r}: xtjax knows {', '.join(sorted(TASKS))}")
  return TASKS[name]


def check_languages(task: Task, languages, split: str = "test") -> tuple[str, ...]:
  """``languages`` (default: all) that ``task`` has a ``split`` set in, or a one-line error."""
  known = task.split_languages(split)
  languages = tuple(languages) if languages else known
  unknown = [l for l in languages if l not in known]
  if unknown:
    raise ValueError(f"unknown language(s) {unknown} for task {task.name} ({split}): "
                     f"it has {', '.join(known)}")
  return languages


# --- retrieval: no training data; evaluated from an encoder (`xtjax.retrieval`).
RETRIEVAL_TASKS = ("tatoeba", "bucc2018", "bucc2018_gold_only", "mewslix", "lareqa")
BUCC_LANGS = ("de", "fr", "ru", "zh")
# Tatoeba's ISO 639-3 file codes (LASER's data/tatoeba/v1, google/xtreme tatoeba.<code>).
TATOEBA_CODES = {
    "af": "afr", "ar": "ara", "az": "aze", "bg": "bul", "bn": "ben", "de": "deu", "el": "ell",
    "es": "spa", "et": "est", "eu": "eus", "fa": "pes", "fi": "fin", "fr": "fra", "he": "heb",
    "hi": "hin", "hu": "hun", "id": "ind", "it": "ita", "ja": "jpn", "jv": "jav", "ka": "kat",
    "kk": "kaz", "ko": "kor", "lt": "lit", "ml": "mal", "mr": "mar", "nl": "nld", "pl": "pol",
    "pt": "por", "ro": "ron", "ru": "rus", "sw": "swh", "ta": "tam", "te": "tel", "th": "tha",
    "tl": "tgl", "tr": "tur", "uk": "ukr", "ur": "urd", "vi": "vie", "zh": "cmn"}


def retrieval_languages(task: str, benchmark: str = "xtreme-r") -> list[str]:
  """A retrieval task's languages: XTREME's, then those ``benchmark`` adds."""
  if task not in RETRIEVAL_TASKS:
    raise ValueError(f"unknown retrieval task {task!r}: use {', '.join(RETRIEVAL_TASKS)}")
  if task == "bucc2018_gold_only":
    return list(BUCC_LANGS)
  langs = list(scoring.TASK_LANGUAGES["xtreme"].get(task, []))
  return langs + [l for l in scoring.TASK_LANGUAGES[benchmark].get(task, []) if l not in langs]
