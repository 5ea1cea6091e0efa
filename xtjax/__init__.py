"""xtjax: English intermediate-task training for zero-shot cross-lingual transfer, in JAX."""

from xtjax.models.heads import TaskModel
from xtjax.models.loading import load_encoder, load_task_model, load_tokenizer, save_hf
from xtjax.models.xlmr import PRESETS, EncoderOutput, XLMRConfig, XLMREncoder

__version__ = "0.1.0"

__all__ = ["PRESETS", "EncoderOutput", "TaskModel", "XLMRConfig", "XLMREncoder", "load_encoder",
           "load_task_model", "load_tokenizer", "save_hf"]
