"""Retrieval straight from an encoder checkpoint of any phase: Tatoeba and BUCC 2018 (XTREME),
and Mewsli-X and LAReQA (XTREME-R, `xtjax.retrieval.ranking`).

Sentence vectors come from `xtjax.retrieval.encoder.Encoder`. The default layer is
``n // 2 + 2`` of an ``n``-layer model (at most ``n``), XTREME's choice (layer 8 of 12 for mBERT,
14 of 24 for XLM-R large).

- Tatoeba: the English side is sorted alphabetically (as the released files); each English
  sentence retrieves its translation among the other language's sentences (top-1 cosine);
  predictions are the retrieved indices, one per sorted English line; accuracy.
- BUCC 2018: ratio-margin mining (k=4, "max") on the official archives (``data.bucc_dir``), the
  threshold tuned for F1 on the dev ("sample") gold and applied to test ("training"); F1 against
  the test gold. ``bucc2018_gold_only`` mines among the hub's gold-aligned sentences only (no
  distractors): a separate, much easier approximation, never reported as BUCC.
"""

from __future__ import annotations

import json

import jax
import numpy as np
from etils import epath

from xtjax import scoring
from xtjax.data import pipeline
from xtjax.data.tasks import RETRIEVAL_TASKS, TATOEBA_CODES, Source, retrieval_languages
from xtjax.metrics import accuracy, bucc_scores
from xtjax.retrieval import mining, ranking
from xtjax.retrieval.encoder import Encoder
from xtjax.retrieval.search import knn
from xtjax.tables import write_results

# google/xtreme has XTREME's 36 Tatoeba languages; XTREME-R's additions come from the same
# LASER files as published in mteb/tatoeba-bitext-mining.
XTREME_R_TATOEBA = ("az", "lt", "pl", "ro", "uk")


def tatoeba_source(lang: str) -> tuple[Source, str, str]:
  """(source, column of the other language, column of English) of a Tatoeba language."""
  if lang not in TATOEBA_CODES:
    raise ValueError(f"unknown Tatoeba language {lang!r}: it has {', '.join(TATOEBA_CODES)}")
  code = TATOEBA_CODES[lang]
  if lang in XTREME_R_TATOEBA:
    return (Source("mteb/tatoeba-bitext-mining", (f"{code}-eng",), "test"), "sentence1",
            "sentence2")
  return (Source("google/xtreme", (f"tatoeba.{code}",), "validation"), "source_sentence",
          "target_sentence")


def tatoeba(encoder: Encoder, lang: str, data, split: str = "test"
            ) -> dict[int, tuple[list[int], float]]:
  """Per layer: (predicted index per sorted English line, accuracy). Tatoeba has one set of
  pairs (the hub's "validation"), XTREME's test set, whatever ``split`` asks."""
  source, other, english = tatoeba_source(lang)
  ds = pipeline.load_source(source, hub_mirror=data.hub_mirror)
  src = [s.strip() for s in ds[other]]
  eng = [s.strip() for s in ds[english]]
  order = sorted(range(len(eng)), key=lambda i: eng[i])  # the released English file is sorted
  gold = order  # sorted line k is the translation of source line order[k]
  src_vecs, eng_vecs = encoder(src), encoder([eng[i] for i in order])
  out = {}
  for i, layer in enumerate(encoder.layers):
    _, idx = knn(eng_vecs[:, i], src_vecs[:, i], 1, mesh=encoder.run.mesh)
    predicted = [int(j) for j in idx[:, 0]]
    out[layer] = (predicted, accuracy(predicted, gold))
  return out


def bucc(encoder: Encoder, lang: str, data, split: str = "test") -> dict[int, tuple[list, dict]]:
  """Per layer: (predicted pairs of ``split``, scores incl. the dev-tuned threshold)."""
  if not data.bucc_dir:
    raise FileNotFoundError("bucc2018 needs the official BUCC 2018 archives: download them from "
                            "https://comparable.limsi.fr/bucc2018/, extract, and set data.bucc_dir")
  splits = {s: mining.read_bucc(data.bucc_dir, lang, s) for s in ("dev", "test")}
  return _mine_and_score(encoder, splits, data, split)


