"""Generated data in the exact Hugging Face hub schemas and layouts, and a tiny XLM-R tokenizer.

NLI design: an example is an abstract set of facts (who has how many objects of which colour),
rendered in every language (XNLI-style parallel data). The label depends only on anchors that
languages share, person names and digits: entailment restates a premise fact; contradiction
gives that person 0 or another number; neutral adds a second object (with its own number) or
speaks of someone absent. The digit-marked forms make most labels learnable from the hypothesis
alone, as MNLI's annotation artifacts do; the rest need comparing hypothesis and premise.
Verbs, nouns, colours and function words come from made-up lexicons: Latin-script languages
borrow cognates of the English words (de most, fr/es less, others little); the rest use fresh
words in their own script, transliterated names and their own word order (SOV, VSO, noun-adj);
ar, ur and hi write numbers in their own numerals (zh in half of the examples), so they share
few or no anchors with English.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import random
from pathlib import Path

import datasets
import pyarrow.parquet as pq
import yaml
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

from xtjax.data.tasks import NLI_LABELS

_NAMES = ("Anna", "Ben", "Carla", "David", "Elena", "Felix", "Greta", "Hugo")
_NUMBERS = tuple(str(n) for n in range(2, 10))
_VERBS = ("has", "owns", "keeps", "holds")
_NOUNS = ("apples", "books", "cats", "dogs", "cars", "chairs", "pens", "cups", "hats", "boxes",
          "birds", "lamps", "shoes", "keys", "coins", "plates")
_COLOURS = ("red", "blue", "green", "black", "white", "yellow", "brown", "grey")
_FILLERS = ("today", "yesterday", "now", "still")
_WORDS = _VERBS + _NOUNS + _COLOURS + _FILLERS + ("and", "exactly")


@dataclasses.dataclass(frozen=True)
class _Language:
  kinship: float  # share of words that are cognates of the English word
  suffixes: tuple[str, ...] = ("",)  # cognate endings
  letters: str = "bdfgklmnprstvz"  # consonants of fresh words
  script: int = 0  # first code point of the script a..z map onto; 0 keeps Latin
  order: str = "svo"  # svo, sov (verb last) or vso (verb first)
  adj_after: bool = False  # noun-adjective order
  numerals: str = ""  # the language's own numerals 0..9, used instead of ASCII digits ...
  native: float = 1.0  # ... in this share of the examples


_LANGUAGES = {
    "en": _Language(1.0),
    "de": _Language(0.8, ("e", "en", "er"), "bdfgklmnrstwz"),
    "fr": _Language(0.6, ("e", "es", "eur"), "bcdfjlmnprstv", adj_after=True),
    "es": _Language(0.6, ("o", "a", "os"), "bcdfglmnprst", adj_after=True),
    "vi": _Language(0.2, ("", "h"), "bcdghklmnpqtx", adj_after=True),
    "sw": _Language(0.2, ("i", "a"), "bdgjkmnstwz", order="svo"),
    "tr": _Language(0.2, ("ler", "lar"), "bcdgkmnprstyz", order="sov"),
    "ru": _Language(0.3, ("y", "a", "ov"), "bdgklmnprstvz", 0x430),
    "bg": _Language(0.3, ("i", "a", "ove"), "bdgklmnprstvz", 0x430),
    "el": _Language(0.1, ("os", "a"), "dgklmnprst", 0x3B1),
    "ar": _Language(0.0, letters="bdfhjklmnqrst", script=0x628, order="vso", adj_after=True,
                    numerals="٠١٢٣٤٥٦٧٨٩"),
    "ur": _Language(0.0, letters="bdghjklmnprst", script=0x628, order="sov",
                    numerals="۰۱۲۳۴۵۶۷۸۹"),
    "hi": _Language(0.0, letters="bdghjklmnprst", script=0x915, order="sov",
                    numerals="०१२३४५६७८९"),
    "th": _Language(0.0, letters="bdgklmnprstw", script=0xE01, adj_after=True),
    "zh": _Language(0.0, letters="bcdfghjklmnpqrstwxz", script=0x4E00, numerals="〇一二三四五六七八九",
                    native=0.5),
}


def _transliterate(word: str, script: int) -> str:
  if not script:
    return word
  return "".join(chr(script + ord(c) - ord("a")) if "a" <= c <= "z" else c for c in word.lower())


@functools.cache
def _lexicon(language: str) -> dict[str, str]:
  """The language's word for each English word and name (fixed: it does not depend on any seed)."""
  if language not in _LANGUAGES:
    raise ValueError(f"no synthetic lexicon for language {language!r}: "
                     f"choose from {', '.join(_LANGUAGES)}")
  lang = _LANGUAGES[language]
  lexicon, used = {}, set()
  for word in _WORDS:
    rng = random.Random(f"{language}/{word}")
    new = word if language == "en" else None
    if new is None and rng.random() < lang.kinship:
      new = word[:max(3, len(word) - 1)] + rng.choice(lang.suffixes)
    while new is None or new in used:
      syllables = rng.randint(2, 3)
      new = "".join(rng.choice(lang.letters) + rng.choice("aeiou") for _ in range(syllables))
    used.add(new)
    lexicon[word] = _transliterate(new, lang.script)
  for name in _NAMES:
    lexicon[name] = _transliterate(name, lang.script)
  return lexicon


