"""Train-step throughput of xtjax against Hugging Face PyTorch, side by side in one process.

    python benchmarks/train_throughput.py --quick                  # the issue's model, 250k vocab
    python benchmarks/train_throughput.py --vocab 32000
    python benchmarks/train_throughput.py --preset large --length 256 --dtype bfloat16  # GPU

Both sides train the same XLM-R sequence classifier (random init, dropout on) with AdamW and
global-norm clipping on the same batch. After a warm-up round, an xtjax step, a PyTorch step and
a dense matmul in the step's dtype in JAX and in PyTorch (2048^3 on a CPU, 8192^3 on an
accelerator) alternate, so that load from other processes hits all of them alike; throughputs are
medians, the peak is the fastest matmul of the run.
``cpu_s`` is each side's median CPU time per round (all threads), to read through others' load.
``fraction_of_peak`` is model FLOPs per second (6 x matmul parameters per token plus attention)
over that peak; ``executed_fraction_of_peak`` counts only the FLOPs xtjax's step performs (its
last layer works at ``<s>`` only, all the classifier reads). On a chip of `BF16_PEAK` with
``--dtype bfloat16``, ``fraction_of_spec_peak`` divides by the data sheet's dense peak instead.
The last line printed is one JSON object.
"""

from __future__ import annotations

import common

if __name__ == "__main__":
  common.setup_process()

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import ml_collections  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from jax.sharding import NamedSharding, PartitionSpec as P  # noqa: E402

from xtjax.models.heads import ClassificationHead, TaskModel  # noqa: E402
from xtjax.models.xlmr import PRESETS as MODEL_PRESETS, XLMRConfig  # noqa: E402
from xtjax.optim import make_optimizer  # noqa: E402
from xtjax.params import Model  # noqa: E402
from xtjax.steps import compiler_options, make_train_step, opt_shardings  # noqa: E402

PRESETS = {
    "small": XLMRConfig(hidden_size=512, num_hidden_layers=4, num_attention_heads=8,
                        intermediate_size=2048),  # the CPU model
    "base": MODEL_PRESETS["xlm-roberta-base"],
    "large": MODEL_PRESETS["xlm-roberta-large"],
}
LABELS = 3
# Dense bf16 peak per chip in FLOP/s (no sparsity), by `jax.Device.device_kind`: NVIDIA's data
# sheets (H100/H200 SXM 1,979 TFLOP/s with sparsity, H100 PCIe 1,513, H200 NVL 1,671; A100 312
# dense) and Google Cloud's TPU system-architecture pages (v4 275, v5e 197, v5p 459, v6e 918).
BF16_PEAK = {"NVIDIA H100 80GB HBM3": 989.5e12, "NVIDIA H100 PCIe": 756.5e12,
             "NVIDIA H200": 989.5e12, "NVIDIA H200 NVL": 835.5e12,
             "NVIDIA A100-SXM4-40GB": 312e12, "NVIDIA A100-SXM4-80GB": 312e12,
             "TPU v4": 275e12, "TPU v5 lite": 197e12, "TPU v5": 459e12, "TPU v6 lite": 918e12}
OPTIM = dict(lr=1e-5, warmup=0.1, weight_decay=0.01, b1=0.9, b2=0.999, eps=1e-8, clip=1.0,
             grad_accum_steps=1, freeze=())


def model_flops_per_token(cfg: XLMRConfig, length: int) -> float:
  """Matmul FLOPs of one training token (forward and backward: 3x the forward)."""
  h, i = cfg.hidden_size, cfg.intermediate_size
  per_layer = 2 * (4 * h * h + 2 * h * i) + 2 * 2 * length * h  # projections, FFN, QK^T and PV
  return 3.0 * cfg.num_hidden_layers * per_layer


def executed_flops_per_token(cfg: XLMRConfig, length: int) -> float:
  """The matmul FLOPs xtjax's classifier step performs per token: its last layer computes
  queries, attention, output projection and feed-forward at ``<s>`` only (``first_token_only``);
  keys and values for every token."""
  h, i = cfg.hidden_size, cfg.intermediate_size
  skipped = (length - 1) / length * (2 * (2 * h * h + 2 * h * i) + 2 * 2 * length * h)
  return model_flops_per_token(cfg, length) - 3.0 * skipped