def bucc_gold_only(encoder: Encoder, lang: str, data,
                   split: str = "test") -> dict[int, tuple[list, dict]]:
  """BUCC mining among the hub's gold-aligned sentences only (``bucc18.<lang>``)."""
  splits = {}
  for split, hub_split in (("dev", "validation"), ("test", "test")):
    ds = pipeline.load_source(Source("google/xtreme", (f"bucc18.{lang}",), hub_split),
                              hub_mirror=data.hub_mirror)
    # The hub's source_lang/target_lang columns hold the sentence ids.
    src_ids, trg_ids = list(ds["source_lang"]), list(ds["target_lang"])
    splits[split] = mining.BuccSplit(src_ids, [s.strip() for s in ds["source_sentence"]], trg_ids,
                                     [s.strip() for s in ds["target_sentence"]],
                                     set(zip(src_ids, trg_ids)))
  return _mine_and_score(encoder, splits, data, split)


def _mine_and_score(encoder: Encoder, splits, data, scored: str) -> dict[int, tuple[list, dict]]:
  """Per layer: mined pairs above the threshold that maximises F1 on the dev gold, scored on
  split ``scored`` ("test": XTREME's protocol; "dev": the threshold's own split, as jiant)."""
  if scored not in ("dev", "test"):
    raise ValueError(f"unknown BUCC split {scored!r}: use dev or test")
  splits = {s: splits[s] for s in dict.fromkeys(("dev", scored))}
  vecs = {s: (encoder(b.src_sentences), encoder(b.trg_sentences)) for s, b in splits.items()}
  out = {}
  for i, layer in enumerate(encoder.layers):
    cands = {}
    for s, b in splits.items():
      mined = mining.mine(b.src_sentences, b.trg_sentences, vecs[s][0][:, i], vecs[s][1][:, i],
                          mesh=encoder.run.mesh, duplicates=data.bucc_duplicates)
      cands[s] = [(score, b.src_ids[x], b.trg_ids[y]) for score, x, y in mined]
    threshold, dev_f1, _, _ = mining.bucc_optimize(cands["dev"], splits["dev"].gold)
    predicted = mining.apply_threshold(cands[scored], threshold)
    scores = bucc_scores(predicted, splits[scored].gold)
    out[layer] = (predicted, dict(scores, threshold=threshold, dev_f1=dev_f1))
  return out


_RUNNERS = {"tatoeba": (tatoeba, "accuracy"), "bucc2018": (bucc, "f1"),
            "bucc2018_gold_only": (bucc_gold_only, "f1")}


