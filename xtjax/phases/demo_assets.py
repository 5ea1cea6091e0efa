"""Offline demo assets: generated multilingual NLI data in the hub layouts, a tokenizer trained on
it, and a tiny random-init XLM-R saved in the Hugging Face layout (the demo's "pretrained" model).
``config.demo.translate_train`` adds the MNLI train set rendered in every language (the layout of
XNLI-MT on the hub, ``facebook/xnli``), ``config.demo.mlm_texts`` that many monolingual lines per
language under ``assets/text`` (for the mlm task).

Written by the ``demo_assets`` phase of ``configs/demo.py`` under ``run_dir/assets``, so the rest
of the run goes through exactly the code paths of a real run.
"""

from __future__ import annotations

import jax
from etils import epath

from xtjax.data import synthetic
from xtjax.data.hub import load_hub_dataset
from xtjax.data.tasks import TATOEBA_CODES
from xtjax.models.heads import MaskedLMHead, TaskModel
from xtjax.models.loading import save_hf
from xtjax.models.xlmr import XLMRConfig
from xtjax.params import Model
from xtjax.phase_config import DemoAssetsPhase
from xtjax.run import PhaseResult, Run


def run_phase(run: Run, phase: DemoAssetsPhase) -> PhaseResult:
  """Writes the assets the demo config's other phases read (``config.demo`` sizes them)."""
  return PhaseResult(phase.name, phase.kind, details=prepare(run.dir, run.config.demo))


def prepare(run_dir, spec) -> dict:
  """Writes ``assets/hub`` (data mirror) and ``assets/model`` (tokenizer + model) under run_dir."""
  assets = epath.Path(run_dir) / "assets"
  info = synthetic.write_nli_mirror(assets / "hub", languages=tuple(spec.languages),
                                    n_train=spec.n_train, n_dev=spec.n_dev, n_test=spec.n_test,
                                    max_facts=spec.max_facts, seed=spec.seed,
                                    translate=bool(spec.get("translate_train", False)))
  texts_written = {}
  if spec.get("mlm_texts", 0):
    texts_written = synthetic.write_texts(assets / "text", languages=tuple(spec.languages),
                                          n=spec.mlm_texts, seed=spec.seed)
  # Like XLM-R's sentencepiece model, the tokenizer is trained on text of every language.
  xnli = load_hub_dataset(str(assets / "hub" / "google" / "xtreme"), "XNLI", "validation")
  mnli = load_hub_dataset(str(assets / "hub" / "nyu-mll" / "glue"), "mnli", "train")
  texts = list(xnli["sentence1"]) + list(xnli["sentence2"]) + list(mnli["premise"])
  retrieval = synthetic.write_retrieval_data(assets / "hub", assets / "bucc",
                                             languages=tuple(spec.languages),
                                             tatoeba_codes=TATOEBA_CODES, seed=spec.seed)
  cfg = write_model(texts, assets / "model", spec)
  return {"assets": str(assets), "vocab_size": cfg.vocab_size, "languages": list(info["languages"]),
          "retrieval": retrieval, "translations": info["translations"], "texts": texts_written,
          "model": {k: getattr(cfg, k) for k in ("hidden_size", "num_hidden_layers",
                                                 "num_attention_heads", "vocab_size")}}


def write_model(texts, out_dir, spec) -> XLMRConfig:
  """A tokenizer trained on ``texts`` and a random-init XLM-R of ``spec``'s size, saved together
  in the Hugging Face layout (a stand-in for a pretrained checkpoint)."""
  vocab = synthetic.train_tokenizer(texts, out_dir, vocab_size=spec.vocab_size)
  cfg = XLMRConfig(vocab_size=vocab, hidden_size=spec.hidden_size,
                   num_hidden_layers=spec.num_layers, num_attention_heads=spec.num_heads,
                   intermediate_size=4 * spec.hidden_size,
                   max_position_embeddings=spec.max_positions + 2,
                   hidden_dropout_prob=spec.dropout, attention_probs_dropout_prob=spec.dropout,
                   pre_layer_norm=spec.pre_layer_norm)
  model = Model.create(lambda rngs: TaskModel(cfg, {"mlm": (MaskedLMHead, 0)}, rngs=rngs))
  params = jax.jit(model.init)(jax.random.key(spec.seed))
  save_hf(out_dir, params, cfg, {"mlm": "masked_lm"})
  return cfg
