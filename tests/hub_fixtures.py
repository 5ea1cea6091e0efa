"""Small local mirrors of every hub dataset the XTREME / XTREME-R target tasks read, in the exact
upstream schemas (string PAWS-X labels, UD config names as English language names, TyDiQA's
language as id prefix, UD v2.7's 18-class upos, ...), plus a tokenizer and tiny model trained on
their text. Rows are random but well formed, except the malformed ones listed in ``MALFORMED``.
"""

from __future__ import annotations

import random

import datasets
from ml_collections import ConfigDict

from xtjax.data import synthetic, tasks
from xtjax.phases.demo_assets import write_model

V = datasets.Value
S = datasets.Sequence
NO_SPACES = ("zh", "ja", "th")
# Rows deliberately malformed, per (repo/config/split): the reason the report must give.
MALFORMED = {"google/xtreme/PAWS-X.en/train": "label '2' not in ['0', '1']",
             "google/xtreme/SQuAD/train": "answer not in context"}
UD27_UPOS = ("NOUN", "PUNCT", "ADP", "NUM", "SYM", "SCONJ", "ADJ", "PART", "DET", "CCONJ", "PROPN",
             "PRON", "X", "_", "ADV", "INTJ", "VERB", "AUX")
SQUAD_ANSWERS = S({"text": V("string"), "answer_start": V("int32")})


def _words(lang: str, rng: random.Random, n: int) -> list[str]:
  if lang in NO_SPACES:  # one character per "word", written without spaces
    base = 0x0E01 if lang == "th" else 0x4E00
    return [chr(base + rng.randrange(40)) for _ in range(n)]
  return [f"{lang}{chr(97 + rng.randrange(12))}{chr(97 + rng.randrange(12))}" for _ in range(n)]


def _sentence(lang, rng, n) -> str:
  return ("" if lang in NO_SPACES else " ").join(_words(lang, rng, n))


def _pairs(lang, rng, n, labels):
  return [dict(sentence1=_sentence(lang, rng, 6), sentence2=_sentence(lang, rng, 5),
               label=rng.choice(labels)) for _ in range(n)]


def _tagged(lang, rng, n, num_tags, long_every=0):
  rows = []
  for i in range(n):
    length = 70 if long_every and i % long_every == 0 else rng.randrange(3, 12)
    rows.append(dict(tokens=_words(lang, rng, length),
                     tags=[rng.randrange(num_tags) for _ in range(length)]))
  return rows


def _qa(lang, rng, n, prefix="q"):
  rows = []
  for i in range(n):
    words = _words(lang, rng, rng.randrange(12, 60))
    sep = "" if lang in NO_SPACES else " "
    lo = rng.randrange(len(words) - 3)
    answer = sep.join(words[lo:lo + rng.randrange(1, 4)])
    context = sep.join(words)
    start = context.index(answer) if lang in NO_SPACES else len(sep.join(words[:lo] + [""]))
    rows.append(dict(id=f"{prefix}-{lang}-{i}", title="t", context=context,
                     question=_sentence(lang, rng, 4) + "?",
                     answers={"text": [answer], "answer_start": [start]}))
  return rows


def _copa(lang, rng, n, changed=False):
  rows = [dict(premise=_sentence(lang, rng, 6), choice1=_sentence(lang, rng, 4),
               choice2=_sentence(lang, rng, 4), question=rng.choice(["cause", "effect"]),
               idx=i, label=rng.randrange(2)) for i in range(n)]
  return [dict(r, changed=False) for r in rows] if changed else rows


def _write(root, repo, config, splits, features):
  synthetic.write_hub_config(root / repo, config or "default",
                             {s: datasets.Dataset.from_list(rows, features=features)
                              for s, rows in splits.items()})


