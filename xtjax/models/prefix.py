"""Deep prompts (prefix tuning, P-tuning v2): P trained key and value vectors per layer that every
self-attention of a frozen XLM-R attends to besides the real tokens.

The layout is that of ``model/prefix_encoder.py`` in THUDM/P-tuning-v2 and in its fork
salesforce/MPT (Tu, Xiong, Zhou 2022): the prompts are one table of P rows of 2 x layers x hidden
values (``key_values``, here shaped (P, layers, 2, hidden): layer l's key is [:, l, 0], its value
[:, l, 1]), or, with the reparameterisation (``projection``), P embeddings of the hidden size
passed through Linear(hidden, ``hidden_size``) -> tanh -> Linear(``hidden_size``, 2 x layers x
hidden). Dropout at the model's hidden rate applies to the prompts of each example, as MPT's
``get_prompt``. The real tokens keep their positions (MPT, through Hugging Face's past key values,
shifts them by P; see docs/research_modes.md).

Initialisation: MPT loads its prefix models with ``from_pretrained`` (``model/utils.py``
``get_model``), whose default ``_fast_init`` in transformers 4.20.1 (MPT's ``requirements.txt``)
re-initialises every module the checkpoint lacks with ``RobertaPreTrainedModel._init_weights``:
the prompt table and the MLP's kernels N(0, ``initializer_range``), the MLP's biases zero.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import nnx

from xtjax.models.xlmr import EMBED, HEADS, XLMRConfig, dense, dropout


@dataclasses.dataclass(frozen=True)
class PrefixConfig:
  """P (``length``) prompts per layer; ``projection``: the reparameterisation MLP with
  ``hidden_size`` units (P-tuning v2's ``prefix_projection`` and ``prefix_hidden_size``)."""

  length: int = 16
  projection: bool = False
  hidden_size: int = 512


class Prefix(nnx.Module):
  """``prefix(batch_size, rng)`` -> keys and values, (layers, 2, batch, heads, P, head_dim),
  initialised as MPT's (module docstring)."""

  def __init__(self, cfg: XLMRConfig, prefix: PrefixConfig, rngs: nnx.Rngs):
    if prefix.length < 1:
      raise ValueError(f"prefix length {prefix.length}: a prefix needs at least one prompt")
    self.cfg, self.length, self.projection = cfg, prefix.length, prefix.projection
    layers, h, p = cfg.num_hidden_layers, cfg.hidden_size, prefix.length
    normal = nnx.initializers.normal(cfg.initializer_range)
    if prefix.projection:
      self.embedding = nnx.Param(normal(rngs.params(), (p, h)), out_sharding=(None, EMBED))
      self.dense = dense(cfg, h, prefix.hidden_size, (EMBED, None), jnp.float32, rngs)
      self.out = dense(cfg, prefix.hidden_size, layers * 2 * h, (None, None), jnp.float32, rngs)
    else:
      self.key_values = nnx.Param(normal(rngs.params(), (p, layers, 2, h)),
                                  out_sharding=(None, None, None, HEADS))

  def table(self) -> jax.Array:
    """The prompts as (P, layers, 2, hidden), float32."""
    cfg = self.cfg
    if not self.projection:
      return self.key_values[...]
    flat = self.out(jnp.tanh(self.dense(self.embedding[...])))
    return flat.reshape(self.length, cfg.num_hidden_layers, 2, cfg.hidden_size)

  def __call__(self, batch_size: int, rng) -> jax.Array:
    cfg = self.cfg
    table = self.table()
    kv = jnp.broadcast_to(table, (batch_size, *table.shape))
    kv = dropout(kv, cfg.hidden_dropout_prob, rng)
    kv = kv.reshape(batch_size, self.length, cfg.num_hidden_layers, 2, cfg.num_attention_heads,
                    cfg.head_dim)
    return kv.transpose(2, 3, 0, 4, 1, 5)
