"""``xtjax align``: how well each phase keeps English and other languages aligned, per layer.

For each checkpoint and each language paired with English, sentence vectors of parallel
sentences (`xtjax.retrieval.encoder.Encoder`: mean-pooled, every layer in one pass) give the
measures of `xtjax.analysis.alignment`; retention divides them by the same run's pretrained
model's (always measured, so it is the reference line of every plot). Parallel sentences:

- ``tatoeba``: the Tatoeba pairs of each language (google/xtreme ``tatoeba.<xxx>``);
- ``xnli``: the XNLI dev sets (both sentences of each pair), matched by position as
  `xtjax.analysis.crosslingual` checks;
- a ``.tsv`` file with the header ``language<TAB>english<TAB>translation``.

Pairs whose English or translated sentence repeats an earlier one are dropped (a duplicate makes
retrieval ambiguous), then the first ``max_pairs`` are kept. Writes ``align.json``, ``align.csv``
(checkpoint, language, layer, measure, value, retention), ``align.md``, ``align_<measure>.png``
(the mean over languages against layer, one line per checkpoint; relative depth when the runs
differ in depth) and ``retention.png`` (per language at the retention layer, by default XTREME's
``n // 2 + 2``).
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np

from xtjax.analysis import alignment, crosslingual, files, languages as langs, plots, runs
from xtjax.data import pipeline
from xtjax.data.tasks import get_task
from xtjax.retrieval.encoder import Encoder
from xtjax.retrieval.evaluate import tatoeba_source

PLOTTED = ("cosine", "cosine_gap", "cka", "retrieval")
FILE_COLUMNS = ("language", "english", "translation")


def read_pairs_file(path: str) -> dict[str, tuple[list[str], list[str]]]:
  """{language: (English sentences, translations)} of a TSV with ``FILE_COLUMNS`` as header."""
  if not Path(path).is_file():
    raise FileNotFoundError(f"no pairs file {path}: give tatoeba, xnli or a .tsv with the header "
                            f"{chr(9).join(FILE_COLUMNS)}")
  with open(path, encoding="utf-8", newline="") as f:
    reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
    missing = [c for c in FILE_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
      raise ValueError(f"{path} lacks column(s) {missing}: its header must be "
                       f"{' <TAB> '.join(FILE_COLUMNS)}")
    pairs: dict[str, tuple[list[str], list[str]]] = {}
    for row in reader:
      en, xx = pairs.setdefault(row["language"], ([], []))
      en.append(row["english"].strip())
      xx.append(row["translation"].strip())
  return pairs


def load_pairs(name: str, run, languages) -> dict[str, tuple[list[str], list[str]]]:
  """{language: (English sentences, translations)} of ``name`` (tatoeba, xnli or a file)."""
  data = run.data
  if name == "tatoeba":
    out = {}
    for lang in runs.languages(run, "tatoeba", languages):
      source, other, english = tatoeba_source(lang)
      ds = pipeline.load_source(source, hub_mirror=data.hub_mirror)
      out[lang] = ([s.strip() for s in ds[english]], [s.strip() for s in ds[other]])
    return out
  if name == "xnli":
    chosen = [l for l in runs.languages(run, "xnli", languages) if l != "en"]
    columns, _ = crosslingual.load_parallel(get_task("xnli"), ["en", *chosen], data,
                                            split="validation")
    both = lambda lang: columns[lang]["text_a"] + columns[lang]["text_b"]
    return {lang: (both("en"), both(lang)) for lang in chosen}
  pairs = read_pairs_file(name)
  unknown = [l for l in languages or () if l not in pairs]
  if unknown:
    raise ValueError(f"{name} has no pairs for {unknown}: it has {', '.join(pairs)}")
  return {l: pairs[l] for l in (languages or pairs)}


def dedupe(english: list[str], other: list[str], max_pairs: int) -> tuple[list, list, int]:
  """The first ``max_pairs`` pairs whose sentences repeat no earlier one, and how many repeated."""
  seen_en, seen_xx, keep = set(), set(), []
  for i, (e, x) in enumerate(zip(english, other)):
    if e not in seen_en and x not in seen_xx:
      keep.append(i)
    seen_en.add(e)
    seen_xx.add(x)
  dropped = len(english) - len(keep)
  keep = keep[:max_pairs] if max_pairs else keep
  if len(keep) < 2:
    raise ValueError(f"only {len(keep)} distinct parallel pair(s): alignment needs at least 2")
  return [english[i] for i in keep], [other[i] for i in keep], dropped


def parse_layers(spec: str, num_layers: int) -> list[int]:
  """Layers of ``spec`` ('all' or comma-separated, 0 = embeddings) of an n-layer model."""
  if spec == "all":
    return list(range(num_layers + 1))
  try:
    layers = sorted({int(l) for l in spec.split(",") if l})
  except ValueError:
    raise ValueError(f"--layers must be 'all' or comma-separated integers, got {spec!r}") from None
  if not layers or layers[0] < 0 or layers[-1] > num_layers:
    raise ValueError(f"--layers {spec!r} must name layers between 0 and {num_layers} "
                     "(0: the embedding output), or be 'all'")
  return layers


def plan(ckpt: runs.Checkpoint, layers: str, retention_layer: int) -> tuple[int, list, int]:
  """(number of layers, layers to measure, retention layer) of one checkpoint."""
  n = ckpt.run.model_cfg.num_hidden_layers
  chosen = parse_layers(layers, n)
  keep = retention_layer or min(n, n // 2 + 2)
  if keep not in chosen:
    raise ValueError(f"retention layer {keep} of {ckpt.label} is not among the measured layers "
                     f"{chosen}: add it to --layers or pass --retention-layer")
  return n, chosen, keep


def measure(ckpt: runs.Checkpoint, pairs: dict, layers: list[int], *, pooling: str,
            include_special: bool, batch_size: int) -> dict[str, dict[int, dict[str, float]]]:
  """{language: {layer: measures}} of one checkpoint (one encoding per language)."""
  encoder = Encoder(ckpt.run, ckpt.phase, layers, pooling=pooling,
                    include_special=include_special, batch_size=batch_size)
  out = {}
  for lang, (english, other) in pairs.items():
    en, xx = encoder(english), encoder(other)
    out[lang] = {layer: alignment.measures(en[:, i], xx[:, i], mesh=ckpt.run.mesh)
                 for i, layer in enumerate(layers)}
  return out


def checkpoint_report(ckpt, base, plan_, values, before, languages) -> dict:
  """One checkpoint's entry of align.json: measures and retention per language and layer, and
  their means over languages (mean retention is the ratio of the means)."""
  n, chosen, keep = plan_
  retention = {l: {layer: alignment.retention(values[l][layer], before[l][layer])
                   for layer in chosen} for l in languages}
  mean = lambda v: {str(layer): _mean([v[l][layer] for l in languages]) for layer in chosen}
  after, pre = mean(values), mean(before)
  return {"label": ckpt.label, "run_dir": str(ckpt.run.dir), "phase": ckpt.phase,
          "baseline": base.label, "num_layers": n, "layers": chosen, "retention_layer": keep,
          "measures": {l: {str(k): v for k, v in values[l].items()} for l in languages},
          "retention": {l: {str(k): v for k, v in retention[l].items()} for l in languages},
          "mean": after, "mean_retention": {k: alignment.retention(after[k], pre[k])
                                            for k in after}}


def run_align(specs: list[str], pairs_name: str, *, languages=(), layers: str = "all",
              max_pairs: int = 1000, pooling: str = "mean", include_special: bool = True,
              retention_layer: int = 0, order: str = "resource", batch_size: int = 128,
              out_dir: str = "") -> dict:
  """Measures, retention and outputs (see the module docstring); returns the JSON written."""
  ckpts = runs.resolve(specs, every=True)
  base = {c.run: runs.Checkpoint(c.run, runs.pretrained(c.run)) for c in ckpts}
  ckpts = list(dict.fromkeys([*base.values(), *ckpts]))
  plans = {c: plan(c, layers, retention_layer) for c in ckpts}
  pairs, sizes = {}, {}
  for lang, (english, other) in load_pairs(pairs_name, ckpts[0].run, list(languages)).items():
    en, xx, dropped = dedupe(english, other, max_pairs)
    pairs[lang], sizes[lang] = (en, xx), {"pairs": len(en), "repeats_dropped": dropped}
  order_langs = langs.ordered(list(pairs), order)
  values = {c: measure(c, pairs, plans[c][1], pooling=pooling, include_special=include_special,
                       batch_size=batch_size) for c in ckpts}
  report = {"pairs": pairs_name, "pooling": pooling, "include_special": include_special,
            "languages": order_langs, "order": order, "sizes": sizes,
            "checkpoints": [checkpoint_report(c, base[c.run], plans[c], values[c],
                                              values[base[c.run]], order_langs) for c in ckpts],
            "out_dir": out_dir or f"{ckpts[0].run.dir}/align-{Path(pairs_name).stem}"}
  write(report, Path(report["out_dir"]))
  return report


def _mean(dicts: list[dict[str, float]]) -> dict[str, float]:
  return {k: float(np.mean([d[k] for d in dicts])) for k in dicts[0]}


def write(report: dict, out: Path) -> None:
  """align.json, align.csv, align.md, align_<measure>.png and retention.png in ``out``."""
  out.mkdir(parents=True, exist_ok=True)
  files.write_json(out / "align.json", report)
  rows = [[c["label"], lang, int(layer), m, v, c["retention"][lang][layer][m]]
          for c in report["checkpoints"] for lang in report["languages"]
          for layer, values in c["measures"][lang].items() for m, v in values.items()]
  files.write_csv(out / "align.csv", ["checkpoint", "language", "layer", "measure", "value",
                                      "retention"], rows)
  (out / "align.md").write_text(summary(report), encoding="utf-8")
  depths = {c["num_layers"] for c in report["checkpoints"]}
  x = (lambda c, layer: int(layer)) if len(depths) == 1 else (
      lambda c, layer: int(layer) / c["num_layers"])
  for m in PLOTTED:
    series = {c["label"]: ([x(c, l) for l in c["mean"]], [v[m] for v in c["mean"].values()])
              for c in report["checkpoints"]}
    dashed = {c["label"]: ([x(c, l) for l in c["mean"]],
                           [v["cosine_shuffled"] for v in c["mean"].values()])
              for c in report["checkpoints"]} if m == "cosine" else None
    plots.layer_lines(out / f"align_{m}.png", series, dashed=dashed,
                      xlabel="layer" if len(depths) == 1 else "layer / number of layers",
                      ylabel=m + (" (dashed: shuffled pairs)" if dashed else ""),
                      title=f"{m} of English-X {report['pairs']} pairs, mean over "
                            f"{len(report['languages'])} languages")
  after = [c for c in report["checkpoints"] if c["label"] != c["baseline"]]
  if after:
    order = report["languages"]
    panels = {m: {c["label"]: [c["retention"][l][str(c["retention_layer"])][m] for l in order]
                  for c in after} for m in PLOTTED}
    plots.retention_bars(out / "retention.png", order,
                         [langs.label(l, report["order"]) for l in order], panels,
                         title=f"retention vs the pretrained model ({report['pairs']} pairs; "
                               f"languages by {report['order']})")


def summary(report: dict) -> str:
  """Markdown: each checkpoint's mean measures and retention at its retention layer, then the
  retention of CKA and retrieval per language."""
  head = ["checkpoint", "layer", *PLOTTED, *(f"{m} ret." for m in PLOTTED)]
  rows = []
  for c in report["checkpoints"]:
    layer = str(c["retention_layer"])
    rows.append([c["label"], c["retention_layer"], *(c["mean"][layer][m] for m in PLOTTED),
                 *(c["mean_retention"][layer][m] for m in PLOTTED)])
  per_lang = [[l, *(f"{c['retention'][l][str(c['retention_layer'])]['cka']:.2f} / "
                    f"{c['retention'][l][str(c['retention_layer'])]['retrieval']:.2f}"
                    for c in report["checkpoints"])] for l in report["languages"]]
  return (files.markdown(head, rows) + "\nRetention (CKA / retrieval) per language:\n\n"
          + files.markdown(["language", *(c["label"] for c in report["checkpoints"])], per_lang))


def main_align(argv=None) -> int:
  """``xtjax align --checkpoints RUN_DIR[:phase],... --pairs tatoeba|xnli|FILE``."""
  p = argparse.ArgumentParser(prog="xtjax align", description="cross-lingual alignment per "
                              "layer and its retention against the pretrained model")
  p.add_argument("--checkpoints", required=True, help="comma-separated RUN_DIR[:phase] (no "
                 "phase: every finished model phase); base and large runs may be mixed")
  p.add_argument("--pairs", default="tatoeba", help="tatoeba, xnli, or a .tsv file with the "
                 "header language<TAB>english<TAB>translation")
  p.add_argument("--languages", default="", help="comma-separated (default: those the run "
                                                 "evaluates)")
  p.add_argument("--layers", default="all", help="'all' or comma-separated (0: embeddings)")
  p.add_argument("--retention-layer", type=int, default=0,
                 help="layer of retention.png (default n // 2 + 2 of each model)")
  p.add_argument("--max-pairs", type=int, default=1000, help="pairs per language (0: all)")
  p.add_argument("--pooling", default="mean", choices=("mean", "cls"))
  p.add_argument("--exclude-special", action="store_true",
                 help="mean-pool without <s> and </s>")
  p.add_argument("--order", default="resource", choices=langs.ORDERS,
                 help="language order of retention.png")
  p.add_argument("--batch-size", type=int, default=128)
  p.add_argument("--out", default="", help="output folder (default FIRST_RUN_DIR/align-PAIRS)")
  args = p.parse_args(sys.argv[1:] if argv is None else argv)
  try:
    report = run_align([s for s in args.checkpoints.split(",") if s], args.pairs,
                       languages=[l for l in args.languages.split(",") if l], layers=args.layers,
                       max_pairs=args.max_pairs, pooling=args.pooling,
                       include_special=not args.exclude_special,
                       retention_layer=args.retention_layer, order=args.order,
                       batch_size=args.batch_size, out_dir=args.out)
  except (ValueError, FileNotFoundError) as e:
    sys.stderr.write(f"xtjax align: {runs.one_line(e)}\n")
    return 2
  print(summary(report) + "\nwrote align.json, align.csv, align.md and PNGs in "
        + report["out_dir"])
  return 0
