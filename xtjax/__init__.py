"""xtjax: English intermediate-task training for zero-shot cross-lingual transfer, in JAX.

The names below load on first use (PEP 562), so that ``import xtjax.rundir`` or a lock-holding
helper process does not pay for transformers, seqeval and the model code."""

import importlib

__version__ = "0.1.0"

_PUBLIC = {
    "TaskModel": "xtjax.models.heads",
    "load_encoder": "xtjax.models.loading",
    "load_task_model": "xtjax.models.loading",
    "load_tokenizer": "xtjax.models.loading",
    "save_hf": "xtjax.models.loading",
    "PRESETS": "xtjax.models.xlmr",
    "EncoderOutput": "xtjax.models.xlmr",
    "XLMRConfig": "xtjax.models.xlmr",
    "XLMREncoder": "xtjax.models.xlmr",
}
__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
  if name not in _PUBLIC:
    raise AttributeError(f"module 'xtjax' has no attribute {name!r}")
  return getattr(importlib.import_module(_PUBLIC[name]), name)


def __dir__():
  return sorted([*globals(), *_PUBLIC])