def evaluate_retrieval(run, task: str, from_phase: str, *, languages=None, layer: int = 0,
                       layers=(), pooling: str = "mean", include_special: bool = True,
                       max_length: int = 512, split: str = "test", out_dir, data=None,
                       batch_size: int = 128) -> dict:
  """Scores ``task`` in each language from ``from_phase``'s encoder at ``layer`` (and every layer
  of ``layers``, a sweep), texts cut at ``max_length`` tokens; writes the leaderboard files of
  ``layer`` under ``out_dir`` (test) or JSON predictions (dev)."""
  if task in ranking.RANKING_TASKS:  # Mewsli-X, LAReQA: a dual encoder's <s>, last layer
    return ranking.evaluate_phase(run, task, from_phase, languages=languages, out_dir=out_dir,
                                  data=data or run.data, batch_size=batch_size)
  if task not in _RUNNERS:
    raise ValueError(f"unknown retrieval task {task!r}: use {', '.join(RETRIEVAL_TASKS)}")
  data = data or run.data
  n = run.model_cfg.num_hidden_layers
  layer = layer or min(n, n // 2 + 2)
  layers = list(range(n + 1)) if layers == "all" else list(layers)
  layers = sorted(set(layers) | {layer})
  languages = list(languages or retrieval_languages(task))
  unknown = [l for l in languages if l not in retrieval_languages(task)]
  if unknown:
    raise ValueError(f"unknown language(s) {unknown} for {task}: it has "
                     f"{', '.join(retrieval_languages(task))}")
  encoder = Encoder(run, from_phase, layers, pooling=pooling, include_special=include_special,
                    max_length=max_length, batch_size=batch_size)
  fn, metric = _RUNNERS[task]
  per_layer = {l: {} for l in layers}
  for lang in languages:
    for l, (predicted, scores) in fn(encoder, lang, data, split).items():
      per_layer[l][lang] = scores if isinstance(scores, dict) else {metric: scores}
      if l == layer and jax.process_index() == 0 and task != "bucc2018_gold_only":
        if split == "test":
          scoring.write_predictions(task, lang, predicted, out_dir / "predictions")
        else:
          folder = epath.Path(out_dir) / "predictions" / task
          folder.mkdir(parents=True, exist_ok=True)
          (folder / f"{split}-{lang}.json").write_text(json.dumps(predicted) + "\n")
  metrics = {m: {lang: per_layer[layer][lang][m] for lang in languages}
             for m in per_layer[layer][languages[0]]}
  by_layer = {str(l): {f"avg_{metric}": float(np.mean([v[metric] for v in per_layer[l].values()])),
                       metric: {lang: v[metric] for lang, v in per_layer[l].items()}}
              for l in layers}
  return {"task": task, "split": split, "from_phase": from_phase, "languages": languages,
          "layer": layer, "pooling": pooling, "include_special": include_special,
          "max_length": encoder.max_length, "bucc_duplicates": data.bucc_duplicates,
          "metrics": metrics,
          **{f"avg_{m}": float(np.mean(list(v.values()))) for m, v in metrics.items()},
          "layers": by_layer}


def layer_table(result: dict) -> str:
  """Markdown: one row per layer, one column per language, of the task's main metric."""
  metric = "map@20" if result["task"] in ranking.RANKING_TASKS else _RUNNERS[result["task"]][1]
  langs = result["languages"]
  lines = [f"| {result['task']} {metric} ({result['from_phase']}) | layer | "
           + " | ".join(langs) + " | avg |", "|" + "---|" * (len(langs) + 3)]
  for layer, v in result["layers"].items():
    mark = " *" if int(layer) == result["layer"] else ""
    lines.append(f"| | {layer}{mark} | " + " | ".join(f"{v[metric][l]:.1f}" for l in langs)
                 + f" | {v['avg_' + metric]:.1f} |")
  return "\n".join(lines)


def default_phase(run, task: str) -> str:
  """Where a retrieval task reads its encoder when no phase is named: Mewsli-X and LAReQA their
  dual-encoder phase; the others the intermediate model if the run has one (the paper's
  setting), else the pretrained encoder."""
  phases = run.phases
  if task in ranking.RANKING_TASKS:
    dual = [n for n, p in phases.items() if p.kind == "dual_encoder" and p.task == task]
    if not dual:
      raise ValueError(f"{task} needs a dual_encoder phase with task={task!r} in {run.dir}: add "
                       "one (configs/xtreme/targets.py:large,xtreme-r has it) or pass --from-phase")
    return dual[-1]
  return "intermediate" if "intermediate" in phases else "pretrained"


def evaluate_phases(run, tasks, phases=None, *, layers="all", benchmark: str = "xtreme") -> list:
  """Each retrieval task from each phase (default: every finished phase with an encoder), with
  a layer sweep; results under ``run_dir/retrieval-<phase>``, per-layer tables printed. The
  languages are the benchmark's, or the config's ``retrieval_languages[task]`` if it has them."""
  if phases is None:
    phases = [n for n, p in run.phases.items()
              if p.kind in ("pretrained", "train", "dual_encoder") and run.result(n)]
  results = []
  for phase in phases:
    out_dir = run.dir / f"retrieval-{phase}"
    own = run.config.get("retrieval_languages") or {}
    done = [evaluate_retrieval(run, task, phase, layers=layers, out_dir=out_dir,
                               languages=own.get(task) or retrieval_languages(task, benchmark))
            for task in tasks]
    write_results(out_dir, done, f"Retrieval from phase {phase}")
    if jax.process_index() == 0:
      print("\n\n".join(layer_table(r) for r in done) + "\n")
    results += done
  return results
