"""XLM-R encoder in Flax NNX, numerically matching Hugging Face's PyTorch XLM-R and XLM-R XL.

Parameters are float32 and carry logical axis names (``out_sharding`` metadata) that
`xtjax.sharding` maps onto mesh axes. Matmuls run in ``dtype`` (bfloat16 on TPU); softmax and
LayerNorm always run in float32. Dropout takes an explicit key (``rng``) so that the module holds
no RNG state and train steps stay pure functions.
"""

from __future__ import annotations

import dataclasses

import flax.struct
import jax
import jax.numpy as jnp
from flax import nnx

EMBED, VOCAB, HEADS, MLP, NORM, POS, KV = "embed", "vocab", "heads", "mlp", "norm", "pos", "kv"


@dataclasses.dataclass(frozen=True)
class XLMRConfig:
  """Architecture hyperparameters; field names follow Hugging Face's config.json."""

  vocab_size: int = 250002
  hidden_size: int = 768
  num_hidden_layers: int = 12
  num_attention_heads: int = 12
  intermediate_size: int = 3072
  max_position_embeddings: int = 514
  type_vocab_size: int = 1
  layer_norm_eps: float = 1e-5
  pad_token_id: int = 1
  hidden_dropout_prob: float = 0.1
  attention_probs_dropout_prob: float = 0.1
  pre_layer_norm: bool = False  # True for XLM-R XL/XXL (model_type "xlm-roberta-xl").
  initializer_range: float = 0.02

  @property
  def head_dim(self) -> int:
    return self.hidden_size // self.num_attention_heads


# Architectures of the released checkpoints (runs read each checkpoint's config.json; presets serve
# benchmarks and shape checks without a download).
PRESETS = {
    "xlm-roberta-base": XLMRConfig(),
    "xlm-roberta-large": XLMRConfig(hidden_size=1024, num_hidden_layers=24,
                                    num_attention_heads=16, intermediate_size=4096),
    "facebook/xlm-roberta-xl": XLMRConfig(vocab_size=250880, hidden_size=2560, num_hidden_layers=36,
                                          num_attention_heads=32, intermediate_size=10240,
                                          pre_layer_norm=True),
    "facebook/xlm-roberta-xxl": XLMRConfig(vocab_size=250880, hidden_size=4096, num_hidden_layers=48,
                                           num_attention_heads=32, intermediate_size=16384,
                                           pre_layer_norm=True),
}
PRESETS["FacebookAI/xlm-roberta-base"] = PRESETS["xlm-roberta-base"]
PRESETS["FacebookAI/xlm-roberta-large"] = PRESETS["xlm-roberta-large"]


@flax.struct.dataclass
class EncoderOutput:
  last_hidden_state: jax.Array
  hidden_states: tuple[jax.Array, ...] | None = None


def dropout(x: jax.Array, rate: float, rng: jax.Array | None) -> jax.Array:
  """Inverted dropout; identity when ``rng`` is None (evaluation) or rate is 0."""
  if rng is None or rate == 0.0:
    return x
  keep = jax.random.bernoulli(rng, 1.0 - rate, x.shape)
  return jnp.where(keep, x / (1.0 - rate), 0).astype(x.dtype)


def sub_rng(rng: jax.Array | None, *path: int) -> jax.Array | None:
  for i in path:
    rng = None if rng is None else jax.random.fold_in(rng, i)
  return rng


def dense(cfg: XLMRConfig, n_in: int, n_out: int, axes: tuple, dtype, rngs: nnx.Rngs,
          use_bias: bool = True) -> nnx.Linear:
  return nnx.Linear(
      n_in, n_out, use_bias=use_bias, dtype=dtype, param_dtype=jnp.float32,
      kernel_init=nnx.initializers.normal(cfg.initializer_range),
      kernel_metadata={"out_sharding": axes}, bias_metadata={"out_sharding": axes[1:]},
      rngs=rngs)


class LayerNorm(nnx.LayerNorm):
  """LayerNorm computed in float32 (two-pass variance, as PyTorch) and cast back."""

  def __init__(self, cfg: XLMRConfig, rngs: nnx.Rngs):
    super().__init__(cfg.hidden_size, epsilon=cfg.layer_norm_eps, dtype=jnp.float32,
                     use_fast_variance=False, scale_metadata={"out_sharding": (NORM,)},
                     bias_metadata={"out_sharding": (NORM,)}, rngs=rngs)

  def __call__(self, x):
    return super().__call__(x.astype(jnp.float32)).astype(x.dtype)


def embed(cfg: XLMRConfig, n: int, axes: tuple, dtype, rngs: nnx.Rngs) -> nnx.Embed:
  return nnx.Embed(n, cfg.hidden_size, dtype=dtype, param_dtype=jnp.float32,
                   embedding_init=nnx.initializers.normal(cfg.initializer_range),
                   embedding_metadata={"out_sharding": axes}, rngs=rngs)