def make_xtjax_step(cfg: XLMRConfig, dtype, remat: bool, total_steps: int):
  """xtjax's jitted train step on one device: (init(key) -> (params, opt_state), step)."""
  model = Model.create(lambda rngs: TaskModel(cfg, {"cls": (ClassificationHead, LABELS)},
                                              dtype=dtype, remat=remat, rngs=rngs))

  def loss_fn(params, batch, rng):
    logits = model.bind(params)(batch, task="cls", rng=rng)
    return optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"]).mean(), {}

  mesh = jax.make_mesh((1,), ("data",), devices=jax.devices()[:1])
  replicated = NamedSharding(mesh, P())
  param_sh = {k: replicated for k in model.shapes()}
  tx = make_optimizer(ml_collections.ConfigDict(OPTIM), total_steps, list(param_sh))
  opt_sh = opt_shardings(jax.eval_shape(tx.init, model.shapes()), model.shapes(), param_sh, mesh)
  step = make_train_step(loss_fn, tx, param_sh, opt_sh, replicated)

  def init(key):
    params = jax.jit(model.init, out_shardings=param_sh)(key)
    return params, jax.jit(tx.init, out_shardings=opt_sh)(params)

  return init, step


def make_hf_step(cfg: XLMRConfig, dtype: str, total_steps: int):
  """The same model and optimizer in Hugging Face transformers' PyTorch: (step(batch), to_torch)."""
  import torch
  import transformers

  torch.manual_seed(0)
  device = common.torch_device()
  kind = (transformers.XLMRobertaXLForSequenceClassification if cfg.pre_layer_norm
          else transformers.XLMRobertaForSequenceClassification)
  model = kind(common.hf_config(cfg, num_labels=LABELS)).to(device).train()
  no_decay = lambda n: n.endswith("bias") or "LayerNorm" in n
  opt = torch.optim.AdamW(
      [{"params": [p for n, p in model.named_parameters() if not no_decay(n)],
        "weight_decay": OPTIM["weight_decay"]},
       {"params": [p for n, p in model.named_parameters() if no_decay(n)], "weight_decay": 0.0}],
      lr=OPTIM["lr"], betas=(OPTIM["b1"], OPTIM["b2"]), eps=OPTIM["eps"])
  sched = transformers.get_linear_schedule_with_warmup(opt, int(0.1 * total_steps), total_steps)
  autocast = dict(device_type=device, dtype=torch.bfloat16, enabled=dtype == "bfloat16")

  def step(batch):
    with torch.autocast(**autocast):
      loss = model(**batch).loss
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), OPTIM["clip"])
    opt.step()
    sched.step()
    opt.zero_grad(set_to_none=True)
    return loss.item()  # waits for the device, as block_until_ready does on the xtjax side

  def to_torch(host):
    names = {"input_ids": "input_ids", "attention_mask": "attention_mask", "label": "labels"}
    return {t: torch.from_numpy(host[k]).long().to(device) for k, t in names.items()}

  return step, to_torch


def matmul_steps(dtype: str):
  """Dense n x n matmuls in ``dtype`` in JAX (default device) and PyTorch: ({name: step}, FLOPs).
  n is 2048 on a CPU and 8192 on an accelerator, where a 2048^3 product is too short to load
  the chip."""
  import torch

  n = 2048 if jax.devices()[0].platform == "cpu" else 8192
  a = jax.random.normal(jax.random.key(0), (n, n), jnp.dtype(dtype))
  f = jax.jit(lambda x: x @ x, compiler_options=compiler_options(jax.devices()[0]))
  t = torch.randn(n, n, device=common.torch_device(), dtype=getattr(torch, dtype))
  sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
  return {"matmul_jax": lambda i: f(a).block_until_ready(),
          "matmul_torch": lambda i: (t @ t, sync())}, 2.0 * n ** 3


