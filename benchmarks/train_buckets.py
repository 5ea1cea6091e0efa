"""Train-step throughput with batches cut to their longest row (``data.train_buckets``) against
batches padded to ``max_length``, on the length distributions of English training sets.

    python benchmarks/train_buckets.py [--preset small|base] [--batch 32] [--steps 12]

For each task, row lengths (XLM-R tokens, special tokens included) are drawn from a lognormal
approximation of its English training set, at XTREME's max_length 128; xtjax's training iterator
(grain, seed 0) gives the same batches both ways, and xtjax's train step runs them after every
shape has been compiled once. Reports real tokens/s each way, the speedup, the lengths used and
the compile count. The last line printed is one JSON object.
"""

from __future__ import annotations

import common

common.setup_process()

import argparse  # noqa: E402
import json  # noqa: E402

import jax  # noqa: E402
import numpy as np  # noqa: E402

from train_throughput import LABELS, PRESETS, make_xtjax_step  # noqa: E402
from xtjax.config import base_config  # noqa: E402
from xtjax.data import batches  # noqa: E402

MAX_LENGTH = 128
# Median and spread of the lengths (approximate): PAN-X's English Wikipedia snippets, UD English
# EWT sentences, MNLI's premise and hypothesis pairs (as eval_throughput's XNLI), PAWS-X's pairs.
LENGTHS = {"panx": (14, 0.5), "udpos": (22, 0.6), "mnli": (38, 0.4), "pawsx": (56, 0.3)}
BUCKETS = tuple(base_config().data.train_buckets)  # xtjax's default


def task_features(task: str, rows: int, vocab: int, rng) -> dict:
  median, sigma = LENGTHS[task]
  lengths = np.clip(rng.lognormal(np.log(median), sigma, rows).astype(int), 4, MAX_LENGTH)
  mask = (np.arange(MAX_LENGTH) < lengths[:, None]).astype(np.int32)
  ids = np.where(mask > 0, rng.integers(3, vocab, mask.shape), 1).astype(np.int32)
  ids[:, 0] = 0
  return {"input_ids": ids, "attention_mask": mask,
          "label": rng.integers(0, LABELS, rows).astype(np.int32)}


def main(argv=None) -> dict:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--preset", default="small", choices=sorted(PRESETS))
  p.add_argument("--batch", type=int, default=32)
  p.add_argument("--steps", type=int, default=12, help="timed steps per task and side")
  p.add_argument("--tasks", default=",".join(LENGTHS))
  args = p.parse_args(argv)
  cfg = PRESETS[args.preset]
  init, step = make_xtjax_step(cfg, np.float32, False, total_steps=1000)
  params, opt_state = init(jax.random.key(0))
  rng = np.random.default_rng(0)
  keys = ("input_ids", "attention_mask", "label")
  load = common.load_avg()
  results = {}
  for task in args.tasks.split(","):
    features = task_features(task, 40 * args.batch, cfg.vocab_size, rng)
    sides, real = {}, 0
    for side, buckets in (("cut", BUCKETS), ("padded", ())):
      it = batches.train_batches([(features, keys, None)], args.batch, seed=0, buckets=[buckets])
      host = [{**next(it), "example_mask": np.ones(args.batch, np.int32)}
              for _ in range(args.steps)]
      for b in host:
        b.pop("task")
      device = [jax.device_put(b, jax.devices()[0]) for b in host]
      for length in sorted({b["input_ids"].shape[1] for b in host}):  # compile each shape
        first = next(d for d in device if d["input_ids"].shape[1] == length)
        params, opt_state, m = step(params, opt_state, first, jax.random.key(0))
        jax.block_until_ready(m["loss"])

      def run(device=device):
        nonlocal params, opt_state
        for i, b in enumerate(device):
          params, opt_state, m = step(params, opt_state, b, jax.random.key(i))
        jax.block_until_ready(m["loss"])

      real = int(sum(b["attention_mask"].sum() for b in host))
      sides[side] = {"s": common.timed(run),
                     "lengths": sorted(int(b["input_ids"].shape[1]) for b in host)}
    results[task] = {
        "real_tokens": real, "median_row_length": LENGTHS[task][0],
        "cut_real_tokens_per_s": round(real / sides["cut"]["s"], 1),
        "padded_real_tokens_per_s": round(real / sides["padded"]["s"], 1),
        "speedup": round(sides["padded"]["s"] / sides["cut"]["s"], 3),
        "cut_lengths": sides["cut"]["lengths"],
    }
    print(task, results[task], flush=True)
  result = {"preset": args.preset, "batch": args.batch, "steps": args.steps,
            "max_length": MAX_LENGTH, "buckets": BUCKETS, "tasks": results,
            "compiles": step._cache_size(), "device": jax.devices()[0].device_kind,
            "env": common.environment(), "load_avg": [load, common.load_avg()]}
  print(json.dumps(result))
  return result


if __name__ == "__main__":
  main()