class Embeddings(nnx.Module):

  def __init__(self, cfg: XLMRConfig, dtype, rngs: nnx.Rngs):
    self.cfg = cfg
    self.word_embeddings = embed(cfg, cfg.vocab_size, (VOCAB, EMBED), dtype, rngs)
    self.position_embeddings = embed(cfg, cfg.max_position_embeddings, (POS, EMBED), dtype, rngs)
    self.token_type_embeddings = embed(cfg, cfg.type_vocab_size, (None, EMBED), dtype, rngs)
    self.layer_norm = None if cfg.pre_layer_norm else LayerNorm(cfg, rngs)

  def __call__(self, input_ids, rng):
    # RoBERTa positions count non-padding tokens and start after the padding index.
    not_pad = (input_ids != self.cfg.pad_token_id).astype(jnp.int32)
    positions = jnp.cumsum(not_pad, axis=1) * not_pad + self.cfg.pad_token_id
    x = (self.word_embeddings(input_ids) + self.token_type_embeddings(jnp.zeros_like(input_ids))
         + self.position_embeddings(positions))
    if self.layer_norm is not None:
      x = self.layer_norm(x)
    return dropout(x, self.cfg.hidden_dropout_prob, rng)


class SelfAttention(nnx.Module):

  def __init__(self, cfg: XLMRConfig, dtype, rngs: nnx.Rngs):
    self.cfg = cfg
    h = cfg.hidden_size
    self.query = dense(cfg, h, h, (EMBED, HEADS), dtype, rngs)
    self.key = dense(cfg, h, h, (EMBED, HEADS), dtype, rngs)
    self.value = dense(cfg, h, h, (EMBED, HEADS), dtype, rngs)
    self.output = dense(cfg, h, h, (HEADS, EMBED), dtype, rngs)

  def __call__(self, x, mask_bias, rng):
    cfg = self.cfg
    split = lambda t: t.reshape(*t.shape[:-1], cfg.num_attention_heads, cfg.head_dim)
    q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
    scores = jnp.einsum("bqhd,bkhd->bhqk", q, k).astype(jnp.float32) / jnp.sqrt(cfg.head_dim)
    probs = jax.nn.softmax(scores + mask_bias, axis=-1)
    probs = dropout(probs, cfg.attention_probs_dropout_prob, sub_rng(rng, 0)).astype(v.dtype)
    ctx = jnp.einsum("bhqk,bkhd->bqhd", probs, v).reshape(x.shape)
    return dropout(self.output(ctx), cfg.hidden_dropout_prob, sub_rng(rng, 1))


class Layer(nnx.Module):
  """One transformer block; post-LN (XLM-R) or pre-LN (XLM-R XL/XXL) by config."""

  def __init__(self, cfg: XLMRConfig, dtype, rngs: nnx.Rngs):
    self.cfg = cfg
    self.attention = SelfAttention(cfg, dtype, rngs)
    self.attention_norm = LayerNorm(cfg, rngs)
    self.intermediate = dense(cfg, cfg.hidden_size, cfg.intermediate_size, (EMBED, MLP), dtype, rngs)
    self.output = dense(cfg, cfg.intermediate_size, cfg.hidden_size, (MLP, EMBED), dtype, rngs)
    self.ffn_norm = LayerNorm(cfg, rngs)

  def ffn(self, x, rng):
    h = jax.nn.gelu(self.intermediate(x), approximate=False)
    return dropout(self.output(h), self.cfg.hidden_dropout_prob, rng)

  def __call__(self, x, mask_bias, rng):
    if self.cfg.pre_layer_norm:
      x = x + self.attention(self.attention_norm(x), mask_bias, sub_rng(rng, 0))
      return x + self.ffn(self.ffn_norm(x), sub_rng(rng, 1))
    x = self.attention_norm(x + self.attention(x, mask_bias, sub_rng(rng, 0)))
    return self.ffn_norm(x + self.ffn(x, sub_rng(rng, 1)))


class XLMREncoder(nnx.Module):
  """The XLM-R body: ``model(input_ids, attention_mask)`` -> `EncoderOutput`."""

  def __init__(self, cfg: XLMRConfig, *, dtype=jnp.float32, remat: bool = False,
               rngs: nnx.Rngs):
    self.cfg = cfg
    self.remat = remat
    # Shardings are applied explicitly (xtjax.sharding), never eagerly at variable creation.
    with nnx.use_eager_sharding(False):
      self.embeddings = Embeddings(cfg, dtype, rngs)
      self.layers = nnx.List([Layer(cfg, dtype, rngs) for _ in range(cfg.num_hidden_layers)])
      self.final_norm = LayerNorm(cfg, rngs) if cfg.pre_layer_norm else None

  def __call__(self, input_ids, attention_mask=None, *, rng=None,
               output_hidden_states: bool = False) -> EncoderOutput:
    if attention_mask is None:
      attention_mask = (input_ids != self.cfg.pad_token_id).astype(jnp.int32)
    mask_bias = jnp.where(attention_mask[:, None, None, :] > 0, 0.0,
                          jnp.finfo(jnp.float32).min).astype(jnp.float32)
    x = self.embeddings(input_ids, sub_rng(rng, 0))
    hidden = [x]
    for i, layer in enumerate(self.layers):
      call = nnx.remat(type(layer).__call__) if self.remat else type(layer).__call__
      x = call(layer, x, mask_bias, sub_rng(rng, i + 1))
      hidden.append(x)
    if self.final_norm is not None:  # As Hugging Face, the last hidden state is normalised too.
      x = hidden[-1] = self.final_norm(x)
    return EncoderOutput(x, tuple(hidden) if output_hidden_states else None)
