"""Reading and writing XLM-R checkpoints in the Hugging Face layout, without torch.

A checkpoint is a directory with ``config.json`` and either ``model.safetensors`` (possibly
sharded with ``model.safetensors.index.json``) or ``pytorch_model.bin`` (possibly sharded).
Hub ids resolve through ``huggingface_hub`` and its cache, so ``HF_HUB_OFFLINE=1`` works.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import jax
import numpy as np
from huggingface_hub import snapshot_download
from safetensors import safe_open

from xtjax.models.torch_pickle import load_torch_state_dict
from xtjax.models.xlmr import XLMRConfig

XLMR_MODEL_TYPES = {"xlm-roberta": False, "roberta": False, "xlm-roberta-xl": True}
WEIGHT_PATTERNS = ["config.json", "*.safetensors", "model.safetensors.index.json"]
BIN_PATTERNS = ["config.json", "pytorch_model*.bin", "pytorch_model.bin.index.json"]


def resolve(name_or_path: str) -> Path:
  """A local directory as is; otherwise downloads (or finds in the cache) the hub repo's weights."""
  if os.path.isdir(name_or_path):
    return Path(name_or_path)
  if name_or_path.startswith((".", "/", "~")) or name_or_path.count("/") > 1:
    raise FileNotFoundError(f"checkpoint directory {name_or_path} does not exist: "
                            "give an existing directory or a Hugging Face hub id")
  try:
    path = Path(snapshot_download(name_or_path, allow_patterns=WEIGHT_PATTERNS))
    if not list(path.glob("*.safetensors")):
      path = Path(snapshot_download(name_or_path, allow_patterns=BIN_PATTERNS))
  except Exception as e:  # The hub client raises many types; all mean "not available here".
    raise FileNotFoundError(
        f"cannot get checkpoint {name_or_path!r} from the Hugging Face hub or its cache "
        f"({type(e).__name__}): check the id, your network, or pre-download it with "
        f"`huggingface-cli download {name_or_path}`") from e
  return path


def read_config(path: Path) -> XLMRConfig:
  file = Path(path) / "config.json"
  if not file.exists():
    raise FileNotFoundError(f"{file} is missing: a Hugging Face checkpoint needs its config.json")
  raw = json.loads(file.read_text())
  if raw.get("model_type") not in XLMR_MODEL_TYPES:
    raise ValueError(f"{file}: model_type {raw.get('model_type')!r} is not XLM-R; "
                     f"xtjax loads {', '.join(XLMR_MODEL_TYPES)}")
  fields = {f: raw[f] for f in XLMRConfig.__dataclass_fields__ if f in raw}
  act = raw.get("hidden_act", "gelu")
  if act != "gelu":
    raise ValueError(f"{file}: hidden_act {act!r} is not supported (XLM-R uses exact 'gelu')")
  return XLMRConfig(**fields, pre_layer_norm=XLMR_MODEL_TYPES[raw["model_type"]])


class TensorReader:
  """Lazy access to the tensors of a checkpoint directory by Hugging Face name."""

  def __init__(self, path: Path):
    self.path = Path(path)
    self._files: dict[str, Path] = {}
    index = self.path / "model.safetensors.index.json"
    if index.exists():
      self._files = {k: self.path / f for k, f in json.loads(index.read_text())["weight_map"].items()}
    elif (self.path / "model.safetensors").exists():
      with safe_open(self.path / "model.safetensors", framework="np") as f:
        self._files = {k: self.path / "model.safetensors" for k in f.keys()}
    else:
      bins = sorted(self.path.glob("pytorch_model*.bin"))
      if not bins:
        raise FileNotFoundError(
            f"{self.path} has no model.safetensors or pytorch_model.bin: "
            "save the model with save_pretrained() or point at a complete checkpoint")
      self._arrays = {}
      for b in bins:
        self._arrays.update(load_torch_state_dict(b))
      self._files = {k: None for k in self._arrays}

  def keys(self) -> list[str]:
    return list(self._files)

  def shape(self, name: str) -> tuple[int, ...]:
    if self._files[name] is None:
      return self._arrays[name].shape
    with safe_open(self._files[name], framework="np") as f:
      return tuple(f.get_slice(name).get_shape())

  def read(self, name: str, index=()) -> np.ndarray:
    """The tensor, or only ``index`` (a tuple of slices) of it, as numpy."""
    if self._files[name] is None:
      return np.asarray(self._arrays[name][index])
    with safe_open(self._files[name], framework="np") as f:
      if f.get_slice(name).get_dtype() != "BF16":
        return f.get_slice(name)[index] if index else f.get_tensor(name)
    # numpy has no bfloat16: read through JAX on the host CPU, never on an accelerator.
    with jax.default_device(jax.devices("cpu")[0]), safe_open(self._files[name], framework="flax") as f:
      return np.asarray(f.get_slice(name)[index] if index else f.get_tensor(name))


def write_config(cfg: XLMRConfig, path: Path, **extra) -> None:
  raw = {k: getattr(cfg, k) for k in XLMRConfig.__dataclass_fields__ if k != "pre_layer_norm"}
  raw.update(model_type="xlm-roberta-xl" if cfg.pre_layer_norm else "xlm-roberta",
             architectures=["XLMRobertaXLForMaskedLM" if cfg.pre_layer_norm else "XLMRobertaForMaskedLM"],
             hidden_act="gelu", bos_token_id=0, eos_token_id=2, position_embedding_type="absolute",
             **extra)
  Path(path).mkdir(parents=True, exist_ok=True)
  (Path(path) / "config.json").write_text(json.dumps(raw, indent=2) + "\n")
