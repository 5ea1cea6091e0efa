"""XLM-R encoder in Flax NNX, numerically matching Hugging Face's PyTorch XLM-R and XLM-R XL.

Parameters are float32 and carry logical axis names (``out_sharding`` metadata) that
`xtjax.sharding` maps onto mesh axes. Matmuls run in ``dtype`` (bfloat16 on TPU); softmax and
LayerNorm always run in float32. Dropout takes an explicit key (``rng``) so that the module holds
no RNG state and train steps stay pure functions.
"""

from __future__ import annotations

import dataclasses

import flax.core.spmd
import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import PartitionSpec as P

from xtjax.reductions import sum_rows

EMBED, VOCAB, HEADS, MLP, NORM, POS, KV = "embed", "vocab", "heads", "mlp", "norm", "pos", "kv"
BATCH = "batch"  # activations only


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


def threefry2x32(key: tuple, x: tuple) -> tuple:
  """The Threefry-2x32 hash (20 rounds, as `jax.random`), unrolled: XLA fuses it into one loop on
  every backend, where JAX's CPU lowering runs it as a loop over materialised arrays."""
  ks = (key[0], key[1], key[0] ^ key[1] ^ np.uint32(0x1BD11BDA))
  x0, x1 = x[0] + ks[0], x[1] + ks[1]
  for i in range(5):
    for r in ((13, 15, 26, 6), (17, 29, 16, 24))[i % 2]:
      x0 = x0 + x1
      x1 = x0 ^ ((x1 << np.uint32(r)) | (x1 >> np.uint32(32 - r)))
    x0, x1 = x0 + ks[(i + 1) % 3], x1 + ks[(i + 2) % 3] + np.uint32(i + 1)
  return x0, x1


def keep_mask(rng: jax.Array, shape: tuple, rate: float, counted_as: tuple | None = None
              ) -> jax.Array:
  """Bernoulli(1 - rate) booleans of ``shape``: the unrolled Threefry of per-element counters,
  keyed by a draw from ``rng`` (a drop probability exact to 2**-32). The counters keep the
  leading (batch) axis, so a sharded batch generates its own part of the mask. ``counted_as``:
  a larger array whose leading corner ``shape`` is; the mask is then that corner of its mask."""
  seed = jax.random.bits(rng, (2,), jnp.uint32)
  count, stride = jnp.zeros(shape, jnp.uint32), 1
  for axis in reversed(range(1, len(shape))):
    count += jax.lax.broadcasted_iota(jnp.uint32, shape, axis) * np.uint32(stride)
    stride *= (counted_as or shape)[axis]
  hi, lo = threefry2x32((seed[0], seed[1]), (jax.lax.broadcasted_iota(jnp.uint32, shape, 0), count))
  return (hi ^ lo) >= np.uint32(round(rate * 2 ** 32))


def dropout(x: jax.Array, rate: float, rng: jax.Array | None,
            counted_as: tuple | None = None) -> jax.Array:
  """Inverted dropout; identity when ``rng`` is None (evaluation) or rate is 0."""
  if rng is None or rate == 0.0:
    return x
  keep = keep_mask(rng, x.shape, rate, counted_as)
  return jnp.where(keep, x / (1.0 - rate), 0).astype(x.dtype)


def sub_rng(rng: jax.Array | None, *path: int) -> jax.Array | None:
  for i in path:
    rng = None if rng is None else jax.random.fold_in(rng, i)
  return rng


def constrain(x: jax.Array, axes: tuple) -> jax.Array:
  """Pins an activation's sharding by logical axis names under a mesh (`jax.set_mesh`) and
  logical rules (`nnx.logical_axis_rules`, as `xtjax.sharding` rules); without them, XLA's
  propagation decides. A mesh axis is used once (``batch`` before ``embed`` under fsdp)."""
  rules, mesh = flax.core.spmd.get_logical_axis_rules(), jax.sharding.get_abstract_mesh()
  if not rules or mesh.empty:
    return x
  rules, spec, used = dict(rules), [], set()
  for dim, logical in zip(x.shape, axes):
    target = rules.get(logical) if logical else None
    names = (target,) if isinstance(target, str) else tuple(target or ())
    names = tuple(a for a in names if mesh.shape.get(a, 1) > 1 and a not in used)
    if dim % np.prod([mesh.shape[a] for a in names], dtype=int):
      names = ()  # e.g. a batch smaller than the mesh: that dimension stays whole
    used.update(names)
    spec.append(names or None)
  return jax.lax.with_sharding_constraint(x, P(*spec))


