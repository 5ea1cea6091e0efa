"""Mewsli-X and LAReQA (XTREME-R): ranking a fixed multilingual candidate pool, scored by mAP@20.

- Mewsli-X, from the files of ``get-mewsli-x.sh`` in ``data.mewslix_dir``: queries are the
  WikiNews mentions of ``wikinews_mentions-{dev,test}.jsonl`` (one sentence of context, the mention
  marked ``{ ... }`` and prepended, as ``utils_mewslix.preprocess_mention``), candidates the entity
  descriptions of ``candidate_set_entities.jsonl``; gold is the mention's entity. Fine-tuning pairs:
  ``wikipedia_pairs-{train,dev}.jsonl``.
- LAReQA, from ``data.lareqa_dir/xquad-r/<lang>.json``: queries are the questions of each language,
  candidates every sentence (with its paragraph appended) of the paragraphs that have a question,
  over all languages present; a question's targets are its answer sentences in every language
  (``utils_lareqa.load_data``). Fine-tuning pairs: SQuAD v1.1 questions with their answer sentence
  and paragraph (``processors/lareqa.py``), sentences split by upstream's ``sb_sed`` rules.

Both sides are encoded (max length 64 for Mewsli-X; 96 for LAReQA questions, 256 for answers),
L2-normalised and ranked by inner product, top 20 (faiss ``IndexFlatIP`` upstream, `knn` here).
Predictions are ``{example id: [candidate ids]}``, scored per language by `xtjax.metrics`.
Texts are lower-cased by default, as upstream's XLM-R scripts pass ``--do_lower_case``.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections import defaultdict
from pathlib import Path
from typing import Callable, Iterator

import jax
import numpy as np

from xtjax import scoring
from xtjax.data import utf8
from xtjax.metrics import lareqa_map, mewslix_map
from xtjax.retrieval.encoder import Encoder
from xtjax.retrieval.search import knn

MEWSLIX_LANGUAGES = ("ar", "de", "en", "es", "fa", "ja", "pl", "ro", "ta", "tr", "uk")
LAREQA_LANGUAGES = ("ar", "de", "el", "en", "es", "hi", "ru", "th", "tr", "vi", "zh")
RANKING_TASKS = ("mewslix", "lareqa")
TOP_K = 20
# (query, candidate) max lengths: run_eval_mewslix.sh, run_eval_lareqa.sh.
MAX_LENGTHS = {"mewslix": (64, 64), "lareqa": (96, 256)}
_MARKED = re.compile(r"\{(.*?)\}")  # upstream escapes pre-existing markers: {x} -> (x)
_SPACES = " \t\r\n\u202f"  # processors/lareqa.py _is_whitespace

Encode = Callable[[list[str]], np.ndarray]


@dataclasses.dataclass
class Ranking:
  """Queries per language (example ids, texts), their gold candidate ids, the candidate pool."""
  queries: dict[str, tuple[list[str], list[str]]]
  gold: dict[str, dict[str, list[str]]]
  candidate_ids: list[str]
  candidate_texts: list[str]


@dataclasses.dataclass
class Pairs:
  """Fine-tuning pairs: query texts, candidate texts, and each candidate's second segment (LAReQA's
  paragraph) or None."""
  queries: list[str]
  candidates: list[str]
  contexts: list[str] | None = None


def _normalize(text: str) -> str:
  """Upstream's cleanup: newlines to spaces, one pass of double spaces to one, stripped."""
  return " ".join(text.splitlines()).replace("  ", " ").strip()


def entity_text(entity: dict) -> str:
  """An entity's description sentences joined by spaces (``preprocess_entity_description``)."""
  d = entity["description"]
  return _normalize(" ".join(d[s["start"]:s["end"]] for s in entity["sentence_spans"]))


