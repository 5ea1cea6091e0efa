"""Zero-shot evaluation throughput: xtjax with length buckets against Hugging Face PyTorch padding
every row to the maximum length (as the XTREME scripts do), and against xtjax without buckets.

    python benchmarks/eval_throughput.py --quick
    python benchmarks/eval_throughput.py --preset base --examples 128

Two tasks, as zero-shot evaluation runs them: XNLI (sentence-pair classification, 15 languages,
maximum length 128) and XQuAD (extractive QA, 11 languages, 384-token windows with a 128-token
doc stride). Lengths are synthetic but realistic: English lengths drawn from log-normals with
the medians of the real data (XNLI pairs ~40 sub-words, XQuAD questions ~14 and contexts ~170),
scaled per language by the XLM-R tokenizer's fertility relative to English on parallel text
(FERTILITY, approximate; `xtjax bench` measures it on the real test sets). Token ids are random.
Each side runs the same model (random init) over every row once per round after a warm-up
round that compiles; rounds alternate the sides. Throughput counts real (unpadded) tokens.
The last line printed is one JSON object.
"""

from __future__ import annotations

import common

if __name__ == "__main__":
  common.setup_process()

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402

import jax  # noqa: E402
import numpy as np  # noqa: E402

from train_throughput import PRESETS  # noqa: E402
from xtjax.config import base_config  # noqa: E402
from xtjax.data import batches  # noqa: E402
from xtjax.models.heads import ClassificationHead, QuestionAnsweringHead, TaskModel  # noqa: E402
from xtjax.params import Model  # noqa: E402
from xtjax.steps import compiler_options  # noqa: E402

# Sub-words per English sub-word on parallel text (XLM-R SentencePiece), approximate.
FERTILITY = {"en": 1.0, "ar": 1.2, "bg": 1.15, "de": 1.15, "el": 1.3, "es": 1.1, "fr": 1.15,
             "hi": 1.2, "ru": 1.15, "sw": 1.25, "th": 1.2, "tr": 1.2, "ur": 1.2, "vi": 1.2,
             "zh": 1.0}
XNLI = ("ar", "bg", "de", "el", "en", "es", "fr", "hi", "ru", "sw", "th", "tr", "ur", "vi", "zh")
XQUAD = ("ar", "de", "el", "en", "es", "hi", "ru", "th", "tr", "vi", "zh")
BUCKETS = tuple(base_config().data.eval_buckets)  # xtjax's default


@dataclasses.dataclass(frozen=True)
class EvalTask:
  name: str
  head: type
  num_labels: int
  max_length: int
  languages: tuple


TASKS = (EvalTask("xnli", ClassificationHead, 3, 128, XNLI),
         EvalTask("xquad", QuestionAnsweringHead, 2, 384, XQUAD))


def lognormal(rng, median: float, n: int, sigma: float = 0.4) -> np.ndarray:
  return rng.lognormal(np.log(median), sigma, n)


def row_lengths(task: EvalTask, examples: int, rng) -> np.ndarray:
  """Model-input lengths (special tokens included) of ``examples`` rows per language."""
  out = []
  for lang in task.languages:
    f = FERTILITY[lang]
    if task.name == "xnli":  # <s> premise </s></s> hypothesis </s>
      out.extend(np.minimum(4 + f * lognormal(rng, 36, examples), task.max_length))
      continue
    questions = np.maximum(3, f * lognormal(rng, 14, examples, 0.3)).astype(int)
    contexts = np.maximum(10, f * lognormal(rng, 170, examples)).astype(int)
    for q, c in zip(questions, contexts):  # windows over the context, 128 tokens apart
      room = task.max_length - q - 4
      out += [q + 4 + min(room, c - start) for start in range(0, max(1, c - room + 128), 128)]
  return np.asarray(out, int)


def features(lengths: np.ndarray, max_length: int, vocab: int, rng) -> dict:
  mask = (np.arange(max_length) < lengths[:, None]).astype(np.int32)
  ids = np.where(mask > 0, rng.integers(3, vocab, mask.shape), 1).astype(np.int32)
  ids[:, 0] = 0
  return {"input_ids": ids, "attention_mask": mask}


