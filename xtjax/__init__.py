"""xtjax: English intermediate-task training for zero-shot cross-lingual transfer, in JAX."""

from xtjax.models import (PRESETS, TaskModel, XLMRConfig, XLMREncoder, load_encoder,
                          load_task_model, load_tokenizer, save_hf)

__version__ = "0.1.0"

__all__ = ["PRESETS", "TaskModel", "XLMRConfig", "XLMREncoder", "load_encoder", "load_task_model",
           "load_tokenizer", "save_hf"]