# Share of contradiction and neutral pairs marked by digits, the anchors every language shares
# (like the annotation artifacts of MNLI hypotheses); the rest need premise-hypothesis comparison.
_CUE = 0.9


def _sample(rng: random.Random, label: int, max_facts: int) -> dict:
  """An abstract premise/hypothesis pair with the given label (index into NLI_LABELS)."""
  k = rng.randint(1, max_facts)
  names, numbers, nouns = rng.sample(_NAMES, k + 1), rng.sample(_NUMBERS, k), rng.sample(_NOUNS, k)
  facts = [dict(name=names[j], number=numbers[j], noun=nouns[j], verb=rng.choice(_VERBS),
                colour=rng.choice(_COLOURS)) for j in range(k)]
  target = dict(rng.choice(facts), verb=rng.choice(_VERBS))
  cued = rng.random() < _CUE
  if NLI_LABELS[label] == "contradiction" and cued:
    target["number"] = "0"  # "Anna has 0 apples" contradicts "Anna has 5 apples"
  elif NLI_LABELS[label] == "contradiction":
    others = [n for n in numbers if n != target["number"]]
    pool = others if others and rng.random() < 0.5 else [n for n in _NUMBERS if n not in numbers]
    target["number"] = rng.choice(pool)
  elif NLI_LABELS[label] == "neutral" and cued:  # a second object the premise says nothing of
    target["extra"] = (rng.choice(_NUMBERS), rng.choice([n for n in _NOUNS if n != target["noun"]]))
  elif NLI_LABELS[label] == "neutral":
    target["name"] = names[k]
    if rng.random() < 0.5:
      target["number"] = rng.choice(_NUMBERS)
    if rng.random() < 0.3:
      target["noun"] = rng.choice(_NOUNS)
  if rng.random() < 0.5:
    target["colour"] = None
  target["exactly"] = rng.random() < 0.3
  filler = rng.choice(_FILLERS) if rng.random() < 0.4 else None
  return dict(facts=facts, hypothesis=target, filler=filler, numerals=rng.random())


def _clause(fact: dict, lexicon: dict[str, str], lang: _Language, native: bool) -> str:
  noun = [lexicon[fact["noun"]]]
  if fact.get("colour"):
    noun = noun + [lexicon[fact["colour"]]] if lang.adj_after else [lexicon[fact["colour"]]] + noun
  number = lambda n: "".join(lang.numerals[int(d)] for d in n) if native else n
  obj = ([lexicon["exactly"]] if fact.get("exactly") else []) + [number(fact["number"])] + noun
  if fact.get("extra"):
    obj += [lexicon["and"], number(fact["extra"][0]), lexicon[fact["extra"][1]]]
  name, verb = lexicon[fact["name"]], lexicon[fact["verb"]]
  words = {"svo": [name, verb, *obj], "sov": [name, *obj, verb], "vso": [verb, name, *obj]}
  return " ".join(words[lang.order])


