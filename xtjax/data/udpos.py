"""UD-POS as XTREME builds it: the official Universal Dependencies releases, selected and converted
the way google-research/xtreme's data pipeline does.

``load_udpos(ud_dir, lang, split)`` reads ``ud-treebanks-v2.5`` (``ud-treebanks-v2.7`` for
XTREME-R's lt pl ro uk wo), extracted or as the release's ``.tgz``, from ``ud_dir``:

- Selection (``scripts/download_data.sh`` ``download_treebank``, lines 61-98): every
  ``<release>/*/*.conllu`` whose file name starts with ``<lang>_``, so ``el`` is el_gdt alone
  (not grc_*, Ancient Greek) and ``zh`` never holds lzh_* (Classical Chinese); orv, fro and gsw
  are other languages too. A language's files are read in file-name order and assigned to a split
  by ``train``, else ``dev``, else ``test`` in the name (``utils_preprocess.py`` lines 267-285).
- Conversion (``third_party/ud-conversion-tools/conllu_to_conll.py
  --replace_subtokens_with_fused_forms``, ``lib/conll.py``): comments and empty nodes (ids with
  a dot) are dropped; each multi-word token becomes one token, its surface form (es "del"),
  tagged with the UPOS of its span head: the span word with the fewest ancestors in the graph of
  basic and enhanced (DEPS) heads, ties broken by a per-language UPOS precedence (es, fr, it, or
  the default list). ``--print_fused_forms`` prints nothing once the spans are replaced.
- Preprocessing (``utils_preprocess.py`` ``udpos_preprocess``): forms and tags are stripped,
  sentences whose forms are all, or all but one, ``_`` (text withheld, e.g. en_esl, ja_bccwj)
  are dropped, and U+200C and spaces are deleted inside forms ("Hà Nội" -> "HàNội").
- Reading back (``udpos_tokenize_preprocess``, lines 147-152): each ``form<TAB>tag`` line is
  split on any whitespace, so a form holding another space character (U+00A0 ...) keeps its
  first piece, with the tag ``X``.

Where upstream's converter raises on a file (a tie among span heads whose UPOS is not in the
precedence list, a sentence without tokens, a word whose HEAD is not an id, a line without 10
columns), the shell loop goes on without that file; it is left out here too, with a warning.
The converter's re-attachment of dependents changes no form or tag and is not reproduced; nor
are its failures on graphs whose cycles leave a span word headless.
"""

from __future__ import annotations

import logging
import tarfile
from pathlib import Path
from typing import NamedTuple

import datasets

from xtjax.data.tasks import UPOS_TAGS

log = logging.getLogger(__name__)

# download_data.sh line 66 (UD 2.5, XTREME) and line 70 (UD 2.7, XTREME-R's additions).
UD_LANGUAGES = {
    "2.5": ("af", "ar", "bg", "de", "el", "en", "es", "et", "eu", "fa", "fi", "fr", "he", "hi",
            "hu", "id", "it", "ja", "kk", "ko", "mr", "nl", "pt", "ru", "ta", "te", "th", "tl",
            "tr", "ur", "vi", "yo", "zh"),
    "2.7": ("lt", "pl", "uk", "wo", "ro")}
UD_URLS = {"2.5": "https://lindat.mff.cuni.cz/repository/xmlui/bitstream/handle/11234/1-3105/"
                  "ud-treebanks-v2.5.tgz",
           "2.7": "https://lindat.mff.cuni.cz/repository/xmlui/bitstream/handle/11234/1-3424/"
                  "ud-treebanks-v2.7.tgz"}
SPLITS = {"train": "train", "validation": "dev", "test": "test"}  # hub split -> file name part
# conllu_to_conll.py lines 28-33: span-head UPOS precedence by --lang (the file's code prefix).
_PRECEDENCE = {
    "default": ("VERB", "NOUN", "PROPN", "PRON", "ADJ", "NUM", "ADV", "INTJ", "AUX", "ADP", "DET",
                "PART", "CCONJ", "SCONJ", "X", "PUNCT"),
    "es": ("VERB", "AUX", "PRON", "ADP", "DET"),
    "fr": ("VERB", "AUX", "PRON", "NOUN", "ADJ", "ADV", "ADP", "DET", "PART", "SCONJ", "CONJ"),
    "it": ("VERB", "AUX", "ADV", "PRON", "ADP", "DET", "INTJ")}
