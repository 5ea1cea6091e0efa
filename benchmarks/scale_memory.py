"""Per-device memory of XLM-R large, XL and XXL train steps on simulated TPU meshes, compiled
ahead of time (nothing is allocated or run).

    python benchmarks/scale_memory.py                          # the full table (long: XXL compiles)
    python benchmarks/scale_memory.py --models large --meshes 1,8 --presets fsdp

For each model, sharding preset, rematerialisation setting and mesh size, the bfloat16 train step
(AdamW with clipping, float32 parameters and moments) is lowered with abstract sharded inputs on
that many of 64 simulated CPU devices and compiled; the compiled memory analysis gives the bytes
one device holds at its peak (arguments + temporaries + outputs not aliased to donated inputs).
These are XLA:CPU's figures for the TPU program's shapes: layouts, fusion and scheduling differ
on a TPU, so treat them as estimates. Each row is compared with the HBM of TPU v4 (32 GiB), v5e
(16 GiB) and v5p (95 GiB), and the smallest mesh that fits each chip is reported per setting.
The global batch is ``--per-device-batch`` rows per device (at least ``--min-batch``) of
``--length`` tokens. The last line printed is one JSON object.
"""

from __future__ import annotations

import os

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                           + " --xla_force_host_platform_device_count=64").strip()

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import ml_collections  # noqa: E402
import optax  # noqa: E402
from flax import nnx  # noqa: E402
from jax.sharding import NamedSharding, PartitionSpec as P  # noqa: E402

from xtjax import sharding as shd  # noqa: E402
from xtjax.models.heads import ClassificationHead, TaskModel  # noqa: E402
from xtjax.models.xlmr import PRESETS  # noqa: E402
from xtjax.optim import make_optimizer  # noqa: E402
from xtjax.params import Model  # noqa: E402
from xtjax.steps import make_train_step, opt_shardings  # noqa: E402

MODELS = {"large": "xlm-roberta-large", "xl": "facebook/xlm-roberta-xl",
          "xxl": "facebook/xlm-roberta-xxl"}
# Schedules to keep few buffers live (XLA:CPU's default orders for speed), as a compile for HBM.
COMPILER_OPTIONS = {"xla_cpu_scheduler_type": "CPU_SCHEDULER_TYPE_MEMORY_OPTIMIZED"}
HBM_GIB = {"v4": 32, "v5e": 16, "v5p": 95}
OPTIM = dict(lr=1e-5, warmup=0.1, weight_decay=0.01, b1=0.9, b2=0.999, eps=1e-8, clip=1.0,
             grad_accum_steps=1, freeze=())


def abstract(shapes: dict, shardings: dict):
  return {k: jax.ShapeDtypeStruct(v.shape, v.dtype, sharding=shardings[k])
          for k, v in shapes.items()}


