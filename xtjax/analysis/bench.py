"""``xtjax bench``: inference cost per language of each task's test data.

Per checkpoint, task and language (the first ``max_examples`` test rows):

- tokenizer fertility (`xtjax.analysis.fertility`: sub-words per word and per character, and
  relative to English) and real against padded tokens (padded to ``max_length`` and to length
  buckets, ``data.eval_buckets``);
- latency p50/p95 at batch 1 (each call one example, padded to its bucket) and throughput
  (examples/s, real tokens/s) at every larger batch size, compile and warm-up time reported
  apart (`xtjax.analysis.inference`). Throughput counts model input rows: a QA example may give
  several windows, a tagged sentence longer than ``max_length`` several segments.

The timed function is the phase's model as it predicts: encoder plus the head that predicts the
task if the phase has one, else the encoder alone (``head`` says which). It runs on one device
(the per-replica cost; the first of ``jax.devices()``), whose platform and kind are recorded.
Writes ``bench.json``, ``bench.csv``, ``bench.md`` and ``throughput_vs_fertility.png``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import jax
import numpy as np
from jax.sharding import Mesh

from xtjax import sharding as shd
from xtjax.analysis import fertility, files, inference, plots, runs
from xtjax.data import batches, pipeline
from xtjax.data.tasks import get_task
from xtjax.predict import load_task_data

TEXT_FIELDS = {"classification": ("text_a", "text_b"), "token_classification": ("tokens",),
               "question_answering": ("question", "context"),
               "multiple_choice": ("premise", "question", "choices")}


def texts(kind: str, columns: dict) -> list[str]:
  """The texts of a kind's rows that the tokenizer reads (a tagged sentence is one text)."""
  out = []
  for field in TEXT_FIELDS[kind]:
    for value in columns[field]:
      if field == "tokens":
        out.append(" ".join(value))
      else:
        out += list(value) if isinstance(value, list) else [value]
  return out


def forward(model, head: str | None):
  """``fn(params, batch)``: the task head's logits, or the encoder's last hidden state."""
  if head:
    return lambda params, batch: model.bind(params)(batch, task=head)
  return lambda params, batch: model.bind(params).encoder(
      batch["input_ids"], batch["attention_mask"]).last_hidden_state


def one_device(run, model, params) -> tuple[dict, object]:
  """``params`` moved to the first device, and the batch sharding there."""
  names = run.mesh.axis_names
  mesh = Mesh(np.asarray(jax.devices()[:1]).reshape((1,) * len(names)), names)
  shardings = shd.param_shardings(model.shapes(), model.logical_axes(), mesh, run.rules)
  return jax.device_put(params, shardings), shd.batch_sharding(mesh, run.rules)


def device_batches(features: dict, size: int, buckets, sharding) -> list[dict]:
  """Every row once in batches of ``size`` trimmed to their length bucket, on the device."""
  return [{k: jax.device_put(batch[k], sharding) for k in batches.INPUTS}
          for batch, _ in batches.eval_batches(features, batches.INPUTS, size, buckets)]


def bench_language(timer, features: dict, data, sharding, *, batch_sizes, latency_calls: int,
                   passes: int) -> dict:
  """Latency at batch 1 and throughput at each larger batch size for one language's rows."""
  out = {"latency": None, "throughput": {}}
  real = int(np.asarray(features["attention_mask"]).sum())
  for size in batch_sizes:
    if size == 1:
      first = {k: v[:latency_calls] for k, v in features.items()}
      out["latency"] = inference.latency(
          timer, device_batches(first, 1, data.eval_buckets, sharding), latency_calls)
    else:
      out["throughput"][str(size)] = inference.throughput(
          timer, device_batches(features, size, data.eval_buckets, sharding),
          examples=batches.num_rows(features), real_tokens=real, passes=passes)
  return out