def _render(example: dict, language: str) -> tuple[str, str]:
  lexicon, lang = _lexicon(language), _LANGUAGES[language]
  native = bool(lang.numerals) and example["numerals"] < lang.native
  clauses = [_clause(f, lexicon, lang, native) for f in example["facts"]]
  premise = clauses[-1] if len(clauses) == 1 else (
      ", ".join(clauses[:-1]) + f" {lexicon['and']} " + clauses[-1])
  if example["filler"]:
    premise = f"{lexicon[example['filler']]} {premise}"
  return premise + " .", _clause(example["hypothesis"], lexicon, lang, native) + " ."


def _examples(n: int, rng: random.Random, max_facts: int) -> list[tuple[dict, int]]:
  labels = [i % len(NLI_LABELS) for i in range(n)]
  rng.shuffle(labels)
  return [(_sample(rng, label, max_facts), label) for label in labels]


# libyaml when available: mirrors with many configs rewrite README.md once per config.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_YAML_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def write_hub_config(repo_dir, config_name: str, splits: dict[str, datasets.Dataset]) -> dict:
  """Writes one config of a hub-style dataset repo: ``<config>/<split>-00000-of-00001.parquet``
  files and its ``configs``/``dataset_info`` entries in README.md (other configs are kept)."""
  repo_dir = Path(repo_dir)
  (repo_dir / config_name).mkdir(parents=True, exist_ok=True)
  files = {}
  for split, ds in splits.items():
    files[split] = f"{config_name}/{split}-00000-of-00001.parquet"
    pq.write_table(ds.with_format("arrow")[:], repo_dir / files[split])
  readme = repo_dir / "README.md"
  meta = {}
  if readme.exists():
    meta = yaml.load(readme.read_text().split("---")[1], Loader=_YAML_LOADER) or {}
  features = next(iter(splits.values())).features
  info = dict(config_name=config_name, features=features._to_yaml_list(),
              splits=[dict(name=s, num_bytes=ds.data.nbytes, num_examples=len(ds))
                      for s, ds in splits.items()])
  config = dict(config_name=config_name,
                data_files=[dict(split=s, path=p) for s, p in files.items()])
  for key, entry in (("dataset_info", info), ("configs", config)):
    meta[key] = [e for e in meta.get(key, []) if e["config_name"] != config_name] + [entry]
    meta[key].sort(key=lambda e: e["config_name"])
  readme.write_text(f"---\n{yaml.dump(meta, Dumper=_YAML_DUMPER, sort_keys=False)}---\n\n"
                    f"Synthetic local mirror written by xtjax.data.synthetic.\n")
  return {split: str(repo_dir / path) for split, path in files.items()}


MNLI_FEATURES = datasets.Features({
    "premise": datasets.Value("string"), "hypothesis": datasets.Value("string"),
    "label": datasets.ClassLabel(names=list(NLI_LABELS)), "idx": datasets.Value("int32")})
XNLI_FEATURES = datasets.Features({
    "sentence1": datasets.Value("string"), "sentence2": datasets.Value("string"),
    "language": datasets.Value("string"), "gold_label": datasets.Value("string")})