def mention_query(context: dict, mention: dict) -> str:
  """``mention: left { mention } right`` over the sentence holding the mention
  (``preprocess_mention``)."""
  text, span = context["text"], mention["mention_span"]
  start, end, surface = span["start"], span["end"], span["text"]
  if text[start:end] != surface:
    raise ValueError(f"Mewsli-X mention {mention['example_id']}: span text {surface!r} is not "
                     f"{text[start:end]!r} at [{start}:{end}] of its context")
  sentence = next(((s["start"], s["end"]) for s in context["sentence_spans"]
                   if s["start"] <= start < s["end"] and s["start"] < end <= s["end"]), None)
  if sentence is None:
    raise ValueError(f"Mewsli-X mention {mention['example_id']} lies in no single sentence")
  left = _MARKED.sub(r"(\1)", text[sentence[0]:start])
  right = _MARKED.sub(r"(\1)", text[end:sentence[1]])
  return _normalize(f"{surface}: {left} {{ {surface} }} {right}")


def _check_languages(task: str, languages, known: tuple[str, ...]) -> list[str]:
  languages = list(languages or known)
  unknown = [l for l in languages if l not in known]
  if unknown:
    raise ValueError(f"unknown language(s) {unknown} for {task}: it has {', '.join(known)}")
  return languages


def mewslix_file(data_dir, name: str) -> Path:
  path = Path(data_dir or "") / name
  if not data_dir or not path.exists():
    raise FileNotFoundError(
        f"Mewsli-X file {name} is missing{f' from {data_dir}' if data_dir else ''}: run "
        "get-mewsli-x.sh (google-research/google-research, dense_representations_for_entity_"
        "retrieval/mel) and set data.mewslix_dir to its mewsli_x/output/dataset directory")
  return path


def _jsonl(path: Path) -> Iterator[dict]:
  for line in utf8.read_lines(path):
    if line.strip():
      yield json.loads(line)


def read_mewslix(data_dir, split: str = "test", languages=None) -> Ranking:
  """The WikiNews mentions of ``split`` (dev or test) in ``languages`` against every entity."""
  languages = _check_languages("mewslix", languages, MEWSLIX_LANGUAGES)
  ids, texts = [], []
  for entity in _jsonl(mewslix_file(data_dir, "candidate_set_entities.jsonl")):
    ids.append(entity["entity_id"])
    texts.append(entity_text(entity))
  queries = {l: ([], []) for l in languages}
  gold = {l: {} for l in languages}
  name = f"wikinews_mentions-{split}.jsonl"
  for doc in _jsonl(mewslix_file(data_dir, name)):
    lang = doc["context"]["language"]
    if lang in queries:
      for mention in doc["mentions"]:
        queries[lang][0].append(mention["example_id"])
        queries[lang][1].append(mention_query(doc["context"], mention))
        gold[lang][mention["example_id"]] = [mention["entity_id"]]
  empty = [l for l in languages if not queries[l][0]]
  if empty:
    raise ValueError(f"{name} has no mentions in language(s) {empty}")
  return Ranking(queries, gold, ids, texts)


def mewslix_pairs(data_dir, split: str) -> Pairs:
  """(mention query, entity description) pairs of ``wikipedia_pairs-{split}.jsonl`` (English)."""
  queries, candidates = [], []
  for pair in _jsonl(mewslix_file(data_dir, f"wikipedia_pairs-{split}.jsonl")):
    cm = pair["contextual_mention"]
    queries.append(mention_query(cm["context"], cm["mention"]))
    candidates.append(entity_text(pair["entity"]))
  return Pairs(queries, candidates)


