"""XLM-R in Flax NNX: encoder, task heads, and Hugging Face checkpoint loading."""

from xtjax.models.heads import TaskModel
from xtjax.models.loading import load_encoder, load_task_model, load_tokenizer, save_hf
from xtjax.models.xlmr import PRESETS, EncoderOutput, XLMRConfig, XLMREncoder

__all__ = ["PRESETS", "EncoderOutput", "TaskModel", "XLMRConfig", "XLMREncoder", "load_encoder",
           "load_task_model", "load_tokenizer", "save_hf"]