def write_nli_mirror(root, *, languages=("en", "de", "fr", "es", "ru"), n_train: int = 12000,
                     n_dev: int = 300, n_test: int = 300, max_facts: int = 1,
                     seed: int = 0, translate: bool = False) -> dict:
  """Writes synthetic MNLI (``root/nyu-mll/glue``, config mnli: English train and both validation
  splits, n_dev rows each) and XNLI (``root/google/xtreme``, config XNLI: n_dev validation and
  n_test test rows per language, parallel across languages), each split from its own seed.
  Premises state 1..max_facts facts; more than one makes the task much harder to learn. With
  ``translate``, also the MNLI train set in every other language (``root/facebook/xnli``, config
  <lang>, split train, in MNLI's columns: the layout of XNLI-MT on the hub): the same examples
  rendered in each language, i.e. translations by a perfect translation system."""
  languages = tuple(languages)
  for language in languages:
    _lexicon(language)
  root = Path(root)
  rngs = [random.Random(f"{seed}/{split}") for split in range(5)]

  def mnli(n, rng, language="en", examples=None):
    examples = examples or _examples(n, rng, max_facts)
    rows = [(*_render(ex, language), label) for ex, label in examples]
    return datasets.Dataset.from_dict(
        {"premise": [r[0] for r in rows], "hypothesis": [r[1] for r in rows],
         "label": [r[2] for r in rows], "idx": list(range(n))}, features=MNLI_FEATURES)

  def xnli(n, rng):
    examples = _examples(n, rng, max_facts)
    rows = [(*_render(ex, lang), lang, NLI_LABELS[label])
            for lang in languages for ex, label in examples]
    return datasets.Dataset.from_dict(
        {name: [r[j] for r in rows] for j, name in enumerate(XNLI_FEATURES)},
        features=XNLI_FEATURES)

  train = _examples(n_train, rngs[0], max_facts)
  glue = write_hub_config(root / "nyu-mll" / "glue", "mnli", {
      "train": mnli(n_train, None, examples=train), "validation_matched": mnli(n_dev, rngs[1]),
      "validation_mismatched": mnli(n_dev, rngs[2])})
  translated = [l for l in languages if l != "en"] if translate else []
  for language in translated:  # XNLI-MT's columns: MNLI's without idx
    rows = mnli(n_train, None, language, examples=train).remove_columns("idx")
    write_hub_config(root / "facebook" / "xnli", language, {"train": rows})
  xtreme = write_hub_config(root / "google" / "xtreme", "XNLI", {
      "validation": xnli(n_dev, rngs[3]), "test": xnli(n_test, rngs[4])})
  return {"mnli": {"path": str(root / "nyu-mll" / "glue"), "config": "mnli", "files": glue,
                   "sizes": {"train": n_train, "validation_matched": n_dev,
                             "validation_mismatched": n_dev}},
          "xnli": {"path": str(root / "google" / "xtreme"), "config": "XNLI", "files": xtreme,
                   "sizes_per_language": {"validation": n_dev, "test": n_test}},
          "languages": languages, "max_facts": max_facts, "seed": seed,
          "translations": {"path": str(root / "facebook" / "xnli"), "languages": translated}}


def write_texts(root, *, languages, n: int = 2000, max_facts: int = 2, seed: int = 0) -> dict:
  """``root/<lang>.txt``: n generated sentences per language, one per line (monolingual text,
  not parallel: each language from its own seed), e.g. for the mlm task's data.mlm_sources."""
  root = Path(root)
  root.mkdir(parents=True, exist_ok=True)
  files = {}
  for language in languages:
    rng = random.Random(f"{seed}/text/{language}")
    files[language] = str(root / f"{language}.txt")
    Path(files[language]).write_text("".join(_render(ex, language)[0] + "\n"
                                             for ex, _ in _examples(n, rng, max_facts)),
                                     encoding="utf-8")
  return files


XLMR_SPECIALS = ("<s>", "<pad>", "</s>", "<unk>")