def read_lareqa(data_dir, languages=None) -> Ranking:
  """The questions of ``languages`` against the pool of every ``xquad-r/<lang>.json`` present.

  Ids as upstream: question ``<question id>_<lang>``, candidate ``<lang>_<paragraph>_<sentence>``
  (paragraphs counted from 1 per language). A question whose answer starts in no sentence is
  dropped; a paragraph adds its sentences when its first kept question is read."""
  languages = _check_languages("lareqa", languages, LAREQA_LANGUAGES)
  root = Path(data_dir or "") / "xquad-r"
  present = sorted(p.stem for p in root.glob("*.json")) if data_dir else []
  missing = [l for l in languages if l not in present]
  if missing:
    raise FileNotFoundError(
        f"LAReQA file(s) {', '.join(f'xquad-r/{l}.json' for l in missing)} missing"
        f"{f' from {data_dir}' if data_dir else ''}: download github.com/google-research-datasets/"
        "lareqa and set data.lareqa_dir to the directory holding xquad-r/")
  cand_ids, cand_texts, targets = [], [], defaultdict(list)
  queries, xling = {l: ([], []) for l in languages}, {}
  for lang in present:
    with open(root / f"{lang}.json", encoding="utf-8") as f:
      squad = json.load(f)
    paragraphs = 0
    for article in squad["data"]:
      for paragraph in article["paragraphs"]:
        paragraphs += 1
        context, breaks = paragraph["context"], paragraph["sentence_breaks"]
        sentences = [context[s:e] for s, e in breaks]
        first = None  # position of the paragraph's first sentence in the pool, once added
        for qa in paragraph["qas"]:
          if len(qa["answers"]) != 1:
            raise ValueError(f"xquad-r/{lang}.json question {qa['id']}: expected one answer, "
                             f"found {len(qa['answers'])}")
          at = qa["answers"][0]["answer_start"]
          answer = next((context[s:e] for s, e in breaks if s <= at < e), None)
          if not answer:
            continue
          if first is None:
            first = len(cand_ids)
            cand_ids += [f"{lang}_{paragraphs}_{i}" for i in range(len(sentences))]
            cand_texts += [(s + context).replace("\n", "").strip() for s in sentences]
          targets[qa["id"]] += [cand_ids[first + i] for i, s in enumerate(sentences) if s == answer]
          if lang in queries:
            uid = f"{qa['id']}_{lang}"
            queries[lang][0].append(uid)
            queries[lang][1].append(qa["question"].strip())
            xling[uid] = qa["id"]
  gold = {l: {uid: targets[xling[uid]] for uid in queries[l][0]} for l in languages}
  return Ranking(queries, gold, cand_ids, cand_texts)


# processors/sb_sed.py: sentence breaks as regex substitutions that turn a space into a newline
# (splits) or back (joins); every rule keeps the text's length, so offsets stay valid.
_SENTENCE_RULES = [(re.compile(p), r) for p, r in (
    (r"""([.?!][)'" \u201d]*)\s(\s*[\['"(\u201c]?[A-Z0-9])""", r"\1\n\2"),
    (r"""([.?!]['"]?)((\[[a-zA-Z0-9 ?]+\])+)\s(\s*['"(]?[A-Z0-9])""", r"\1\2\n\4"),
    (r"(\[\.\.\.\]\s*)\s(\[?[A-Z])", r"\1\n\2"),
    (r"\b(Mrs?|Ms|Dr|Prof|Fr|Rev|Msgr|Sta?)\.\n", r"\1. "),
    (r"\b(Lt|Gen|Col|Maj|Adm|Capt|Sgt|Rep|Gov|Sen|Pres)\.\n", r"\1. "),
    (r"\b(e\.g|i\.?e|vs?|pp?|cf|a\.k\.a|approx|app|es[pt]|tr)\.\n", r"\1. "),
    (r"\b(Jan|Aug|Oct|Nov|Dec)\.\n", r"\1. "),
    (r"\b(Mt|Ft)\.\n", r"\1. "),
    (r"\b([ap]\.m)\.\n(Eastern|EST)\b", r"\1. \2"),
    (r'\b([A-Z]\.)[ \n]([A-Z]\.)[ \n]([A-Z]\.)[ \n]("?[A-Z][a-z])', r"\1 \2 \3 \4"),
    (r'\b([A-Z]\.)[ \n]([A-Z]\.)[ \n]("?[A-Z][a-z])', r"\1 \2 \3"),
    (r'\b([A-Z]\.[A-Z]\.)\n("?[A-Z][a-z])', r"\1 \2"),
    (r'\b([A-Z]\.)\n("?[A-Z][a-z])', r"\1 \2"),
    (r"""([.!?]['")]*) (The|This|That|These|It) """, r"\1\n\2 "),
    (r"(\.) (Meanwhile|However)", r"\1\n\2"),
    (r"(\.) (In|On|By|During|After|Under|Although|Yet|As |Several|According to) ", r"\1\n\2 "),
    (r"\b([Aa]rt|[Nn]o|Opp?|ch|Sec|cl|Rec|Ecl|Cor|Lk|Jn|Vol)\.\n([0-9IVX]+)\b", r"\1. \2"),
    (r"\b([bdrc]|ca|fl)\.\n([A-Z0-9])", r"\1. \2"),
    (r"\b(et al)\.\n(\(?[0-9]{4}\b)", r"\1. \2"),
    (r"\b(H\.R\.)\n([0-9])", r"\1 \2"),
    (r"(I Am\.\.\.)\n(Sasha Fierce|World Tour)", r"\1 \2"),
    (r"(Warner Bros\.)\n(Records|Entertainment)", r"\1 \2"),
    (r"(U\.S\.)\n(\(?\d\d+)", r"\1 \2"),
    (r"\b(Rs\.)\n(\d)", r"\1 \2"),
    (r"\b(Jay Z\.) ([A-Z])", r"\1\n\2"),
    (r"\b(Washington, D\.C\.) ([A-Z])", r"\1\n\2"),
    (r"\b(for 4\.\)) ([A-Z])", r"\1\n\2"),
    (r"\b(Wii U\.) ([A-Z])", r"\1\n\2"),
    (r"\. (iPod|iTunes)", r".\n\1"),
    (r" (\[\.\.\.\]\n)", r"\n\1"),
    (r"(\.Sc\.)\n", r"\1 "),
    (r" (\u2022 [A-Z])", r"\n\1"))]


