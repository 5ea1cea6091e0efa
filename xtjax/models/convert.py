"""Names of XLM-R weights in Hugging Face checkpoints and in xtjax, and the mapping between them.

One table serves both directions. xtjax paths are '/'-joined NNX state paths such as
``encoder/layers/3/attention/query/kernel``; PyTorch Linear weights are stored [out, in] and
transposed on the way in and out. A head's weights map to ``heads/<name>/...``.
"""

from __future__ import annotations

import functools
import re

# (Hugging Face name without the "roberta." prefix, xtjax path under encoder/, transpose)
_SHARED = [
    ("embeddings.word_embeddings.weight", "embeddings/word_embeddings/embedding", False),
    ("embeddings.position_embeddings.weight", "embeddings/position_embeddings/embedding", False),
    ("embeddings.token_type_embeddings.weight", "embeddings/token_type_embeddings/embedding", False),
] + [
    (f"encoder.layer.{{i}}.attention.self.{n}.{w}", f"layers/{{i}}/attention/{n}/{x}", w == "weight")
    for n in ("query", "key", "value") for w, x in (("weight", "kernel"), ("bias", "bias"))
] + [
    (f"encoder.layer.{{i}}.{hf}.{w}", f"layers/{{i}}/{ours}/{x}", w == "weight")
    for hf, ours in (("attention.output.dense", "attention/output"),
                     ("intermediate.dense", "intermediate"), ("output.dense", "output"))
    for w, x in (("weight", "kernel"), ("bias", "bias"))
]
_LN = lambda hf, ours: [(f"{hf}.weight", f"{ours}/scale", False), (f"{hf}.bias", f"{ours}/bias", False)]
ENCODER_POST_LN = _SHARED + _LN("embeddings.LayerNorm", "embeddings/layer_norm") + _LN(
    "encoder.layer.{i}.attention.output.LayerNorm", "layers/{i}/attention_norm") + _LN(
        "encoder.layer.{i}.output.LayerNorm", "layers/{i}/ffn_norm")
ENCODER_PRE_LN = _SHARED + _LN(
    "encoder.layer.{i}.attention.self_attn_layer_norm", "layers/{i}/attention_norm") + _LN(
        "encoder.layer.{i}.LayerNorm", "layers/{i}/ffn_norm") + _LN("encoder.LayerNorm", "final_norm")

_LINEAR = lambda hf, ours: [(f"{hf}.weight", f"{ours}/kernel", True), (f"{hf}.bias", f"{ours}/bias", False)]
# Head weights per head kind: (Hugging Face name, xtjax path under heads/<name>/, transpose).
HEADS = {
    "classification": _LINEAR("classifier.dense", "dense") + _LINEAR("classifier.out_proj", "out_proj"),
    "token_classification": _LINEAR("classifier", "classifier"),
    "multiple_choice": _LINEAR("roberta.pooler.dense", "pooler") + _LINEAR("classifier", "classifier"),
    "question_answering": _LINEAR("qa_outputs", "qa_outputs"),
    "masked_lm": _LINEAR("lm_head.dense", "dense") + _LN("lm_head.layer_norm", "layer_norm")
                 + [("lm_head.bias", "bias", False)],
}
# Present in Hugging Face checkpoints but not needed: the unused pooler, the tied MLM decoder.
IGNORED = re.compile(r"^(roberta\.)?pooler\.|^lm_head\.decoder\.|(^|\.)position_ids$")


@functools.lru_cache(maxsize=None)
def _pattern(template: str) -> re.Pattern:
  return re.compile("^" + re.escape(template).replace(re.escape("{i}"), r"(?P<i>\d+)") + "$")


def encoder_table(pre_layer_norm: bool):
  return ENCODER_PRE_LN if pre_layer_norm else ENCODER_POST_LN


def to_ours(hf_name: str, *, pre_layer_norm: bool, head: tuple[str, str] | None = None):
  """Maps a Hugging Face weight name to (xtjax path, transpose), or None if it is not ours.

  ``head`` is (head name, head kind) when the checkpoint is a task model (ForSequenceClassification
  and friends) whose head should become ``heads/<name>``.
  """
  if head is not None:
    for hf, ours, t in HEADS[head[1]]:
      if hf_name == hf:
        return f"heads/{head[0]}/{ours}", t
  body = hf_name[len("roberta."):] if hf_name.startswith("roberta.") else hf_name
  for hf, ours, t in encoder_table(pre_layer_norm):
    m = _pattern(hf).match(body)
    if m:
      return "encoder/" + ours.format(**m.groupdict()), t
  return None


def to_hf(path: str, *, pre_layer_norm: bool, head_kinds: dict[str, str]):
  """Maps an xtjax path to (Hugging Face name, transpose); heads use ``head_kinds[name]``."""
  if path.startswith("heads/"):
    _, name, rest = path.split("/", 2)
    for hf, ours, t in HEADS[head_kinds[name]]:
      if rest == ours:
        return hf, t
    raise KeyError(f"head parameter {path} has no Hugging Face name")
  rest = path[len("encoder/"):]
  for hf, ours, t in encoder_table(pre_layer_norm):
    m = _pattern(ours).match(rest)
    if m:
      return hf.format(**m.groupdict()), t
  raise KeyError(f"encoder parameter {path} has no Hugging Face name")