def write_mirror(root, *, n_train=48, n_dev=12, n_test=6, seed=0) -> list[str]:
  """Writes every source of `xtjax.data.tasks.TASKS` under ``root`` (a ``data.hub_mirror``);
  returns all text written (for a tokenizer)."""
  rng = random.Random(seed)
  texts = []

  def keep(rows):
    for r in rows:
      texts.extend(str(v) for k, v in r.items() if k in ("sentence1", "sentence2", "premise",
                   "hypothesis", "context", "question", "choice1", "choice2", "answerA"))
      texts.extend(" ".join(r.get(k, [])) for k in ("tokens",))
    return rows

  # MNLI (XNLI's training data) and XNLI.
  mnli = datasets.Features({"premise": V("string"), "hypothesis": V("string"),
                            "label": datasets.ClassLabel(names=list(tasks.NLI_LABELS)),
                            "idx": V("int32")})
  nli = lambda l, n: [dict(premise=r["sentence1"], hypothesis=r["sentence2"], label=r["label"], idx=i)
                      for i, r in enumerate(_pairs(l, rng, n, [0, 1, 2]))]
  _write(root, "nyu-mll/glue", "mnli", {"train": keep(nli("en", n_train)),
                                        "validation_matched": keep(nli("en", n_dev)),
                                        "validation_mismatched": keep(nli("en", n_test))}, mnli)
  xnli = lambda split, n: [dict(sentence1=r["sentence1"], sentence2=r["sentence2"], language=l,
                                gold_label=r["label"])
                           for l in tasks.XNLI_LANGS for r in keep(_pairs(l, rng, n, list(tasks.NLI_LABELS)))]
  _write(root, "google/xtreme", "XNLI", {"test": xnli("test", n_test), "validation": xnli("dev", n_dev)},
         datasets.Features({k: V("string") for k in ("sentence1", "sentence2", "language", "gold_label")}))
  # PAWS-X: labels are the strings "0"/"1"; one English training row has a label outside them.
  paws = datasets.Features({"sentence1": V("string"), "sentence2": V("string"), "label": V("string")})
  for l in tasks.PAWSX_LANGS:
    splits = {"train": _pairs(l, rng, n_train, ["0", "1"]), "validation": _pairs(l, rng, n_dev, ["0", "1"]),
              "test": _pairs(l, rng, n_test, ["0", "1"])}
    if l == "en":
      splits["train"][0]["label"] = "2"
    _write(root, "google/xtreme", f"PAWS-X.{l}", {k: keep(v) for k, v in splits.items()}, paws)
  # UD-POS (v2.5 configs by English name; v2.7 treebanks by code, 18-class upos).
  upos = datasets.Features({"tokens": S(V("string")),
                            "pos_tags": S(datasets.ClassLabel(names=list(tasks.UPOS_TAGS)))})
  for l, name in tasks.UDPOS_NAMES.items():
    make = lambda n: [dict(tokens=r["tokens"], pos_tags=r["tags"])
                      for r in keep(_tagged(l, rng, n, len(tasks.UPOS_TAGS), long_every=5))]
    _write(root, "google/xtreme", f"udpos.{name}",
           {"train": make(n_train), "validation": make(n_dev), "test": make(n_test)}, upos)
  ud27 = datasets.Features({"idx": V("string"), "text": V("string"), "tokens": S(V("string")),
                            "lemmas": S(V("string")),
                            "upos": S(datasets.ClassLabel(names=list(UD27_UPOS))),
                            **{k: S(V("string")) for k in ("xpos", "feats", "head", "deprel",
                                                           "deps", "misc")}})
  for l, treebanks in tasks.UD27_TREEBANKS.items():
    for tb in treebanks:
      rows = []
      for i, r in enumerate(keep(_tagged(l, rng, n_test, len(UD27_UPOS)))):
        n = len(r["tokens"])  # "_" tags are multi-word token lines, as in the hub's UD 2.7
        if i == 0:
          r["tags"][0] = UD27_UPOS.index("_")
        rows.append(dict(idx=f"{tb}-{i}", text=" ".join(r["tokens"]), tokens=r["tokens"],
                         lemmas=r["tokens"], upos=r["tags"],
                         **{k: ["_"] * n for k in ("xpos", "feats", "head", "deprel", "deps", "misc")}))
      _write(root, "universal-dependencies/universal_dependencies", tb, {"test": rows}, ud27)
  # PAN-X (WikiANN): google/xtreme PAN-X.xx, and unimelb-nlp/wikiann for the XTREME-R additions.
  ner = datasets.Features({"tokens": S(V("string")),
                           "ner_tags": S(datasets.ClassLabel(names=list(tasks.NER_TAGS))),
                           "langs": S(V("string"))})
  for l in tasks.PANX_LANGS + tasks.WIKIANN_EXTRA:
    make = lambda n: [dict(tokens=r["tokens"], ner_tags=r["tags"], langs=[l] * len(r["tokens"]))
                      for r in keep(_tagged(l, rng, n, len(tasks.NER_TAGS), long_every=4))]
    if l in tasks.PANX_LANGS:
      _write(root, "google/xtreme", f"PAN-X.{l}",
             {"train": make(n_train), "validation": make(n_dev), "test": make(n_test)}, ner)
    else:
      spans = datasets.Features({**ner, "spans": S(V("string"))})
      _write(root, "unimelb-nlp/wikiann", l,
             {"test": [dict(r, spans=[]) for r in make(n_test)]}, spans)
  # QA: SQuAD (one training answer misaligned), XQuAD, MLQA, TyDiQA-GoldP (language in the id).
  squad = datasets.Features({"id": V("string"), "title": V("string"), "context": V("string"),
                             "question": V("string"), "answers": SQUAD_ANSWERS})
  train = keep(_qa("en", rng, n_train))
  train[0]["answers"] = {"text": [train[0]["answers"]["text"][0]], "answer_start": [10_000]}
  _write(root, "google/xtreme", "SQuAD", {"train": train, "validation": keep(_qa("en", rng, n_dev))}, squad)
  xquad = datasets.Features({k: squad[k] for k in ("id", "context", "question", "answers")})
  for l in tasks.XQUAD_LANGS:
    _write(root, "google/xtreme", f"XQuAD.{l}", {"validation": [
        {k: r[k] for k in xquad} for r in keep(_qa(l, rng, n_test))]}, xquad)
  _write(root, "google/xquad", "xquad.ro",
         {"validation": [{k: r[k] for k in xquad} for r in keep(_qa("ro", rng, n_test))]}, xquad)
  for l in tasks.MLQA_LANGS:
    _write(root, "google/xtreme", f"MLQA.{l}.{l}", {"test": keep(_qa(l, rng, n_test)),
                                                    "validation": keep(_qa(l, rng, n_test))}, squad)
  tydi = lambda n, langs: [r for l in langs for r in keep(_qa(l, rng, n, tasks.TYDIQA_NAMES[l]))]
  _write(root, "google/xtreme", "tydiqa", {"train": tydi(n_train, ["en", "ar", "fi"]),
                                           "validation": tydi(n_test, list(tasks.TYDIQA_NAMES))}, squad)
  # Multiple choice: SocialIQA (labels "1".."3"), SuperGLUE COPA, XCOPA.
  siqa = lambda n: keep([dict(context=_sentence("en", rng, 8), question=_sentence("en", rng, 4) + "?",
                              answerA=_sentence("en", rng, 3), answerB=_sentence("en", rng, 3),
                              answerC=_sentence("en", rng, 3), label=str(rng.randrange(1, 4)))
                         for _ in range(n)])
  _write(root, "allenai/social_i_qa", None, {"train": siqa(n_train), "validation": siqa(n_dev)},
         datasets.Features({k: V("string") for k in ("context", "question", "answerA", "answerB",
                                                     "answerC", "label")}))
  copa = datasets.Features({"premise": V("string"), "choice1": V("string"), "choice2": V("string"),
                            "question": V("string"), "idx": V("int32"),
                            "label": datasets.ClassLabel(names=["choice1", "choice2"])})
  _write(root, "aps/super_glue", "copa", {"train": keep(_copa("en", rng, n_train)),
                                          "validation": keep(_copa("en", rng, n_dev))}, copa)
  xcopa = datasets.Features({"premise": V("string"), "choice1": V("string"), "choice2": V("string"),
                             "question": V("string"), "label": V("int32"), "idx": V("int32"),
                             "changed": V("bool")})
  for l in tasks.XCOPA_LANGS:
    _write(root, "cambridgeltl/xcopa", l, {"validation": keep(_copa(l, rng, n_test, True)),
                                           "test": keep(_copa(l, rng, n_test, True))}, xcopa)
  return texts