def xtjax_pass(fn, params, feats: dict, batch_size: int, buckets):
  def run():
    for local, _ in batches.eval_batches(feats, batches.INPUTS, batch_size, buckets):
      out = fn(params, local)
    jax.block_until_ready(out)
  return run


def hf_pass(model, feats: dict, batch_size: int):
  import torch

  device = common.torch_device()
  rows = {k: torch.from_numpy(v).long() for k, v in feats.items()}

  def run():
    with torch.inference_mode():
      for start in range(0, len(rows["input_ids"]), batch_size):
        out = model(**{k: v[start:start + batch_size].to(device) for k, v in rows.items()})
      out[0].sum().item()  # waits for the device
  return run


def hf_model(task: EvalTask, cfg):
  import torch
  import transformers

  torch.manual_seed(0)
  kinds = {"xnli": transformers.XLMRobertaForSequenceClassification,
           "xquad": transformers.XLMRobertaForQuestionAnswering}
  return kinds[task.name](common.hf_config(cfg, num_labels=task.num_labels)).to(
      common.torch_device()).eval()


def main(argv=None) -> dict:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--preset", default="small", choices=sorted(PRESETS))
  p.add_argument("--examples", type=int, default=48, help="examples per language")
  p.add_argument("--batch", type=int, default=32)
  p.add_argument("--rounds", type=int, default=3)
  p.add_argument("--buckets", default=",".join(map(str, BUCKETS)),
                 help="xtjax's bucket lengths (config data.eval_buckets)")
  p.add_argument("--quick", action="store_true", help="12 examples per language, 2 rounds")
  args = p.parse_args(argv)
  examples, rounds = (12, 2) if args.quick else (args.examples, args.rounds)
  buckets = tuple(int(b) for b in args.buckets.split(","))
  cfg = PRESETS[args.preset]
  rng = np.random.default_rng(0)
  model = Model.create(lambda rngs: TaskModel(
      cfg, {t.name: (t.head, t.num_labels) for t in TASKS}, rngs=rngs))
  params = jax.jit(model.init)(jax.random.key(0))
  load = common.load_avg()
  results = {}
  for task in TASKS:
    feats = features(row_lengths(task, examples, rng), task.max_length, cfg.vocab_size, rng)
    # Two jits of the same function, so that ``fn``'s cache counts the bucketed shapes only.
    fn, plain = (jax.jit(lambda params, batch, name=task.name: model.bind(params)(batch, task=name),
                         compiler_options=compiler_options(jax.devices()[0])) for _ in range(2))
    sides = {"xtjax": xtjax_pass(fn, params, feats, args.batch, buckets),
             "hf": hf_pass(hf_model(task, cfg), feats, args.batch),
             "xtjax_no_buckets": xtjax_pass(plain, params, feats, args.batch, ())}
    warmup = {k: common.timed(run) for k, run in sides.items()}  # compiles every shape
    times = {k: [] for k in sides}
    for _ in range(rounds):
      for k, run in sides.items():
        times[k].append(common.timed(run))
    real = int(feats["attention_mask"].sum())
    per_s = {k: real / float(np.median(v)) for k, v in times.items()}
    results[task.name] = {
        "rows": len(feats["input_ids"]), "max_length": task.max_length,
        "real_tokens": real, "padded_to_max_tokens": feats["attention_mask"].size,
        "xtjax_real_tokens_per_s": round(per_s["xtjax"], 1),
        "hf_real_tokens_per_s": round(per_s["hf"], 1),
        "xtjax_no_buckets_real_tokens_per_s": round(per_s["xtjax_no_buckets"], 1),
        "ratio_vs_hf": round(per_s["xtjax"] / per_s["hf"], 3),
        "ratio_vs_no_buckets": round(per_s["xtjax"] / per_s["xtjax_no_buckets"], 3),
        "compiles": fn._cache_size(),
        "buckets": batches.count_buckets(feats, buckets, args.batch),
        "warmup_s": {k: round(v, 2) for k, v in warmup.items()},
    }
  result = {"preset": args.preset, "vocab": cfg.vocab_size, "batch": args.batch, "buckets": buckets,
            "examples_per_language": examples, "rounds": rounds, "tasks": results,
            "device": jax.devices()[0].device_kind, "env": common.environment(),
            "load_avg": [load, common.load_avg()]}
  print(json.dumps(result))
  return result


if __name__ == "__main__":
  main()
