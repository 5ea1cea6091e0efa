"""Defaults shared by every config file; each file's ``get_config(arg)`` starts from `base_config`."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from ml_collections import ConfigDict, config_dict

from xtjax.sharding import PRESETS


def base_config() -> ConfigDict:
  c = ConfigDict()
  c.run_dir = "runs/default"
  c.seed = 0
  # Hub id or local Hugging Face directory; tokenizer defaults to the same place.
  c.model = ConfigDict(dict(checkpoint="xlm-roberta-large", tokenizer="", dtype="bfloat16",
                            remat=False))
  c.mesh = PRESETS["data"]["mesh"]
  c.sharding_rules = PRESETS["data"]["rules"]
  # source: 'hub' (Hugging Face datasets) or 'tfds' (tensorflow-datasets, in tfds_data_dir).
  # hub_mirror: a local directory laid out like the hub (repo/config/*.parquet) used instead of it.
  # strict: malformed rows are an error instead of excluded-and-reported.
  # max_length 128 and doc_stride 128 as XTREME (QA phases set max_length 384). Evaluation sorts
  # rows by length and pads each batch to the shortest of eval_buckets (or max_length) that holds
  # its longest row: one compile per bucket used (steps of 16 from 256 to 384, where QA windows
  # lie; on benchmarks/eval_throughput.py's lengths XNLI uses 6 buckets, XQuAD 11, and batches
  # hold 80% and 93% real tokens). Training cuts each batch to the shortest of train_buckets
  # (or max_length) that holds its longest row, the same rows in the same order, with dropout
  # drawn by position so that the numbers are those of the padded batch (QA keeps max_length:
  # its loss spans the padding); () pads every batch to max_length.
  # bucc_dir: the official BUCC 2018 archives unpacked (bucc2018/<lang>-en/...); mewslix_dir:
  # the files of get-mewsli-x.sh; lareqa_dir: the LAReQA release with xquad-r/<lang>.json.
  # ccgbank_dir: a licensed CCGbank (LDC2005T13) with data/AUTO. mlm_sources: text for the mlm
  # task, hub datasets as 'repo[:config]' or .txt files/globs; the last mlm_dev_texts lines of
  # each are held out, mlm_max_texts caps the lines read per source (0: all).
  # ud_dir: the official UD releases (ud-treebanks-v2.5 and, for XTREME-R's lt pl ro uk wo, v2.7;
  # extracted or .tgz) read as XTREME does (xtjax.data.udpos); unset: the hub's udpos.<Name>,
  # which merges every treebank of a language name (Ancient Greek into Greek, ...).
  # QA (xtjax.data.qa): doc_stride is the step between window starts and max_query_length the
  # question's token cap (XTREME and jiant: 128, 64); qa_postprocess makes the answer text:
  # "offsets" (the context cut at token offsets, exact in every language), "official" (XTREME's
  # run_squad get_final_text) or "jiant" (get_final_text except for zh).
  # mc_prompt: the first segment of a multiple-choice input, a format string of {premise},
  # {question} (COPA's connective in jiant's words) and {connective} (COPA's "cause"/"effect";
  # XTREME's XCOPA: "{premise} What was the {connective}?").
  # bucc_duplicates: "expand" maps a mined sentence to every line holding it; "drop" is
  # upstream's read_sent2id, which never mines a sentence found on several lines.
  # dev_task: select the model on this task's dev split instead of the trained task's (jiant
  # selects XNLI models on MNLI's); "" keeps the task's own.
  # translations: {translate-train task: hub dataset} reads that task's translations from a hub
  # dataset with one config per language (split train, the English task's columns) instead of
  # TFDS, e.g. {"xnli_translate_train": "facebook/xnli"} (XNLI-MT, the XNLI paper's machine
  # translations, which TFDS notes differ from XTREME's); translate_languages: translate-train
  # tasks add only the translations into these languages (none: all of XTREME's).
  c.data = ConfigDict(dict(source="hub", hub_mirror=config_dict.placeholder(str),
                           tfds_data_dir=config_dict.placeholder(str), strict=False,
                           max_length=128, doc_stride=128, max_query_length=64,
                           qa_postprocess="offsets", mc_prompt="{premise} {question}",
                           eval_buckets=(32, 48, 64, 80, 96, 112, 128, 160, 192, 224, 256, 272,
                                         288, 304, 320, 336, 352, 368, 384, 416, 448, 480,
                                         512),
                           train_buckets=(32, 64, 96, 128, 192, 256, 320, 384, 448, 512),
                           ccgbank_dir=config_dict.placeholder(str),
                           bucc_dir=config_dict.placeholder(str),
                           ud_dir=config_dict.placeholder(str), bucc_duplicates="expand",
                           dev_task="", mewslix_dir=config_dict.placeholder(str),
                           lareqa_dir=config_dict.placeholder(str), mlm_sources=(),
                           mlm_max_texts=0, mlm_dev_texts=1000, translations=ConfigDict(),
                           translate_languages=()))
  # jiant's defaults (jiant/shared/model_setup.py): AdamW, lr 1e-5, eps 1e-8, weight decay 0.01,
  # 10% linear warmup then linear decay, clipping at 1.0. warmup < 1 is a fraction of the
  # phase's steps, >= 1 a number of steps (XTREME's QA: 500).
  c.optim = ConfigDict(dict(lr=1e-5, warmup=0.1, weight_decay=0.01, b1=0.9, b2=0.999, eps=1e-8,
                            clip=1.0, grad_accum_steps=1, freeze=()))
  # steps=0 means epochs * train size / batch_size; dev_examples=0 evaluates the whole dev set.
  # Dropout keys use the hardware RNG ("rbg"), much cheaper than threefry on TPU and CPU alike.
  # patience: stop after this many dev evaluations without improvement (0: never; jiant: 30).
  # mix_temperature: multi-task phases draw each batch's task with probability proportional to
  # its training-set size ** (1 / mix_temperature) (1: size-proportional, as jiant).
  # selection: the step a phase hands on, "best_dev" (the best dev evaluation) or "last".
  c.train = ConfigDict(dict(batch_size=32, eval_batch_size=128, epochs=2.0, steps=0,
                            mix_temperature=1.0, patience=0, selection="best_dev",
                            log_every=50, eval_every=1000, dev_examples=0, keep=2,
                            async_checkpoints=True, rng_impl="rbg"))
  c.phases = ConfigDict()
  return c


def sharding_preset(c: ConfigDict, name: str) -> None:
  """Applies one of `xtjax.sharding.PRESETS` ('data', 'fsdp', 'tensor') to config ``c``."""
  if name not in PRESETS:
    raise ValueError(f"unknown sharding preset {name!r}: use {', '.join(PRESETS)}")
  c.mesh = PRESETS[name]["mesh"]
  c.sharding_rules = PRESETS[name]["rules"]


MODELS = {"base": "FacebookAI/xlm-roberta-base", "large": "FacebookAI/xlm-roberta-large",
          "xl": "facebook/xlm-roberta-xl", "xxl": "facebook/xlm-roberta-xxl"}


def model_config(c: ConfigDict, size: str, preset: str = "") -> None:
  """Points ``c`` at XLM-R ``size`` (base, large, xl, xxl) with a sharding preset (default: fsdp
  and rematerialisation for xl/xxl, data parallel otherwise)."""
  if size not in MODELS:
    raise ValueError(f"unknown model size {size!r}: use one of {', '.join(MODELS)}")
  c.model.checkpoint = MODELS[size]
  c.model.remat = size in ("xl", "xxl")
  sharding_preset(c, preset or ("fsdp" if size in ("xl", "xxl") else "data"))


def load_config_file(spec: str) -> ConfigDict:
  """``get_config(ARG)`` (or ``get_config()``) of the config file of ``FILE[:ARG]``. Config
  files are loaded by path, not as a package: one builds on another with `sibling_config`."""
  path, colon, arg = spec.partition(":")
  module_spec = importlib.util.spec_from_file_location(f"xtjax_config_{Path(path).stem}", path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  config = module.get_config(arg) if colon else module.get_config()
  if not isinstance(config, ConfigDict):
    raise ValueError(f"{path}: get_config() returned {type(config).__name__}, not a ConfigDict")
  return config


def sibling_config(config_file: str, name: str, arg: str | None = None) -> ConfigDict:
  """The config of file ``name``.py beside ``config_file`` (a config's ``__file__``), with
  ``arg``."""
  path = Path(config_file).with_name(f"{name}.py")
  return load_config_file(str(path) if arg is None else f"{path}:{arg}")


def grid_sweep(config_file: str, name: str, arg: str) -> tuple[ConfigDict, ConfigDict]:
  """(phang2020.py's grid at ``arg`` beside ``config_file``, a new sweep ``name`` with the grid's
  split, run and setup, in ``runs/sweeps/<name>_<size>``)."""
  grid = sibling_config(config_file, "phang2020", arg)
  c = ConfigDict()
  c.sweep_dir = f"runs/sweeps/{name}_{arg.partition(',')[0]}"
  c.split, c.run, c.setup = grid.split, grid.run, grid.setup
  return grid, c