def write_assets(root, seed=0) -> tuple[str, str]:
  """``root/hub`` (the mirror) and ``root/model`` (tokenizer + tiny random XLM-R); returns both."""
  texts = write_mirror(root / "hub", seed=seed)
  spec = ConfigDict(dict(vocab_size=1200, hidden_size=32, num_layers=1, num_heads=2,
                         max_positions=128, dropout=0.0, pre_layer_norm=False, seed=seed))
  write_model(texts, root / "model", spec)
  return str(root / "hub"), str(root / "model")


def _leaf(word: str, cat: str) -> str:
  return f"(<L {cat} NN NN {word} {cat}>)"


def write_ccgbank(root, rng: random.Random, per_section: int = 3) -> None:
  """A CCGbank-shaped tree (data/AUTO/<ss>/wsj_<ss>00.auto) with flat two-leaf derivations."""
  cats = ("N", "N/N", "NP", r"(S[dcl]\NP)/NP", "S[dcl]\\NP", ".")
  for section in range(25):
    d = root / "data" / "AUTO" / f"{section:02d}"
    d.mkdir(parents=True, exist_ok=True)
    lines = []
    for k in range(per_section):
      words = _words("en", rng, rng.randrange(2, 6))
      leaves = " ".join(_leaf(w, rng.choice(cats)) for w in words)
      lines += [f"ID=wsj_{section:02d}00.{k + 1} PARSER=GOLD NUMPARSE=1",
                f"(<T S[dcl] 0 {len(words)}> {leaves} )"]
    (d / f"wsj_{section:02d}00.auto").write_text("\n".join(lines) + "\n")