def sentence_breaks(text: str) -> list[tuple[int, int]]:
  """(start, end) of each sentence of a SQuAD paragraph (``sb_sed.infer_sentence_breaks``)."""
  broken = text.replace("\n", " ")
  for pattern, replacement in _SENTENCE_RULES:
    broken = pattern.sub(replacement, broken)
  starts = [m.end() for m in re.finditer(r"^\s*", broken, re.M)]
  return [(s, s + len(line.strip())) for s, line in zip(starts, broken.split("\n"))]


def _word_index(context: str) -> tuple[list[str], list[int]]:
  """Whitespace words of ``context`` and, per character, the index of its word."""
  words, word_of, after_space = [], [], True
  for ch in context:
    if ch in _SPACES:
      after_space = True
    else:
      if after_space:
        words.append(ch)
      else:
        words[-1] += ch
      after_space = False
    word_of.append(len(words) - 1)
  return words, word_of


def squad_pairs(rows) -> Pairs:
  """(question, answer sentence + paragraph) of SQuAD rows (id, question, context, answers), first
  answer only; a row is skipped when its answer starts in no sentence or its words do not hold the
  answer text (``RetrievalSquadProcessor``)."""
  pairs, context, cached = Pairs([], [], []), None, ()
  for row in rows:
    if row["context"] != context:  # a paragraph's questions come together
      context = row["context"]
      cached = (sentence_breaks(context), *_word_index(context))
    breaks, words, word_of = cached
    text, at = row["answers"]["text"][0], row["answers"]["answer_start"][0]
    end = at + len(text) - 1
    sentence = next((context[s:e] for s, e in breaks if s <= at < e), "")
    if sentence and text and end < len(context) and (
        " ".join(text.split()) in " ".join(words[word_of[at]:word_of[end] + 1])):
      pairs.queries.append(row["question"])
      pairs.candidates.append(sentence)
      pairs.contexts.append(context)
  return pairs


def rank(encode_query: Encode, encode_candidate: Encode, data: Ranking, *, lower_case: bool = True,
         mesh=None) -> dict[str, dict[str, list[str]]]:
  """Per language, ``{example id: [top-20 candidate ids]}`` by cosine similarity."""
  prepare = (lambda texts: [t.lower() for t in texts]) if lower_case else list
  candidates = encode_candidate(prepare(data.candidate_texts))
  languages = list(data.queries)
  vectors = encode_query(prepare([t for l in languages for t in data.queries[l][1]]))
  _, top = knn(vectors, candidates, min(TOP_K, len(data.candidate_ids)), mesh=mesh)
  out, at = {}, 0
  for lang in languages:
    ids = data.queries[lang][0]
    out[lang] = {q: [data.candidate_ids[j] for j in top[at + i]] for i, q in enumerate(ids)}
    at += len(ids)
  return out


