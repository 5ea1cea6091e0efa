"""Task kinds as records: everything xtjax does differently for classification, multiple choice,
tagging, extractive QA and masked LM, in one `Kind` each.

A kind says how an upstream row becomes the kind's fields (and why a row is malformed), how
fields become model features, which head predicts them and with what loss, and how logits
become predictions in the leaderboard's form, gold labels in the same form, and the official
scores. Adding a kind is one `register(Kind(...))`; nothing else branches on the kind.

Fields per kind (what `convert` returns):
  classification       text_a, text_b, label (index into ``task.labels``, -1 if none),
                       label_text (the upstream label: the gold the official scorer reads)
  multiple_choice      premise, question, choices (list), label (index of the right choice)
  token_classification tokens (list), tags (indices into ``task.labels``, -1 if none),
                       tag_texts (the upstream tags)
  question_answering   id, question, context, answers ({"text": [...], "answer_start": [...]})
  masked_lm            text

A malformed row still converts as well as it can: training drops it (counted), evaluation keeps
it, so that every test example is predicted and scored as the official scorer would score it.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

import jax.numpy as jnp
import numpy as np
import optax

from xtjax import metrics
from xtjax.data import mlm, qa, tagging
from xtjax.data.tasks import Source, Task
from xtjax.models import heads

IGNORE = tagging.IGNORE


@dataclasses.dataclass(frozen=True)
class Kind:
  """What one task kind needs at every stage, from upstream row to official score.

  - ``fields``: the normalised row's fields with the values a malformed row gets.
  - ``convert(row, source, task, names, training) -> (fields | None, problem)``: ``names`` are
    the ClassLabel names of the source's ``label_field`` column (or None); a malformed row gives
    its best-effort fields (None: the kind's empty ``fields``) and the problem.
  - ``encode(rows, tokenizer, data, *, training, pair) -> features``: ``rows`` are columns as
    lists, ``data`` the phase's data settings; features are numpy arrays, one row per model input.
  - ``targets``: the feature arrays that hold labels (sent to the device in training).
  - ``head``: an nnx module class built as ``head(cfg, num_labels, dtype, rngs)`` and called as
    ``head(encoder, batch, rng) -> logits``.
  - ``loss(logits, batch) -> (loss, {"correct", "count"})``, over rows with ``example_mask``.
  - ``predictions(task, rows, features, logits, data, language, tokenizer)``,
    ``gold(task, rows)``: the leaderboard forms; ``score(task, predicted, gold, language) ->
    {metric: value}``.
  - ``protocol(task, data) -> dict``: the settings that decide this kind's numbers (recorded in
    every evaluation result).
  - ``token_level``: logits per token (`xtjax.predict.predict` pads them to the feature length).
  - ``augment(tokenizer)``: a grain random map applied to training rows (MLM masking), or None.
  - ``has_dev``: False when the kind has no dev metric (a phase of only such tasks keeps its
    last step).
  - ``cut_padding``: training batches may be cut to their longest row (``data.train_buckets``):
    padded positions change neither outputs nor loss. Not for extractive QA, whose softmax spans
    every position of the window, padding included (Hugging Face's and XTREME's run_squad).
  """

  name: str
  fields: Mapping[str, Any]
  convert: Callable
  encode: Callable
  targets: tuple[str, ...]
  head: type
  loss: Callable
  predictions: Callable
  gold: Callable
  score: Callable
  label_field: str = "label"
  protocol: Callable = lambda task, data: {}
  token_level: bool = False
  augment: Callable | None = None
  has_dev: bool = True
  cut_padding: bool = True


KINDS: dict[str, Kind] = {}


def register(kind: Kind) -> Kind:
  KINDS[kind.name] = kind
  return kind


def get(name: str) -> Kind:
  if name not in KINDS:
    raise ValueError(f"unknown task kind {name!r}: xtjax knows {', '.join(sorted(KINDS))}")
  return KINDS[name]


def head_specs(tasks) -> dict[str, tuple[type, int]]:
  """`TaskModel` heads for ``tasks``: {task name: (its kind's head class, number of labels)}."""
  return {t.name: (get(t.kind).head, t.num_labels) for t in tasks}


# --- shared pieces -------------------------------------------------------------------------


def _text(value) -> str | None:
  return value if isinstance(value, str) and value.strip() else None


def _int(value) -> int:
  try:
    return int(value)
  except (TypeError, ValueError):
    return -1


def xent(logits, labels, weights):
  """Mean cross-entropy over positions with weight > 0; labels < 0 count as weight 0."""
  valid = (labels >= 0) & (weights > 0)
  losses = optax.softmax_cross_entropy_with_integer_labels(logits, jnp.where(valid, labels, 0))
  correct = (jnp.argmax(logits, -1) == labels) & valid
  n = valid.sum()
  return (jnp.where(valid, losses, 0.0).sum() / jnp.maximum(n, 1),
          {"correct": correct.sum(), "count": n})


def _row_loss(logits, batch):
  return xent(logits, batch["label"], batch["example_mask"])


def _token_loss(logits, batch):
  return xent(logits, batch["labels"], batch["example_mask"][:, None] * batch["attention_mask"])


def _accuracy(task, predicted, gold, language):
  return {"accuracy": metrics.accuracy(predicted, gold)}


# --- classification -------------------------------------------------------------------------


def _label(raw, names, labels) -> tuple[int, str]:
  """(index into ``labels`` or -1, the label as text)."""
  text = names[raw] if names and isinstance(raw, int) and 0 <= raw < len(names) else raw
  index = {l: i for i, l in enumerate(labels)}
  return index.get(text, -1), str(text)


def _classification_row(row, source: Source, task: Task, names, training):
  a, b = _text(row[source.column("text_a")]), ""
  if source.column("text_b") in row:
    b = _text(row[source.column("text_b")])
  raw = row[source.column("label")]
  label, label_text = _label(raw, names, task.labels)
  fields = {"text_a": a or "", "text_b": b or "", "label": label, "label_text": label_text}
  if a is None or b is None:
    return fields, "missing text"
  if label < 0:
    return fields, f"label {raw!r} not in {list(task.labels)}"
  return fields, ""


def _classification_features(rows, tokenizer, data, *, training, pair):
  enc = tokenizer(rows["text_a"], rows["text_b"] if pair else None, truncation=True,
                  max_length=data.max_length, padding="max_length", return_tensors="np")
  return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"],
          "label": np.asarray(rows["label"])}


register(Kind(
    name="classification",
    fields={"text_a": "", "text_b": "", "label": -1, "label_text": ""},
    convert=_classification_row, encode=_classification_features, targets=("label",),
    head=heads.ClassificationHead, loss=_row_loss,
    predictions=lambda task, rows, features, logits, data, language, tokenizer:
        [task.labels[i] for i in logits.argmax(-1)],
    gold=lambda task, rows: list(rows["label_text"]), score=_accuracy))


# --- multiple choice ------------------------------------------------------------------------

# jiant's COPA wording for the connective (the question column holds "cause" or "effect").
COPA_QUESTIONS = {"cause": "What was the cause of this?", "effect": "What happened as a result?"}


def _choice_fields(row, source: Source, task: Task):
  """(premise, question, choices, raw label, label index) of one multiple-choice row."""
  if source.layout == "hellaswag":  # context ctx_a; each choice continues ctx_b (as jiant)
    choices = [f"{row['ctx_b']} {e}".strip() for e in row["endings"]]
    return row["ctx_a"], "", choices, row["label"], _int(row["label"])
  if source.layout == "commonsenseqa":  # the question is the context; answerKey is a letter
    keys = list(row["choices"]["label"])
    index = keys.index(row["answerKey"]) if row["answerKey"] in keys else -1
    return row["question"], "", list(row["choices"]["text"]), row["answerKey"], index
  choices = [row[source.column(f"choice{i + 1}")] for i in range(task.num_labels)]
  question = row[source.column("question")] if source.column("question") in row else ""
  raw = row[source.column("label")]
  label = _int(raw)
  return (row[source.column("premise")], question, choices, raw,
          label - source.label_offset if label >= 0 else -1)


def _multiple_choice_row(row, source: Source, task: Task, names, training):
  premise, question, choices, raw, label = _choice_fields(row, source, task)
  n = task.num_labels
  fields = {"premise": _text(premise) or "", "question": question or "",
            "choices": [_text(c) or "" for c in list(choices)[:n]] + [""] * (n - len(choices)),
            "label": label if 0 <= label < n else -1}
  if _text(premise) is None or len(choices) != n or any(_text(c) is None for c in choices):
    return fields, "missing text"
  if not 0 <= label < n:
    return fields, f"label {raw!r} not a choice index"
  return fields, ""


def mc_first_segment(premise: str, question: str, data) -> str:
  """The first segment of a multiple-choice input: ``data.mc_prompt`` formatted with
  ``{premise}``, ``{question}`` (the row's question; COPA's connective in jiant's wording) and
  ``{connective}`` (COPA's "cause" or "effect" as the data has it)."""
  return data.mc_prompt.format(premise=premise, question=COPA_QUESTIONS.get(question, question),
                               connective=question).strip()


def _multiple_choice_features(rows, tokenizer, data, *, training, pair):
  n = len(rows["choices"][0]) if rows["choices"] else 0
  firsts = [mc_first_segment(p, q, data) for p, q in zip(rows["premise"], rows["question"])
            for _ in range(n)]
  seconds = [c for choices in rows["choices"] for c in choices]
  enc = tokenizer(firsts, seconds, truncation=True, max_length=data.max_length,
                  padding="max_length", return_tensors="np")
  return {"input_ids": enc["input_ids"].reshape(len(rows["label"]), n, -1),
          "attention_mask": enc["attention_mask"].reshape(len(rows["label"]), n, -1),
          "label": np.asarray(rows["label"])}


register(Kind(
    name="multiple_choice",
    fields={"premise": "", "question": "", "choices": [], "label": -1},
    convert=_multiple_choice_row, encode=_multiple_choice_features, targets=("label",),
    head=heads.MultipleChoiceHead, loss=_row_loss,
    predictions=lambda task, rows, features, logits, data, language, tokenizer:
        [int(i) for i in logits.argmax(-1)],
    gold=lambda task, rows: list(rows["label"]), score=_accuracy,
    protocol=lambda task, data: {"mc_prompt": data.mc_prompt}))


# --- token classification -------------------------------------------------------------------


def _tagging_row(row, source: Source, task: Task, names, training):
  tokens, raw = list(row[source.column("tokens")]), list(row[source.column("tags")])
  pairs = [_label(t, names, task.labels) for t in raw]
  if source.skip_tags and len(pairs) == len(tokens):  # multi-word token lines (UD "_")
    kept = [i for i, (_, text) in enumerate(pairs) if text not in source.skip_tags]
    tokens, pairs = [tokens[i] for i in kept], [pairs[i] for i in kept]
  tags = [i for i, _ in pairs]
  problem = tagging.check_row(tokens, tags, task.num_labels)
  n = len(tokens)  # a gold tag per token, whatever the row holds
  fields = {"tokens": [t or "" for t in tokens], "tags": (tags + [-1] * n)[:n],
            "tag_texts": ([t for _, t in pairs] + ["_"] * n)[:n]}
  return fields, problem


def _tagging_predictions(task, rows, features, logits, data, language, tokenizer):
  tags = tagging.decode(features, logits, [len(t) for t in rows["tokens"]])
  return [[task.labels[t] for t in sentence] for sentence in tags]


def _tagging_protocol(task, data):
  """UD-POS: the official UD 2.5 archive read as XTREME does, or the hub's approximation."""
  if task.name != "udpos":
    return {}
  return {"udpos_source": "ud_dir (XTREME's treebank selection)" if data.get("ud_dir") else
          "hub udpos.<Name> (approximate: merges every treebank of a language name, e.g. "
          "Ancient Greek into Greek; set data.ud_dir for XTREME's test sets)"}


register(Kind(
    name="token_classification", fields={"tokens": [], "tags": [], "tag_texts": []},
    convert=_tagging_row,
    encode=lambda rows, tokenizer, data, *, training, pair:
        tagging.encode(rows["tokens"], rows["tags"], tokenizer, data.max_length),
    targets=("labels",), head=heads.TokenClassificationHead, loss=_token_loss,
    predictions=_tagging_predictions, gold=lambda task, rows: list(rows["tag_texts"]),
    score=lambda task, predicted, gold, language: metrics.tagging_scores(gold, predicted),
    label_field="tags", protocol=_tagging_protocol, token_level=True))


# --- extractive QA --------------------------------------------------------------------------


def _qa_row(row, source: Source, task: Task, names, training):
  fields = {k: row[k] for k in ("id", "question", "context", "answers")}
  fields.update(question=fields["question"] or "", context=fields["context"] or "")
  if not _text(fields["question"]) or not _text(fields["context"]):
    return fields, "missing text"
  if not training:  # answers are the gold texts; their positions only matter for training
    if not fields["answers"]["text"] and not task.null_answers:
      raise ValueError(f"{source.describe()}: question {fields['id']!r} has no answer, which the "
                       "official scorer cannot score (SQuAD v1.1 gold needs one per question): "
                       "fix the data, or evaluate a task with unanswerable questions (squad_v2)")
    return fields, ""
  answers = fields["answers"]
  problem = qa.answer_problem(fields["context"], answers, require_answer=not task.null_answers)
  if not problem and answers["text"] and not qa.answer_in_words(
      fields["context"], answers["answer_start"][0], answers["text"][0]):
    problem = "answer not within the context's whitespace words (XTREME drops it)"
  return fields, problem


def _qa_features(rows, tokenizer, data, *, training, pair):
  make = qa.train_features if training else qa.eval_features
  try:
    return make(rows, tokenizer, max_length=data.max_length, stride=data.doc_stride,
                max_query_length=data.max_query_length)
  except ValueError as e:
    if "stride" not in str(e):
      raise
    raise ValueError(f"data.doc_stride {data.doc_stride} leaves no room for the context at "
                     f"data.max_length {data.max_length}: use max_length 384 with stride 128 "
                     "(XTREME), or a smaller stride") from None


def _qa_loss(logits, batch):
  ls, ms = xent(logits[..., 0], batch["start_position"], batch["example_mask"])
  le, me = xent(logits[..., 1], batch["end_position"], batch["example_mask"])
  return (ls + le) / 2, {k: ms[k] + me[k] for k in ms}


def _qa_predictions(task, rows, features, logits, data, language, tokenizer):
  # SQuAD v2: "" when the null score beats the best span.
  return qa.decode(rows["context"], rows["id"], features, logits[..., 0], logits[..., 1],
                   null_score_diff_threshold=0.0 if task.null_answers else None,
                   postprocess=data.qa_postprocess, language=language, tokenizer=tokenizer)


def _qa_score(task, predicted, gold, language):
  """SQuAD v1.1 (XQuAD, TyDiQA), MLQA's per-language normalisation, or SQuAD v2.0."""
  if task.null_answers:
    return metrics.qa_scores(predicted, gold, version_2=True)
  return metrics.qa_scores(predicted, gold, language if task.name == "mlqa" else None)


register(Kind(
    name="question_answering",
    fields={"id": "", "question": "", "context": "",
            "answers": {"text": [], "answer_start": []}},
    convert=_qa_row, encode=_qa_features, targets=("start_position", "end_position"),
    head=heads.QuestionAnsweringHead, loss=_qa_loss, predictions=_qa_predictions,
    gold=lambda task, rows: {i: a["text"] for i, a in zip(rows["id"], rows["answers"])},
    score=_qa_score, token_level=True, cut_padding=False,
    protocol=lambda task, data: {"qa_postprocess": data.qa_postprocess,
                                 "doc_stride": data.doc_stride,
                                 "max_query_length": data.max_query_length}))


# --- masked language modelling --------------------------------------------------------------


def _no_scores(*args):
  raise ValueError("masked_lm has no dev or test metric: evaluate the encoder on a task instead")


register(Kind(
    name="masked_lm", fields={"text": ""},
    convert=lambda row, source, task, names, training:
        ({"text": row["text"] or ""}, "" if _text(row["text"]) else "missing text"),
    encode=lambda rows, tokenizer, data, *, training, pair:
        mlm.mlm_features(rows["text"], tokenizer, data.max_length),
    targets=("labels",), head=heads.MaskedLMHead, loss=_token_loss,
    predictions=_no_scores, gold=_no_scores, score=_no_scores, token_level=True,
    augment=mlm.MaskTokens.from_tokenizer, has_dev=False))