@jax.custom_vjp
def affine(x: jax.Array, scale: jax.Array | None, bias: jax.Array) -> jax.Array:
  """``x * scale + bias`` over the last axis (no scale when None), with the parameters'
  gradients as `xtjax.reductions.sum_rows` (dense layers' biases, LayerNorm's scale and bias)."""
  return (x if scale is None else x * scale) + bias


def _affine_fwd(x, scale, bias):
  return affine(x, scale, bias), (None if scale is None else x, scale)


def _affine_bwd(res, g):
  x, scale = res
  if scale is None:
    return g, None, sum_rows(g)
  return g * scale, sum_rows(g * x), sum_rows(g)


affine.defvjp(_affine_fwd, _affine_bwd)


@jax.custom_vjp
def gelu(x: jax.Array) -> jax.Array:
  """Exact GELU in PyTorch's form, ``x/2 (1 + erf(x/sqrt 2))``, computed in float32, with its
  derivative written out (``cdf(x) + x pdf(x)``, as PyTorch's backward): cheaper on XLA:CPU
  than `jax.nn.gelu`'s erfc and its autodiff (a 32 x 384 forward of the benchmark's small model
  3% faster; its train step within noise)."""
  h = x.astype(jnp.float32)
  return (h * _normal_cdf(h)).astype(x.dtype)


def _normal_cdf(h):
  return 0.5 * (1.0 + jax.lax.erf(h * np.float32(np.sqrt(0.5))))


def _gelu_fwd(x):
  return gelu(x), x


def _gelu_bwd(x, g):
  h = x.astype(jnp.float32)
  pdf = jnp.exp(-0.5 * h * h) * np.float32(1 / np.sqrt(2 * np.pi))
  return ((g.astype(jnp.float32) * (_normal_cdf(h) + h * pdf)).astype(x.dtype),)


gelu.defvjp(_gelu_fwd, _gelu_bwd)


def rows_linear(x: jax.Array, kernel: jax.Array, bias: jax.Array | None,
                precision=None) -> jax.Array:
  """``x @ kernel + bias`` on the input's rows: the leading axes merge into one before the matmul,
  so the weight gradient is one plain (rows x in)^T (rows x out) product, where XLA:CPU otherwise
  transposes the activations in separate loops (the benchmark's small model: a train step 1.44 ->
  1.22 s, benchmarks/README.md); the bias is added by `affine` (its gradient as a product with
  ones: the same step 1.25 -> 1.16 s)."""
  y = jnp.dot(x.reshape(-1, x.shape[-1]), kernel, precision=precision)
  y = y if bias is None else affine(y, None, bias)
  return y.reshape(*x.shape[:-1], y.shape[-1])


class Dense(nnx.Linear):
  """`nnx.Linear` (same parameters) computed by `rows_linear`."""

  def __call__(self, x):
    bias = None if self.bias is None else self.bias[...]
    x, kernel, bias = self.promote_dtype((x, self.kernel[...], bias), dtype=self.dtype)
    return rows_linear(x, kernel, bias, self.precision)


def dense(cfg: XLMRConfig, n_in: int, n_out: int, axes: tuple, dtype, rngs: nnx.Rngs,
          use_bias: bool = True) -> Dense:
  return Dense(
      n_in, n_out, use_bias=use_bias, dtype=dtype, param_dtype=jnp.float32,
      kernel_init=nnx.initializers.normal(cfg.initializer_range),
      kernel_metadata={"out_sharding": axes}, bias_metadata={"out_sharding": axes[1:]},
      rngs=rngs)


