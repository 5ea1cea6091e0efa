"""Pooled sentence vectors of one phase's encoder, for several layers in one pass.

Vectors are mean-pooled over the attention mask (special tokens included, as the XTREME code
does; ``include_special=False`` drops them) or taken at ``<s>`` (``pooling="cls"``), from any
layer: 1-based, 0 being the embedding output. One forward pass pools every requested layer, so a
layer sweep costs one encoding.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from xtjax.predict import predict
from xtjax.steps import make_eval_step


class Encoder:
  """Pooled sentence vectors of one phase's encoder, for several layers in one pass."""

  def __init__(self, run, phase: str, layers: list[int], *, pooling: str = "mean",
               include_special: bool = True, max_length: int = 512, batch_size: int = 128):
    if pooling not in ("mean", "cls"):
      raise ValueError(f"unknown pooling {pooling!r}: use 'mean' or 'cls'")
    n = run.model_cfg.num_hidden_layers
    bad = [l for l in layers if not 0 <= l <= n]
    if bad:
      raise ValueError(f"layer(s) {bad} outside 0..{n} (1-based; 0 is the embedding output)")
    self.run, self.layers, self.batch_size = run, list(layers), batch_size
    self.max_length = min(max_length, run.model_cfg.max_position_embeddings - 2)
    model, self.param_sh = run.model(phase=phase)  # a prefix phase's prompts included
    self.params, _ = run.trained_params(phase, model, self.param_sh)
    specials = jnp.asarray(sorted({run.tokenizer.cls_token_id, run.tokenizer.sep_token_id}))

    def pooled(params, batch):
      out = model.bind(params).encoder(batch["input_ids"], batch["attention_mask"],
                                       output_hidden_states=True)
      hidden = jnp.stack([out.hidden_states[l] for l in self.layers], 1).astype(jnp.float32)
      if pooling == "cls":
        return hidden[:, :, 0]
      mask = batch["attention_mask"]
      if not include_special:
        mask = mask * ~jnp.isin(batch["input_ids"], specials)
      mask = mask[:, None, :, None].astype(jnp.float32)
      return (hidden * mask).sum(2) / jnp.maximum(mask.sum(2), 1.0)

    self.step = make_eval_step(pooled, self.param_sh, run.batch_sh)

  def __call__(self, texts: list[str]) -> np.ndarray:
    """[len(texts), len(layers), hidden] float32."""
    enc = self.run.tokenizer(list(texts), truncation=True, max_length=self.max_length,
                             padding="max_length", return_tensors="np")
    features = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}
    with jax.set_mesh(self.run.mesh):
      return predict(self.run, self.step, self.params, features, token_level=False,
                     batch_size=self.batch_size, buckets=self.run.config.data.eval_buckets)