def write_intermediate_mirror(root, *, n_train=48, n_dev=12, seed=1) -> list[str]:
  """The paper's intermediate tasks in their upstream schemas under ``root/hub``, a CCGbank
  tree under ``root/ccgbank`` and MLM text files ``root/mlm/<lang>.txt``; returns the text."""
  rng = random.Random(seed)
  hub, texts = root / "hub", []
  nli = datasets.Features({"premise": V("string"), "hypothesis": V("string"),
                           "label": datasets.ClassLabel(names=list(tasks.NLI_LABELS))})
  pairs = lambda n: [dict(premise=r["sentence1"], hypothesis=r["sentence2"], label=r["label"])
                     for r in _pairs("en", rng, n, [0, 1, 2])]
  snli = pairs(n_train)
  snli[0]["label"] = -1  # SNLI rows without a gold label
  _write(hub, "stanfordnlp/snli", "plain_text", {"train": snli, "validation": pairs(n_dev)}, nli)
  anli = datasets.Features({"uid": V("string"), **nli, "reason": V("string")})
  _write(hub, "facebook/anli", "plain_text",
         {f"{s}_r{r}": [dict(x, uid=f"{s}{r}-{i}", reason="") for i, x in enumerate(pairs(n))]
          for r in (1, 2, 3) for s, n in (("train", n_train // 2), ("dev", n_dev // 3))}, anli)
  qqp = datasets.Features({"question1": V("string"), "question2": V("string"),
                          "label": datasets.ClassLabel(names=["not_duplicate", "duplicate"]),
                          "idx": V("int32")})
  qq = lambda n: [dict(question1=r["sentence1"], question2=r["sentence2"], label=r["label"], idx=i)
                  for i, r in enumerate(_pairs("en", rng, n, [0, 1]))]
  _write(hub, "nyu-mll/glue", "qqp", {"train": qq(n_train), "validation": qq(n_dev)}, qqp)
  squad = datasets.Features({"id": V("string"), "title": V("string"), "context": V("string"),
                             "question": V("string"), "answers": SQUAD_ANSWERS})

  def squad_v2(n):
    rows = _qa("en", rng, n, "v2")
    for r in rows[::3]:  # unanswerable questions
      r["answers"] = {"text": [], "answer_start": []}
    return rows
  _write(hub, "rajpurkar/squad_v2", "squad_v2", {"train": squad_v2(n_train),
                                                 "validation": squad_v2(n_dev)}, squad)
  hella = datasets.Features({"ind": V("int32"), "activity_label": V("string"), "ctx_a": V("string"),
                             "ctx_b": V("string"), "ctx": V("string"), "endings": S(V("string")),
                             "source_id": V("string"), "split": V("string"),
                             "split_type": V("string"), "label": V("string")})
  hs = lambda n, split: [dict(ind=i, activity_label="a", ctx_a=_sentence("en", rng, 6),
                              ctx_b=_sentence("en", rng, 2), ctx="", source_id="s", split=split,
                              split_type="indomain", label=str(rng.randrange(4)),
                              endings=[_sentence("en", rng, 3) for _ in range(4)]) for i in range(n)]
  _write(hub, "Rowan/hellaswag", None, {"train": hs(n_train, "train"), "validation": hs(n_dev, "val")},
         hella)
  cosmos = datasets.Features({"id": V("string"), "context": V("string"), "question": V("string"),
                              **{f"answer{i}": V("string") for i in range(4)}, "label": V("int32")})
  cq = lambda n: [dict(id=str(i), context=_sentence("en", rng, 8), question=_sentence("en", rng, 4),
                       label=rng.randrange(4), **{f"answer{k}": _sentence("en", rng, 3) for k in range(4)})
                  for i in range(n)]
  _write(hub, "allenai/cosmos_qa", None, {"train": cq(n_train), "validation": cq(n_dev)}, cosmos)
  csqa = datasets.Features({"id": V("string"), "question": V("string"),
                            "question_concept": V("string"),
                            "choices": S({"label": V("string"), "text": V("string")}),
                            "answerKey": V("string")})
  cs = lambda n: [dict(id=str(i), question=_sentence("en", rng, 6), question_concept="c",
                       choices={"label": list("ABCDE"), "text": [_sentence("en", rng, 2) for _ in range(5)]},
                       answerKey=rng.choice("ABCDE")) for i in range(n)]
  _write(hub, "tau/commonsense_qa", None, {"train": cs(n_train), "validation": cs(n_dev)}, csqa)
  write_ccgbank(root / "ccgbank", rng)
  (root / "mlm").mkdir(parents=True, exist_ok=True)
  for lang in ("en", "de", "zh"):
    lines = [_sentence(lang, rng, rng.randrange(4, 20)) for _ in range(200)]
    (root / "mlm" / f"{lang}.txt").write_text("\n".join(lines) + "\n")
    texts += lines
  for rows in (snli, ):
    texts += [r["premise"] for r in rows]
  return texts