def train_tokenizer(texts, out_dir, *, vocab_size: int = 2000) -> int:
  """Trains a Unigram tokenizer laid out like XLM-R's (<s>=0 <pad>=1 </s>=2 <unk>=3, <mask> last,
  RoBERTa pair template) and saves it so ``AutoTokenizer.from_pretrained(out_dir)`` loads it.
  Returns the vocabulary size, <mask> included."""

  tok = Tokenizer(models.Unigram())
  tok.pre_tokenizer = pre_tokenizers.Sequence([
      pre_tokenizers.WhitespaceSplit(),
      pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")])
  tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
  trainer = trainers.UnigramTrainer(vocab_size=vocab_size - 1, special_tokens=list(XLMR_SPECIALS),
                                    unk_token="<unk>", show_progress=False)
  texts = list(texts)
  # The trainer seeds only substrings found in two or more distinct words, so on a small closed
  # vocabulary whole words could never become pieces; each word also appears once doubled.
  words = sorted({w for text in texts for w in text.split()})
  tok.train_from_iterator(texts + [w + w for w in words], trainer=trainer)
  tok.add_special_tokens(["<mask>"])
  tok.post_processor = processors.TemplateProcessing(
      single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>",
      special_tokens=[("<s>", 0), ("</s>", 2)])
  out_dir = Path(out_dir)
  out_dir.mkdir(parents=True, exist_ok=True)
  tok.save(str(out_dir / "tokenizer.json"))
  config = dict(tokenizer_class="XLMRobertaTokenizer", bos_token="<s>", eos_token="</s>",
                sep_token="</s>", cls_token="<s>", unk_token="<unk>", pad_token="<pad>",
                mask_token="<mask>", add_prefix_space=True, model_max_length=512)
  (out_dir / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
  (out_dir / "special_tokens_map.json").write_text(json.dumps(
      {k: config[k] for k in ("bos_token", "eos_token", "sep_token", "cls_token", "unk_token",
                              "pad_token", "mask_token")}, indent=2) + "\n")
  return tok.get_vocab_size()


def _parallel(n: int, rng: random.Random, language: str) -> list[tuple[str, str]]:
  """(sentence in ``language``, its English translation) for n generated facts."""
  return [(_render(ex, language)[0], _render(ex, "en")[0])
          for ex, _ in _examples(n, rng, max_facts=2)]


TATOEBA_FEATURES = datasets.Features({k: datasets.Value("string") for k in (
    "source_sentence", "target_sentence", "source_lang", "target_lang")})


def write_retrieval_data(hub_root, bucc_root, *, languages, tatoeba_codes: dict, n_pairs: int = 100,
                         n_distractors: int = 100, seed: int = 0) -> dict:
  """Tatoeba (``google/xtreme`` ``tatoeba.<xxx>``: translation pairs, English as target) for each
  language, and BUCC 2018 for de/fr/ru/zh among them: the official archive layout under
  ``bucc_root/bucc2018`` (n_pairs gold translations hidden among n_distractors unrelated
  sentences per side, shuffled) and the hub's gold-only ``bucc18.<lang>`` configs."""
  written = {"tatoeba": [], "bucc2018": []}
  for language in languages:
    if language == "en":
      continue
    rng = random.Random(f"{seed}/retrieval/{language}")
    pairs = _parallel(n_pairs, rng, language)
    code = tatoeba_codes[language]
    write_hub_config(Path(hub_root) / "google" / "xtreme", f"tatoeba.{code}", {
        "validation": datasets.Dataset.from_dict(
            {"source_sentence": [p[0] for p in pairs], "target_sentence": [p[1] for p in pairs],
             "source_lang": [code] * n_pairs, "target_lang": ["eng"] * n_pairs},
            features=TATOEBA_FEATURES)})
    written["tatoeba"].append(language)
    if language not in ("de", "fr", "ru", "zh"):
      continue
    hub_splits = {}
    for name, hub_split in (("sample", "validation"), ("training", "test")):
      gold = _parallel(n_pairs, rng, language)
      src = [g[0] for g in gold] + [s for s, _ in _parallel(n_distractors, rng, language)]
      trg = [g[1] for g in gold] + [t for _, t in _parallel(n_distractors, rng, language)]
      src_order, trg_order = rng.sample(range(len(src)), len(src)), rng.sample(range(len(trg)), len(trg))
      src_id = {i: f"{language}-{k:09d}" for k, i in enumerate(src_order)}
      trg_id = {i: f"en-{k:09d}" for k, i in enumerate(trg_order)}
      folder = Path(bucc_root) / "bucc2018" / f"{language}-en"
      folder.mkdir(parents=True, exist_ok=True)
      prefix = folder / f"{language}-en.{name}"
      Path(f"{prefix}.{language}").write_text("".join(f"{src_id[i]}\t{src[i]}\n" for i in src_order))
      Path(f"{prefix}.en").write_text("".join(f"{trg_id[i]}\t{trg[i]}\n" for i in trg_order))
      Path(f"{prefix}.gold").write_text("".join(f"{src_id[i]}\t{trg_id[i]}\n" for i in range(n_pairs)))
      hub_splits[hub_split] = datasets.Dataset.from_dict(
          {"source_sentence": [g[0] for g in gold], "target_sentence": [g[1] for g in gold],
           "source_lang": [src_id[i] for i in range(n_pairs)],
           "target_lang": [trg_id[i] for i in range(n_pairs)]}, features=TATOEBA_FEATURES)
    write_hub_config(Path(hub_root) / "google" / "xtreme", f"bucc18.{language}", hub_splits)
    written["bucc2018"].append(language)
  return written