def _score(task: str, data: Ranking, predictions) -> tuple[dict, dict]:
  metric = mewslix_map if task == "mewslix" else lareqa_map
  per_lang = {l: metric(predictions[l], data.gold[l], k=TOP_K) for l in data.queries}
  return {"map@20": per_lang, "avg_map@20": float(np.mean(list(per_lang.values())))}, predictions


def evaluate_mewslix(encode_query: Encode, encode_candidate: Encode, data_dir, languages=None, *,
                     split: str = "test", lower_case: bool = True, mesh=None) -> tuple[dict, dict]:
  """(scores ``{"map@20": {lang: v}, "avg_map@20": v}``, predictions ``{lang: {id: [QIDs]}}``)."""
  data = read_mewslix(data_dir, split, languages)
  return _score("mewslix", data, rank(encode_query, encode_candidate, data,
                                      lower_case=lower_case, mesh=mesh))


def evaluate_lareqa(encode_query: Encode, encode_candidate: Encode, data_dir, languages=None, *,
                    lower_case: bool = True, mesh=None) -> tuple[dict, dict]:
  """As `evaluate_mewslix`, for the XQuAD-R questions against the multilingual sentence pool."""
  data = read_lareqa(data_dir, languages)
  return _score("lareqa", data, rank(encode_query, encode_candidate, data,
                                     lower_case=lower_case, mesh=mesh))


def data_dir(run, data, task: str) -> str | None:
  """``data.mewslix_dir`` or ``data.lareqa_dir``, ``{run_dir}`` resolved."""
  return run.path(data.get(f"{task}_dir"))


def at_length(encoder, max_length: int) -> Encode:
  """texts -> [n, d] from a one-layer `Encoder`, truncating at ``max_length`` tokens."""
  limit = encoder.run.model_cfg.max_position_embeddings - 2

  def encode(texts):
    encoder.max_length = min(max_length, limit)
    return encoder(texts)[:, 0]
  return encode


def evaluate_phase(run, task: str, from_phase: str, *, languages=None, out_dir, data=None,
                   batch_size: int = 128, lower_case: bool | None = None) -> dict:
  """``task`` scored from ``from_phase``'s encoder (<s> of the last layer), test predictions
  written under ``out_dir/predictions``; the result has `evaluate_retrieval`'s layout.
  ``lower_case`` defaults to what the phase was fine-tuned with (else True, as upstream)."""
  if task not in RANKING_TASKS:
    raise ValueError(f"unknown ranking task {task!r}: use {', '.join(RANKING_TASKS)}")
  data = data or run.data
  if lower_case is None:
    done = run.result(from_phase)
    lower_case = done.details.get("lower_case", True) if done else True
  layer = run.model_cfg.num_hidden_layers
  encoder = Encoder(run, from_phase, [layer], pooling="cls", batch_size=batch_size)
  q_len, c_len = MAX_LENGTHS[task]
  evaluate = evaluate_mewslix if task == "mewslix" else evaluate_lareqa
  scores, predictions = evaluate(at_length(encoder, q_len), at_length(encoder, c_len),
                                 data_dir(run, data, task), languages, lower_case=lower_case,
                                 mesh=run.mesh)
  if jax.process_index() == 0:
    for lang, predicted in predictions.items():
      scoring.write_predictions(task, lang, predicted, out_dir / "predictions")
  langs = list(scores["map@20"])
  return {"task": task, "from_phase": from_phase, "languages": langs, "layer": layer,
          "pooling": "cls", "lower_case": lower_case, "metrics": {"map@20": scores["map@20"]},
          "avg_map@20": scores["avg_map@20"],
          "layers": {str(layer): {"avg_map@20": scores["avg_map@20"], "map@20": scores["map@20"]}}}