_ZWNJ = "\u200c"
FEATURES = datasets.Features({
    "tokens": datasets.Sequence(datasets.Value("string")),
    "pos_tags": datasets.Sequence(datasets.ClassLabel(names=list(UPOS_TAGS)))})


class _Unconvertible(Exception):
  """A file upstream's converter crashes on (and so leaves out of XTREME's data)."""


class _Word(NamedTuple):
  form: str
  upos: str
  heads: tuple[int, ...]  # the basic head, then enhanced heads with integer ids


class _Sentence(NamedTuple):
  words: dict[int, _Word]
  spans: list[tuple[int, int, str]]  # multi-word tokens: first id, last id, surface form


def version_of(lang: str) -> str:
  """The UD release XTREME reads ``lang`` from."""
  for version, langs in UD_LANGUAGES.items():
    if lang in langs:
      return version
  known = ", ".join(l for langs in UD_LANGUAGES.values() for l in langs)
  raise ValueError(f"UD-POS has no language {lang!r}: use one of {known}")


def _release_files(ud_dir: Path, version: str, lang: str) -> dict[str, str]:
  """File name -> text of each CoNLL-U file of ``lang`` in the release (folder or .tgz)."""
  folder, archive = ud_dir / f"ud-treebanks-v{version}", ud_dir / f"ud-treebanks-v{version}.tgz"
  mine = lambda name: name.endswith(".conllu") and name.split("_", 1)[0] == lang
  if folder.is_dir():
    return {p.name: p.read_text(encoding="utf-8") for p in folder.glob("*/*.conllu")
            if mine(p.name)}
  if archive.is_file():
    with tarfile.open(archive) as tar:
      return {Path(m.name).name: tar.extractfile(m).read().decode("utf-8") for m in tar
              if m.isfile() and len(Path(m.name).parts) == 3 and mine(Path(m.name).name)}
  raise FileNotFoundError(
      f"data.ud_dir {ud_dir} holds neither ud-treebanks-v{version}/ nor "
      f"ud-treebanks-v{version}.tgz: download {UD_URLS[version]} into it (XTREME's "
      f"scripts/download_data.sh), extracted or not")


def _split_of(name: str) -> str | None:
  """utils_preprocess.py lines 277-284 on the converted file's name."""
  name = name.replace("conllu", "conll", 1)
  return next((s for s in ("train", "dev", "test") if s in name), None)


def _word(cols: list[str], number: int) -> _Word:
  """lib/conll.py parse_id/parse_deps: the basic head, then enhanced heads that are integers. A
  word without an integer head becomes a None node, on which the converter's sort fails."""
  if not cols[6].isdigit():
    raise _Unconvertible(f"line {number}: HEAD {cols[6]!r} is not a word id")
  enhanced = [] if cols[8] == "_" else [d.split(":")[0] for d in cols[8].split("|")]
  return _Word(cols[1], cols[3], tuple(int(h) for h in [cols[6]] + enhanced if h.isdigit()))


def _parse(text: str) -> list[_Sentence]:
  """Sentences of a CoNLL-U file, each closed by an empty line (lib/conll.py read_conll_u)."""
  lines = text.split("\n")
  if lines[-1] == "":
    lines.pop()  # the text after the last "\n" is a line only when not empty
  sentences, words, spans = [], {}, []
  for number, line in enumerate(lines, 1):
    if not line:
      sentences.append(_Sentence(words, spans))
      words, spans = {}, []
    elif not line.startswith("#"):
      cols = line.split("\t")
      if len(cols) != 10:
        raise _Unconvertible(f"line {number} has {len(cols)} columns, not 10")
      if "-" in cols[0]:
        first, last = cols[0].split("-")
        spans.append((int(first), int(last), cols[1]))
      elif "." not in cols[0]:  # empty nodes are skipped
        words[int(cols[0])] = _word(cols, number)
  return sentences