class LayerNorm(nnx.LayerNorm):
  """LayerNorm computed in float32 (two-pass variance, as PyTorch) and cast back; scale and
  bias applied by `affine`."""

  def __init__(self, cfg: XLMRConfig, rngs: nnx.Rngs):
    super().__init__(cfg.hidden_size, epsilon=cfg.layer_norm_eps, dtype=jnp.float32,
                     scale_metadata={"out_sharding": (NORM,)},
                     bias_metadata={"out_sharding": (NORM,)}, rngs=rngs)

  def __call__(self, x):
    h = x.astype(jnp.float32)
    mean = h.mean(-1, keepdims=True)
    centered = h - mean
    var = jnp.square(centered).mean(-1, keepdims=True)
    normed = centered * jax.lax.rsqrt(var + self.epsilon)
    return affine(normed, self.scale[...], self.bias[...]).astype(x.dtype)


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

  def project(self, x, parts) -> list:
    """``x`` through the projections ``parts`` in one matmul: (batch, heads, length, head_dim)
    each."""
    dtype = self.query.dtype
    kernel = jnp.concatenate([p.kernel[...] for p in parts], 1).astype(dtype)  # (embed, n embed)
    bias = jnp.concatenate([p.bias[...] for p in parts]).astype(dtype)
    y = rows_linear(x.astype(dtype), kernel, bias)
    y = y.reshape(*x.shape[:2], len(parts), self.cfg.num_attention_heads, self.cfg.head_dim)
    return [constrain(y[:, :, i].transpose(0, 2, 1, 3), (BATCH, HEADS, None, None))
            for i in range(len(parts))]

  def __call__(self, x, mask_bias, rng, prompts=None, first_only: bool = False):
    """Self-attention of ``x`` (batch, length, embed); ``first_only``: the output at the first
    position only (batch, 1, embed), its query the only one computed."""
    if first_only:
      q, k, v = self.project(x[:, :1], (self.query,)) + self.project(x, (self.key, self.value))
    else:
      q, k, v = self.project(x, (self.query, self.key, self.value))
    if prompts is not None:  # (2, batch, heads, P, head_dim): attended before the real tokens
      k = jnp.concatenate([prompts[0].astype(k.dtype), k], 2)
      v = jnp.concatenate([prompts[1].astype(v.dtype), v], 2)
    ctx = attend(q, k, v, mask_bias, self.cfg.attention_probs_dropout_prob, sub_rng(rng, 0))
    ctx = ctx.reshape(*ctx.shape[:2], -1)
    return dropout(self.output(ctx), self.cfg.hidden_dropout_prob, sub_rng(rng, 1))


# Attention dropout numbers each weight by its (head, query, key) place in a grid of this many
# queries and keys, whatever the batch's length: a batch cut to its longest row, or the last
# layer's ``<s>`` query alone, draws the mask that the same places get when padded to any length.
ATTENTION_GRID = 2048


def attend(q, k, v, mask_bias, rate: float, rng):
  """Softmax attention of (batch, heads, length, head_dim) inputs -> (batch, length, heads,
  head_dim); scores, mask and softmax in float32. Keys and values may be longer than queries
  (prefixes), with ``mask_bias`` (batch, 1, 1, keys) additive; queries may be the first ones
  only. The softmax's division applies to the context rather than to the (keys times larger)
  probabilities, dropout to the unnormalised weights: the same function, one pass less over the
  scores (the benchmark's small model on CPU, in one process: train step 2-7% faster, a
  32 x 384 forward 2%)."""
  scores = jnp.einsum("bhqd,bhkd->bhqk", q, k, preferred_element_type=jnp.float32)
  scores = scores / np.sqrt(q.shape[-1]) + mask_bias
  weights = jnp.exp(scores - jax.lax.stop_gradient(scores.max(-1, keepdims=True)))
  total = weights.sum(-1, keepdims=True)
  if rng is not None and rate and max(weights.shape[2:]) > ATTENTION_GRID:
    raise ValueError(f"attention over {weights.shape[3]} keys exceeds dropout's grid of "
                     f"{ATTENTION_GRID}: raise xtjax.models.xlmr.ATTENTION_GRID")
  grid = (*weights.shape[:2], ATTENTION_GRID, ATTENTION_GRID)
  weights = dropout(weights, rate, rng, grid).astype(v.dtype)
  ctx = jnp.einsum("bhqk,bhkd->bhqd", weights, v, preferred_element_type=jnp.float32) / total
  return ctx.astype(v.dtype).transpose(0, 2, 1, 3)


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
    h = gelu(constrain(self.intermediate(x), (BATCH, None, MLP)))
    return dropout(self.output(h), self.cfg.hidden_dropout_prob, rng)

  def __call__(self, x, mask_bias, rng, prompts=None, first_only: bool = False):
    """``first_only``: the block's output at the first position only (batch, 1, embed)."""
    first = x[:, :1] if first_only else x
    if self.cfg.pre_layer_norm:
      x = first + self.attention(self.attention_norm(x), mask_bias, sub_rng(rng, 0), prompts,
                                 first_only)
      return x + self.ffn(self.ffn_norm(x), sub_rng(rng, 1))
    x = self.attention_norm(first + self.attention(x, mask_bias, sub_rng(rng, 0), prompts,
                                                   first_only))
    return self.ffn_norm(x + self.ffn(x, sub_rng(rng, 1)))


