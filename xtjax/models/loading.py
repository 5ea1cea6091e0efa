"""Hugging Face XLM-R checkpoints -> xtjax parameters (optionally sharded), and back."""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from safetensors.numpy import save_file
from transformers import AutoTokenizer

from xtjax import kinds
from xtjax.models import convert
from xtjax.models.hf import TensorReader, read_config, resolve, write_config
from xtjax.models.heads import TaskModel
from xtjax.models.xlmr import XLMRConfig, XLMREncoder
from xtjax.params import Model, Params

_HEAD_NAMES = {hf for table in convert.HEADS.values() for hf, _, _ in table}


def read_hf_params(path, shapes: dict, cfg: XLMRConfig, *, head: tuple[str, str] | None = None,
                   shardings: dict | None = None) -> Params:
  """Encoder parameters (and ``head`` = (name, kind), if given) for the paths in ``shapes``.

  With ``shardings``, every device reads only its own slice of each tensor, so models larger than
  one host's accelerator memory load directly into their sharded layout.
  """
  reader = TensorReader(path)
  mapping, unknown = {}, []
  for name in reader.keys():
    found = convert.to_ours(name, pre_layer_norm=cfg.pre_layer_norm, head=head)
    if found is not None:
      mapping[found[0]] = (name, found[1])
    elif convert.IGNORED.search(name):
      continue
    elif name.removeprefix("roberta.") not in _HEAD_NAMES and name not in _HEAD_NAMES:
      unknown.append(name)
  if unknown:
    raise ValueError(f"{path}: {len(unknown)} weights are not XLM-R weights, e.g. {unknown[:3]}: "
                     "is this an XLM-R checkpoint?")
  wanted = [k for k in shapes
            if k.startswith("encoder/") or (head is not None and k.startswith(f"heads/{head[0]}/"))]
  missing = [k for k in wanted if k not in mapping]
  if missing:
    raise ValueError(f"{path} lacks {len(missing)} parameters, e.g. {missing[:3]}: "
                     "the checkpoint does not match its config.json")
  params = {}
  for key in wanted:
    name, transpose = mapping[key]
    src = tuple(reader.shape(name))
    want = tuple(shapes[key].shape)
    if (src[::-1] if transpose else src) != want:
      raise ValueError(f"{path}: {name} has shape {src}, but {key} needs {want}")

    def read(index=(), name=name, transpose=transpose):
      index = tuple(index)[::-1] if transpose else tuple(index)
      x = reader.read(name, index)
      return np.asarray(x.T if transpose else x, dtype=np.float32)

    if shardings is None:
      params[key] = jnp.asarray(read())
    else:
      params[key] = jax.make_array_from_callback(want, shardings[key], read)
  return params


def hf_state_dict(params: Params, cfg: XLMRConfig, head_kinds: dict[str, str]) -> dict:
  """xtjax parameters as a Hugging Face state dict (numpy), e.g. for ``save_pretrained`` layouts."""
  prefix = "roberta." if head_kinds else ""
  out = {}
  for key, value in params.items():
    name, transpose = convert.to_hf(key, pre_layer_norm=cfg.pre_layer_norm, head_kinds=head_kinds)
    value = np.asarray(jax.device_get(value), np.float32)
    full = name if key.startswith("heads/") else prefix + name
    out[full] = np.ascontiguousarray(value.T if transpose else value)
  if "lm_head.dense.weight" in out:  # The tied decoder, as transformers writes it.
    out["lm_head.decoder.weight"] = out[prefix + "embeddings.word_embeddings.weight"]
  return out


def save_hf(path, params: Params, cfg: XLMRConfig, head_kinds: dict[str, str]) -> Path:
  """Writes config.json and model.safetensors in the Hugging Face layout."""
  path = Path(path)
  write_config(cfg, path)
  tensors = hf_state_dict(params, cfg, head_kinds)
  tensors.pop("lm_head.decoder.weight", None)  # Tied: safetensors stores shared memory once.
  save_file(tensors, str(path / "model.safetensors"), metadata={"format": "pt"})
  return path


def load_encoder(name_or_path: str, dtype: str = "float32") -> XLMREncoder:
  """An XLM-R encoder with pretrained weights from a hub id or a local Hugging Face directory.

  ``dtype`` is the compute dtype (parameters stay float32). The result is called as
  ``model(input_ids, attention_mask, output_hidden_states=True)`` and returns
  ``last_hidden_state`` and ``hidden_states`` (the embedding output first, as Hugging Face).
  """
  path = resolve(name_or_path)
  cfg = read_config(path)
  model = Model.create(lambda rngs: XLMREncoder(cfg, dtype=jnp.dtype(dtype), rngs=rngs))
  shapes = {f"encoder/{k}": v for k, v in model.shapes().items()}
  params = read_hf_params(path, shapes, cfg)
  return model.bind({k.removeprefix("encoder/"): v for k, v in params.items()})


def load_task_model(name_or_path: str, heads: dict[str, tuple[str, int]], *,
                    checkpoint_head: str | None = None, dtype: str = "float32") -> TaskModel:
  """A `TaskModel` with ``heads`` {name: (task kind, number of labels)} whose encoder (and the
  head named ``checkpoint_head``, taken from a task checkpoint such as
  XLMRobertaForSequenceClassification) come from the checkpoint; other heads are freshly
  initialised."""
  path = resolve(name_or_path)
  cfg = read_config(path)
  specs = {name: (kinds.get(kind).head, n) for name, (kind, n) in heads.items()}
  model = Model.create(lambda rngs: TaskModel(cfg, specs, dtype=jnp.dtype(dtype), rngs=rngs))
  head = (checkpoint_head, heads[checkpoint_head][0]) if checkpoint_head else None
  params = dict(model.init(jax.random.key(0)))
  params.update(read_hf_params(path, model.shapes(), cfg, head=head))
  return model.bind(params)


def load_tokenizer(name_or_path: str):
  """The checkpoint's tokenizer through transformers' AutoTokenizer (hub id or local directory)."""
  return AutoTokenizer.from_pretrained(name_or_path)


def load_config(name_or_path: str) -> tuple[Path, XLMRConfig]:
  path = resolve(name_or_path)
  return path, read_config(path)