def bench_task(ckpt: runs.Checkpoint, task_name: str, languages, *, batch_sizes,
               max_examples: int, latency_calls: int, warmup: int, passes: int) -> dict:
  """Every language of one task from one checkpoint, and the compile/warm-up totals."""
  run = ckpt.run
  task = pipeline.resolve(get_task(task_name), run.data)
  head = runs.task_head(ckpt, task)
  data = runs.task_data(ckpt, head)
  model, _, params = runs.load_model(ckpt, head)
  params, sharding = one_device(run, model, params)
  timer = inference.Timer(forward(model, head), params, warmup=warmup)
  count = fertility.subword_counter(run.tokenizer)
  bounds = batches.bucket_lengths(data.max_length, data.eval_buckets)
  per_lang, stats = {}, {}
  for lang in runs.languages(run, task.name, languages):
    rows, features, _ = load_task_data(run, task, "test", lang, data, limit=max_examples)
    stats[lang] = fertility.fertility(texts(task.kind, rows[:]), count)
    per_lang[lang] = {"examples": len(rows), "feature_rows": batches.num_rows(features),
                      "padding": fertility.padding(features["attention_mask"], bounds),
                      **bench_language(timer, features, data, sharding, batch_sizes=batch_sizes,
                                       latency_calls=latency_calls, passes=passes)}
  for lang, s in fertility.relative(stats).items():
    per_lang[lang]["fertility"] = s
  return {"checkpoint": ckpt.label, "task": task.name, "head": head,
          "max_length": data.max_length, "buckets": bounds, "setup": timer.setup(),
          "languages": per_lang}


def model_info(ckpt: runs.Checkpoint) -> dict:
  cfg = ckpt.run.model_cfg
  return {"checkpoint": ckpt.label, "dtype": ckpt.run.config.model.dtype,
          **{k: getattr(cfg, k) for k in ("hidden_size", "num_hidden_layers",
                                          "num_attention_heads", "vocab_size")}}


def device_info() -> dict:
  device = jax.devices()[0]
  return {"platform": device.platform, "device_kind": device.device_kind, "devices_used": 1,
          "devices_available": jax.device_count(), "jax": jax.__version__}


def rows(report: dict) -> tuple[list[str], list[list]]:
  """The per-language table: one row per checkpoint, task and language."""
  sizes = report["batch_sizes"]
  big = [s for s in sizes if s > 1]
  header = ["checkpoint", "task", "language", "examples", "subwords/word", "rel. en",
            "subwords/char", "rel. en (char)", "tokens/row", "pad % fixed", "pad % bucketed",
            "p50 ms", "p95 ms", *(f"ex/s @{s}" for s in big), *(f"real tok/s @{s}" for s in big)]
  out = []
  for t in report["tasks"]:
    for lang, r in t["languages"].items():
      f, pad, lat = r["fertility"], r["padding"], r["latency"] or {}
      out.append([t["checkpoint"], t["task"], lang, r["examples"], f["per_word"],
                  f["per_word_rel"], f["per_char"], f["per_char_rel"], pad["tokens_per_row"],
                  100 * pad["pad_share_fixed"], 100 * pad["pad_share_bucketed"],
                  lat.get("p50_ms"), lat.get("p95_ms"),
                  *(r["throughput"][str(s)]["examples_per_s"] for s in big),
                  *(r["throughput"][str(s)]["real_tokens_per_s"] for s in big)])
  return header, out


def write(report: dict, out: Path) -> None:
  out.mkdir(parents=True, exist_ok=True)
  files.write_json(out / "bench.json", report)
  header, table = rows(report)
  files.write_csv(out / "bench.csv", header, table)
  (out / "bench.md").write_text(summary(report), encoding="utf-8")
  big = max(report["batch_sizes"])
  if big > 1:
    points = [(r["fertility"]["per_word"], r["throughput"][str(big)]["examples_per_s"], lang,
               f"{t['checkpoint']} {t['task']}")
              for t in report["tasks"] for lang, r in t["languages"].items()]
    plots.scatter(out / "throughput_vs_fertility.png", points,
                  xlabel="fertility (sub-words per word)", ylabel=f"examples/s at batch {big}",
                  title=f"throughput against fertility on {report['device']['device_kind']}")


