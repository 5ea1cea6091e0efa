"""Train-step throughput of a randomly initialised XLM-R of any preset on the local devices.

    python benchmarks/train_step.py --model xlm-roberta-large --batch 32 --length 256 --steps 20
    python benchmarks/train_step.py --model tiny --preset fsdp      # quick check on CPU

Prints compile time, seconds per step (median after warm-up), examples/s and tokens/s as JSON.
No download: only the architecture of the preset is used.
"""

from __future__ import annotations

import argparse
import json
import time

import jax
import ml_collections
import numpy as np

from xtjax import sharding as shd
from xtjax.models.heads import TaskModel
from xtjax.models.xlmr import PRESETS, XLMRConfig
from xtjax.optim import make_optimizer
from xtjax.params import Model
from xtjax.steps import make_train_step, opt_shardings

TINY = XLMRConfig(vocab_size=1000, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                  intermediate_size=256)


def main(argv=None) -> dict:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--model", default="tiny", help=f"tiny or one of {', '.join(PRESETS)}")
  p.add_argument("--preset", default="data", choices=sorted(shd.PRESETS))
  p.add_argument("--dtype", default="bfloat16")
  p.add_argument("--batch", type=int, default=32)
  p.add_argument("--length", type=int, default=128)
  p.add_argument("--steps", type=int, default=10)
  p.add_argument("--remat", action="store_true")
  p.add_argument("--rng", default="rbg", help="PRNG implementation of the dropout key")
  args = p.parse_args(argv)

  cfg = TINY if args.model == "tiny" else PRESETS[args.model]
  mesh = shd.make_mesh(shd.PRESETS[args.preset]["mesh"])
  rules = shd.PRESETS[args.preset]["rules"]
  model = Model.create(lambda rngs: TaskModel(cfg, {"nli": ("classification", 3)},
                                              dtype=jax.numpy.dtype(args.dtype), remat=args.remat,
                                              rngs=rngs))
  param_sh = shd.param_shardings(model.shapes(), model.logical_axes(), mesh, rules)
  optim = ml_collections.ConfigDict(dict(lr=1e-5, warmup=0.1, weight_decay=0.01, b1=0.9,
                                         b2=0.999, eps=1e-8, clip=1.0, grad_accum_steps=1,
                                         freeze=()))
  tx = make_optimizer(optim, 1000, list(param_sh))
  opt_sh = opt_shardings(jax.eval_shape(tx.init, model.shapes()), model.shapes(), param_sh, mesh)
  batch_sh = shd.batch_sharding(mesh, rules)
  step = make_train_step(model, tx, "nli", "classification", param_sh, opt_sh, batch_sh)
  rng = np.random.default_rng(0)
  ids = rng.integers(3, cfg.vocab_size, (args.batch, args.length)).astype(np.int32)
  host = {"input_ids": ids, "attention_mask": np.ones_like(ids),
          "label": rng.integers(0, 3, args.batch).astype(np.int32),
          "example_mask": np.ones(args.batch, np.int32)}
  with jax.set_mesh(mesh):
    params = jax.jit(model.init, out_shardings=param_sh)(jax.random.key(0))
    opt_state = jax.jit(tx.init, out_shardings=opt_sh)(params)
    batch = shd.global_batch(host, batch_sh)
    t0 = time.perf_counter()
    compiled = step.lower(params, opt_state, batch, jax.random.key(0, impl=args.rng)).compile()
    compile_s = time.perf_counter() - t0
    times = []
    for i in range(args.steps + 2):
      t0 = time.perf_counter()
      params, opt_state, metrics = compiled(params, opt_state, batch, jax.random.key(i, impl=args.rng))
      jax.block_until_ready(metrics["loss"])
      times.append(time.perf_counter() - t0)
  step_s = float(np.median(times[2:]))
  result = {"model": args.model, "preset": args.preset, "devices": jax.device_count(),
            "platform": jax.devices()[0].platform, "dtype": args.dtype, "batch": args.batch,
            "length": args.length, "compile_s": round(compile_s, 2), "step_s": round(step_s, 4),
            "examples_per_s": round(args.batch / step_s, 1),
            "tokens_per_s": round(args.batch * args.length / step_s, 1)}
  print(json.dumps(result))
  return result


if __name__ == "__main__":
  main()