def compiled_bytes(model_name: str, preset: str, remat: bool, n_devices: int, batch: int,
                   length: int) -> dict:
  """Compiles the train step on ``n_devices`` and returns its per-device memory analysis."""
  cfg = PRESETS[MODELS[model_name]]
  mesh_axes = [(a, s) for a, s in shd.PRESETS[preset]["mesh"]]
  if preset == "tensor" and n_devices < 4:
    mesh_axes = [(a, 1 if a == "tensor" else s) for a, s in mesh_axes]
  mesh = shd.make_mesh(mesh_axes, jax.devices()[:n_devices])
  rules = shd.PRESETS[preset]["rules"]
  model = Model.create(lambda rngs: TaskModel(cfg, {"cls": (ClassificationHead, 3)},
                                              dtype=jnp.bfloat16, remat=remat, rngs=rngs))

  def loss_fn(params, batch, rng):
    logits = model.bind(params)(batch, task="cls", rng=rng)
    return optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"]).mean(), {}

  shapes = model.shapes()
  param_sh = shd.param_shardings(shapes, model.logical_axes(), mesh, rules)
  tx = make_optimizer(ml_collections.ConfigDict(OPTIM), 1000, list(param_sh))
  opt_shapes = jax.eval_shape(tx.init, shapes)
  opt_sh = opt_shardings(opt_shapes, shapes, param_sh, mesh)
  batch_sh = shd.batch_sharding(mesh, rules)
  step = make_train_step(loss_fn, tx, param_sh, opt_sh, batch_sh)
  tokens = jax.ShapeDtypeStruct((batch, length), jnp.int32, sharding=batch_sh)
  rows = jax.ShapeDtypeStruct((batch,), jnp.int32, sharding=batch_sh)
  batch_in = {"input_ids": tokens, "attention_mask": tokens, "label": rows, "example_mask": rows}
  opt_in = jax.tree.map(lambda s, sh: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sh),
                        opt_shapes, opt_sh)
  key = jax.ShapeDtypeStruct((), jax.random.key(0).dtype, sharding=NamedSharding(mesh, P()))
  t0 = time.perf_counter()
  with jax.set_mesh(mesh), nnx.logical_axis_rules(rules):
    lowered = step.lower(abstract(shapes, param_sh), opt_in, batch_in, key)
    mem = lowered.compile(compiler_options=COMPILER_OPTIONS).memory_analysis()
  peak = (mem.argument_size_in_bytes + mem.temp_size_in_bytes + mem.output_size_in_bytes
          - mem.alias_size_in_bytes)
  return {"model": model_name, "preset": preset, "remat": remat, "devices": n_devices,
          "batch": batch, "length": length, "compile_s": round(time.perf_counter() - t0, 1),
          "argument_gib": mem.argument_size_in_bytes / 2**30,
          "temp_gib": mem.temp_size_in_bytes / 2**30, "peak_gib": peak / 2**30,
          "fits": [chip for chip, gib in HBM_GIB.items() if peak <= gib * 2**30]}


def smallest_meshes(rows: list[dict]) -> dict:
  """Per model, preset and remat: the smallest mesh size that fits each chip (None: none did)."""
  out: dict = {}
  for r in sorted(rows, key=lambda r: r["devices"]):
    setting = out.setdefault(f"{r['model']}/{r['preset']}/remat={r['remat']}",
                             {chip: None for chip in HBM_GIB})
    for chip in r["fits"]:
      setting[chip] = setting[chip] or r["devices"]
  return out


def main(argv=None) -> dict:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--models", default="large,xl,xxl")
  p.add_argument("--presets", default="fsdp,tensor")
  p.add_argument("--meshes", default="8,32,64", help="device counts (at most 64)")
  p.add_argument("--remat", default="off,on")
  p.add_argument("--per-device-batch", type=int, default=1)
  p.add_argument("--min-batch", type=int, default=32)
  p.add_argument("--length", type=int, default=128)
  p.add_argument("--single-chip", action=argparse.BooleanOptionalAction, default=True,
                 help="also XLM-R large on one device at --min-batch rows")
  args = p.parse_args(argv)
  rows = []

  def add(*a):
    rows.append(compiled_bytes(*a))
    r = rows[-1]
    print(f"{r['model']:5s} {r['preset']:6s} remat={r['remat']!s:5s} devices={r['devices']:2d} "
          f"batch={r['batch']:3d} peak {r['peak_gib']:7.2f} GiB (args {r['argument_gib']:.2f}, "
          f"temp {r['temp_gib']:.2f}) fits {r['fits']} [{r['compile_s']} s]", flush=True)

  if args.single_chip:
    for remat in (False, True):
      add("large", "data", remat, 1, args.min_batch, args.length)
  for model_name in args.models.split(","):
    for preset in args.presets.split(","):
      for remat in [x == "on" for x in args.remat.split(",")]:
        for n in map(int, args.meshes.split(",")):
          add(model_name, preset, remat, n, max(args.min_batch, n * args.per_device_batch),
              args.length)
  result = {"device": jax.devices()[0].device_kind, "hbm_gib": HBM_GIB,
            "smallest_mesh": smallest_meshes(rows), "rows": rows}
  print(json.dumps(result))
  return result


if __name__ == "__main__":
  main()