def summary(report: dict) -> str:
  header, table = rows(report)
  d = report["device"]
  setup = [[t["checkpoint"], t["task"], t["head"] or "(encoder)", t["setup"]["shapes"],
            t["setup"]["compile_s"], t["setup"]["warmup_s"]] for t in report["tasks"]]
  return (f"device: {d['platform']} {d['device_kind']} (1 of {d['devices_available']}), "
          f"jax {d['jax']}\n\n" + files.markdown(header, table, digits=2)
          + "\n" + files.markdown(["checkpoint", "task", "head", "shapes", "compile s",
                                   "warm-up s"], setup, digits=2))


def parse_sizes(text: str) -> list[int]:
  try:
    sizes = sorted({int(s) for s in text.split(",") if s})
  except ValueError:
    sizes = []
  if not sizes or sizes[0] < 1:
    raise ValueError(f"--batch-sizes must be positive integers such as 1,32,256, got {text!r}")
  return sizes


def run_bench(specs: list[str], tasks: list[str], *, languages=(), batch_sizes=(1, 32, 256),
              max_examples: int = 256, latency_calls: int = 50, warmup: int = 2,
              passes: int = 3, out_dir: str = "") -> dict:
  """Benchmarks every task from every checkpoint; returns the JSON written to ``out_dir``."""
  if not tasks:
    raise ValueError("--tasks names no task: give e.g. xnli,panx")
  for name in tasks:
    kind = get_task(name).kind
    if kind not in TEXT_FIELDS:
      raise ValueError(f"bench measures tasks of kinds {', '.join(TEXT_FIELDS)}; {name} is {kind}")
  ckpts = runs.resolve(specs, every=False)
  report = {"device": device_info(), "batch_sizes": list(batch_sizes),
            "max_examples": max_examples, "latency_calls": latency_calls, "warmup": warmup,
            "passes": passes, "models": [model_info(c) for c in ckpts],
            "tasks": [bench_task(c, t, languages, batch_sizes=batch_sizes,
                                 max_examples=max_examples, latency_calls=latency_calls,
                                 warmup=warmup, passes=passes) for c in ckpts for t in tasks]}
  report["out_dir"] = out_dir or f"{ckpts[0].run.dir}/bench-{ckpts[0].phase}"
  write(report, Path(report["out_dir"]))
  return report


def main_bench(argv=None) -> int:
  """``xtjax bench --checkpoint RUN_DIR[:phase] --tasks xnli,panx [--batch-sizes 1,32,256]``."""
  p = argparse.ArgumentParser(prog="xtjax bench", description="inference cost per language: "
                              "fertility, padding, latency and throughput")
  p.add_argument("--checkpoint", required=True, help="RUN_DIR[:phase], or several separated by "
                 "commas (base and large side by side); no phase: the last finished train phase")
  p.add_argument("--tasks", required=True, help="comma-separated test sets, e.g. xnli,panx")
  p.add_argument("--languages", default="", help="comma-separated (default: those the run "
                                                 "evaluates, else all of the task's)")
  p.add_argument("--batch-sizes", default="1,32,256", help="1 gives latency; larger throughput")
  p.add_argument("--max-examples", type=int, default=256, help="test rows per language (0: all)")
  p.add_argument("--latency-calls", type=int, default=50, help="timed batch-1 calls")
  p.add_argument("--warmup", type=int, default=2, help="untimed calls per shape after compiling")
  p.add_argument("--passes", type=int, default=3, help="timed passes per batch size (median)")
  p.add_argument("--out", default="", help="output folder (default RUN_DIR/bench-PHASE)")
  args = p.parse_args(sys.argv[1:] if argv is None else argv)
  try:
    report = run_bench([s for s in args.checkpoint.split(",") if s],
                       [t for t in args.tasks.split(",") if t],
                       languages=[l for l in args.languages.split(",") if l],
                       batch_sizes=parse_sizes(args.batch_sizes), max_examples=args.max_examples,
                       latency_calls=args.latency_calls, warmup=args.warmup, passes=args.passes,
                       out_dir=args.out)
  except (ValueError, FileNotFoundError) as e:
    sys.stderr.write(f"xtjax bench: {runs.one_line(e)}\n")
    return 2
  print(summary(report) + f"\nwrote bench.json, bench.csv, bench.md and "
        f"throughput_vs_fertility.png in {report['out_dir']}")
  return 0