def _ancestors(sentence: _Sentence, node: int) -> int:
  """How many nodes reach ``node`` in the graph of basic and enhanced heads."""
  seen, todo = set(), [node]
  while todo:
    word = sentence.words.get(todo.pop())
    for head in word.heads if word else ():
      if head not in seen:
        seen.add(head)
        todo.append(head)
  seen.discard(node)
  return len(seen)


def _span_head(sentence: _Sentence, first: int, last: int, precedence) -> int:
  """lib/conll.py _choose_spanhead_from_heuristics: the one highest word, or the highest words'
  first best by ``precedence`` (a UPOS missing from it is upstream's ValueError)."""
  if any(i not in sentence.words for i in range(first, last + 1)):
    raise _Unconvertible(f"span {first}-{last} covers ids that are not words")
  depth = {i: _ancestors(sentence, i) for i in range(first, last + 1)}
  highest = [i for i in depth if depth[i] == min(depth.values())]
  if len(highest) == 1:
    return highest[0]
  missing = [sentence.words[i].upos for i in highest if sentence.words[i].upos not in precedence]
  if missing:
    raise _Unconvertible(f"span {first}-{last}: tied heads with UPOS {missing[0]} outside the "
                         "converter's precedence list")
  return min(highest, key=lambda i: precedence.index(sentence.words[i].upos))


def _convert(sentence: _Sentence, precedence) -> list[tuple[str, str]]:
  """(form, UPOS) per token, each multi-word token fused onto its span head."""
  if not sentence.words:
    raise _Unconvertible("a sentence without tokens")
  fused, dropped = {}, set()
  for first, last, form in sentence.spans:
    head = _span_head(sentence, first, last, precedence)
    fused[head] = form
    dropped.update(set(range(first, last + 1)) - {head})
  return [(fused.get(i, w.form), w.upos) for i, w in sorted(sentence.words.items())
          if i not in dropped]


def _preprocess(tokens: list[tuple[str, str]]) -> list[tuple[str, str]] | None:
  """udpos_preprocess and the read-back of its .tsv lines; None for a dropped sentence."""
  forms = [f.strip() for f, _ in tokens]
  withheld = forms.count("_")
  if withheld and withheld >= len(forms) - 1:
    return None
  out = []
  for form, (_, tag) in zip(forms, tokens):
    joined = "".join(form.replace(_ZWNJ, "").split(" "))
    items = f"{joined}\t{tag.strip()}".strip().split()
    out.append((items[0], items[1] if len(items) == 2 else "X"))
  return out


def _file_sentences(text: str, lang: str) -> list[list[tuple[str, str]]]:
  precedence = _PRECEDENCE.get(lang, _PRECEDENCE["default"])
  converted = [_convert(s, precedence) for s in _parse(text)]
  return [s for s in map(_preprocess, converted) if s is not None]


def load_udpos(ud_dir: str | Path, lang: str, split: str) -> datasets.Dataset:
  """XTREME's UD-POS sentences of ``lang`` and ``split`` (train, validation or test) with the
  hub's ``udpos.*`` columns: ``tokens`` and ``pos_tags`` (ClassLabel over the 17 UPOS tags)."""
  if split not in SPLITS:
    raise ValueError(f"UD-POS split {split!r}: use {', '.join(SPLITS)}")
  version = version_of(lang)
  files = _release_files(Path(ud_dir), version, lang)
  names = sorted(n for n in files if _split_of(n) == SPLITS[split])
  if not names:
    raise ValueError(f"UD {version} has no {SPLITS[split]} data for {lang} (its files: "
                     f"{', '.join(sorted(files)) or 'none'})")
  tokens, tags = [], []
  for name in names:
    try:
      sentences = _file_sentences(files[name], lang)
    except _Unconvertible as e:
      log.warning("UD %s file %s left out, as XTREME's conllu_to_conll.py fails on it: %s",
                  version, name, e)
      continue
    for sentence in sentences:
      bad = [t for _, t in sentence if t not in UPOS_TAGS]
      if bad:
        raise ValueError(f"UD {version} file {name}: tag {bad[0]!r} is not one of the 17 UPOS "
                         "tags")
      tokens.append([f for f, _ in sentence])
      tags.append([t for _, t in sentence])
  return datasets.Dataset.from_dict({"tokens": tokens, "pos_tags": tags}, features=FEATURES)