class XLMREncoder(nnx.Module):
  """The XLM-R body: ``model(input_ids, attention_mask)`` -> `EncoderOutput`. ``prefix(rngs)``
  builds deep prompts (`xtjax.models.prefix.Prefix`) that every layer's attention also attends
  to: the attention mask grows by their number, the real tokens keep their positions."""

  def __init__(self, cfg: XLMRConfig, *, dtype=jnp.float32, remat: bool = False,
               prefix=None, rngs: nnx.Rngs):
    self.cfg = cfg
    self.remat = remat
    # Shardings are applied explicitly (xtjax.sharding), never eagerly at variable creation.
    with nnx.use_eager_sharding(False):
      self.embeddings = Embeddings(cfg, dtype, rngs)
      self.layers = nnx.List([Layer(cfg, dtype, rngs) for _ in range(cfg.num_hidden_layers)])
      self.final_norm = LayerNorm(cfg, rngs) if cfg.pre_layer_norm else None
      self.prefix = prefix(rngs) if prefix is not None else None

  def __call__(self, input_ids, attention_mask=None, *, rng=None,
               output_hidden_states: bool = False, first_token_only: bool = False
               ) -> EncoderOutput:
    """``first_token_only``: the last layer computes its output at ``<s>`` only, all that
    sentence-level heads read (the last hidden state is then (batch, 1, embed)): the same
    numbers without that layer's other queries, attention outputs and feed-forward rows."""
    if attention_mask is None:
      attention_mask = (input_ids != self.cfg.pad_token_id).astype(jnp.int32)
    mask_bias = jnp.where(attention_mask[:, None, None, :] > 0, 0.0,
                          jnp.finfo(jnp.float32).min).astype(jnp.float32)
    prompts = None
    if self.prefix is not None:  # (layers, 2, batch, heads, P, head_dim), never masked
      prompts = self.prefix(input_ids.shape[0], sub_rng(rng, len(self.layers) + 1))
      mask_bias = jnp.concatenate(
          [jnp.zeros(mask_bias.shape[:3] + (prompts.shape[4],), mask_bias.dtype), mask_bias], -1)
    x = constrain(self.embeddings(input_ids, sub_rng(rng, 0)), (BATCH, None, EMBED))
    n = len(self.layers)
    scanned = (n - first_token_only) if self.remat else 0
    hidden = [x]
    if scanned:
      hidden += self.scanned_layers(x, mask_bias, rng, prompts, scanned)
      x = hidden[-1]
    for i in range(scanned, n):
      layer_prompts = None if prompts is None else prompts[i]
      x = self.layers[i](x, mask_bias, sub_rng(rng, i + 1), layer_prompts,
                         first_only=first_token_only and i == n - 1)
      x = constrain(x, (BATCH, None, EMBED))
      hidden.append(x)
    if self.final_norm is not None:  # As Hugging Face, the last hidden state is normalised too.
      x = hidden[-1] = self.final_norm(x)
    return EncoderOutput(x, tuple(hidden) if output_hidden_states else None)

  def scanned_layers(self, x, mask_bias, rng, prompts, count: int) -> list:
    """The first ``count`` layers as one rematerialised `jax.lax.scan` over their stacked
    parameters: the backward pass recomputes each layer, XLA compiles the layer once and holds
    one layer's gathered (fsdp) weights at a time. Returns every layer's output."""
    graphdef, _ = nnx.split(self.layers[0])
    stacked = jax.tree.map(lambda *v: jnp.stack(v),
                           *[nnx.state(layer) for layer in self.layers[:count]])

    def body(x, inputs):
      state, i, layer_prompts = inputs
      layer = nnx.merge(graphdef, state)
      x = constrain(layer(x, mask_bias, sub_rng(rng, i + 1), layer_prompts), (BATCH, None, EMBED))
      return x, x

    prompts = None if prompts is None else prompts[:count]
    _, out = jax.lax.scan(jax.checkpoint(body), x, (stacked, jnp.arange(count), prompts))
    return list(out)