def main(argv=None) -> dict:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--preset", default="small", choices=sorted(PRESETS))
  p.add_argument("--vocab", type=int, default=0, help="vocabulary size (default: the preset's)")
  p.add_argument("--batch", type=int, default=16)
  p.add_argument("--length", type=int, default=128)
  p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
  p.add_argument("--remat", action="store_true")
  p.add_argument("--steps", type=int, default=12, help="timed rounds")
  p.add_argument("--no-hf", action="store_true", help="time xtjax only")
  p.add_argument("--quick", action="store_true",
                 help="at most 4 rounds, none begun after 60 s: ends within 90 s on 2 CPU cores")
  args = p.parse_args(argv)
  steps = 4 if args.quick else args.steps
  deadline = common.START + 60 if args.quick else float("inf")
  cfg = PRESETS[args.preset]
  if args.vocab:
    cfg = dataclasses.replace(cfg, vocab_size=args.vocab)

  rng = np.random.default_rng(0)
  ids = rng.integers(3, cfg.vocab_size, (args.batch, args.length)).astype(np.int32)
  ids[:, 0] = 0
  host = {"input_ids": ids, "attention_mask": np.ones_like(ids),
          "label": rng.integers(0, LABELS, args.batch).astype(np.int32),
          "example_mask": np.ones(args.batch, np.int32)}

  init, step = make_xtjax_step(cfg, jnp.dtype(args.dtype), args.remat, total_steps=1000)
  params, opt_state = init(jax.random.key(0))
  batch = jax.device_put(host, jax.devices()[0])
  compiled = None

  def compile_step():
    nonlocal compiled
    compiled = step.lower(params, opt_state, batch, jax.random.key(0)).compile()

  compile_s = common.timed(compile_step)

  def xtjax_step(i):
    nonlocal params, opt_state
    params, opt_state, metrics = compiled(params, opt_state, batch, jax.random.key(i))
    jax.block_until_ready(metrics["loss"])

  sides = {"xtjax": xtjax_step}
  if not args.no_hf:
    hf_step, to_torch = make_hf_step(cfg, args.dtype, total_steps=1000)
    hf_batch = to_torch(host)
    sides["hf"] = lambda i: hf_step(hf_batch)
  matmuls, matmul_flops = matmul_steps(args.dtype)
  sides.update(matmuls)
  load = common.load_avg()
  times, cpu = {k: [] for k in sides}, {k: [] for k in sides}
  for i in range(steps + 1):  # the first round is warm-up
    if i > 1 and time.perf_counter() > deadline:
      break
    for name, fn in sides.items():
      c0 = time.process_time()
      times[name].append(common.timed(lambda: fn(i)))
      cpu[name].append(time.process_time() - c0)
  step_s = {k: float(np.median(v[1:])) for k, v in times.items()}
  peak = max(matmul_flops / min(times[k][1:]) for k in matmuls)

  tokens = args.batch * args.length
  flops = model_flops_per_token(cfg, args.length) * tokens
  spec = BF16_PEAK.get(jax.devices()[0].device_kind) if args.dtype == "bfloat16" else None
  hf = "hf" in step_s
  result = {
      "preset": args.preset, "vocab": cfg.vocab_size, "batch": args.batch, "length": args.length,
      "dtype": args.dtype, "remat": args.remat, "steps": len(times["xtjax"]) - 1,
      "xtjax_tokens_per_s": round(tokens / step_s["xtjax"], 1),
      "hf_tokens_per_s": round(tokens / step_s["hf"], 1) if hf else None,
      "ratio": round(step_s["hf"] / step_s["xtjax"], 3) if hf else None,
      "model_flops_per_s": float(f"{flops / step_s['xtjax']:.4g}"),
      "peak_flops_per_s": float(f"{peak:.4g}"),
      "fraction_of_peak": round(flops / step_s["xtjax"] / peak, 3),
      "executed_fraction_of_peak": round(
          executed_flops_per_token(cfg, args.length) * tokens / step_s["xtjax"] / peak, 3),
      "hf_fraction_of_peak": round(flops / step_s["hf"] / peak, 3) if hf else None,
      "spec_peak_flops_per_s": spec,
      "fraction_of_spec_peak": round(flops / step_s["xtjax"] / spec, 3) if spec else None,
      "compile_s": round(compile_s, 2),
      "device": jax.devices()[0].device_kind, "devices": jax.device_count(),
      "env": common.environment(), "load_avg": [load, common.load_avg()],
      "step_s": {k: [round(t, 4) for t in v] for k, v in times.items()},
      "cpu_s": {k: round(float(np.median(v[1:])), 3) for k, v in cpu.items()},
  }
  print(json.dumps(result))
  return result


if __name__ == "__main__":
  main()
