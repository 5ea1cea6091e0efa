"""Task heads on top of `XLMREncoder`, matching Hugging Face's XLM-R heads weight for weight.

Every head is built as ``Head(cfg, num_labels, dtype, rngs)`` (heads with a fixed output size
ignore ``num_labels``) and called as ``head(encoder, batch, rng)``, returning logits; ``batch``
holds ``input_ids`` and ``attention_mask``. Which head a task kind uses is its `xtjax.kinds` record.
"""

from __future__ import annotations

import jax.numpy as jnp
from flax import nnx

from xtjax.models.prefix import Prefix, PrefixConfig
from xtjax.models.xlmr import (EMBED, VOCAB, LayerNorm, XLMRConfig, XLMREncoder, affine, dense,
                               dropout, gelu, sub_rng)


def encode(encoder: XLMREncoder, batch, rng, first_token_only: bool = False):
  return encoder(batch["input_ids"], batch["attention_mask"], rng=sub_rng(rng, 0),
                 first_token_only=first_token_only).last_hidden_state


class ClassificationHead(nnx.Module):
  """RoBERTa's sentence classifier: dropout, dense, tanh, dropout, out_proj on ``<s>``."""

  def __init__(self, cfg: XLMRConfig, num_labels: int, dtype, rngs: nnx.Rngs):
    self.rate = cfg.hidden_dropout_prob
    self.dense = dense(cfg, cfg.hidden_size, cfg.hidden_size, (EMBED, None), dtype, rngs)
    self.out_proj = dense(cfg, cfg.hidden_size, num_labels, (EMBED, None), dtype, rngs)

  def __call__(self, encoder, batch, rng=None):
    x = dropout(encode(encoder, batch, rng, True)[:, 0], self.rate, sub_rng(rng, 1))
    x = dropout(jnp.tanh(self.dense(x)), self.rate, sub_rng(rng, 2))
    return self.out_proj(x).astype(jnp.float32)


class MultipleChoiceHead(nnx.Module):
  """Pooler (dense + tanh on ``<s>``) and a 1-unit classifier per choice; ids are (B, C, L)."""

  def __init__(self, cfg: XLMRConfig, num_labels: int, dtype, rngs: nnx.Rngs):
    self.rate = cfg.hidden_dropout_prob
    self.pooler = dense(cfg, cfg.hidden_size, cfg.hidden_size, (EMBED, None), dtype, rngs)
    self.classifier = dense(cfg, cfg.hidden_size, 1, (EMBED, None), dtype, rngs)

  def __call__(self, encoder, batch, rng=None):
    b, c, length = batch["input_ids"].shape
    flat = {k: batch[k].reshape(b * c, length) for k in ("input_ids", "attention_mask")}
    pooled = jnp.tanh(self.pooler(encode(encoder, flat, rng, True)[:, 0]))
    logits = self.classifier(dropout(pooled, self.rate, sub_rng(rng, 1)))
    return logits.reshape(b, c).astype(jnp.float32)


class QuestionAnsweringHead(nnx.Module):
  """Start and end logits per token: returns (B, L, 2)."""

  def __init__(self, cfg: XLMRConfig, num_labels: int, dtype, rngs: nnx.Rngs):
    self.qa_outputs = dense(cfg, cfg.hidden_size, 2, (EMBED, None), dtype, rngs)

  def __call__(self, encoder, batch, rng=None):
    return self.qa_outputs(encode(encoder, batch, rng)).astype(jnp.float32)


class TokenClassificationHead(nnx.Module):

  def __init__(self, cfg: XLMRConfig, num_labels: int, dtype, rngs: nnx.Rngs):
    self.rate = cfg.hidden_dropout_prob
    self.classifier = dense(cfg, cfg.hidden_size, num_labels, (EMBED, None), dtype, rngs)

  def __call__(self, encoder, batch, rng=None):
    x = dropout(encode(encoder, batch, rng), self.rate, sub_rng(rng, 1))
    return self.classifier(x).astype(jnp.float32)


class MaskedLMHead(nnx.Module):
  """dense, exact GELU, LayerNorm, then the decoder tied to the word embeddings plus a bias."""

  def __init__(self, cfg: XLMRConfig, num_labels: int, dtype, rngs: nnx.Rngs):
    self.dense = dense(cfg, cfg.hidden_size, cfg.hidden_size, (EMBED, None), dtype, rngs)
    self.layer_norm = LayerNorm(cfg, rngs)
    self.bias = nnx.Param(jnp.zeros((cfg.vocab_size,), jnp.float32), out_sharding=(VOCAB,))

  def __call__(self, encoder, batch, rng=None):
    x = self.layer_norm(gelu(self.dense(encode(encoder, batch, rng))))
    table = encoder.embeddings.word_embeddings.embedding[...].astype(x.dtype)
    return affine(jnp.einsum("ble,ve->blv", x, table).astype(jnp.float32), None, self.bias[...])


class TaskModel(nnx.Module):
  """One encoder shared by named task heads: ``model(batch, task=name, rng=key)`` -> logits.

  ``heads`` maps each task name to (head class, number of labels), e.g.
  ``{"xnli": (ClassificationHead, 3)}``; `xtjax.kinds.head_specs` builds it for tasks.
  ``prefix``: deep prompts in the encoder (none when absent or of length 0)."""

  def __init__(self, cfg: XLMRConfig, heads: dict[str, tuple[type, int]], *, dtype=jnp.float32,
               remat: bool = False, prefix: PrefixConfig | None = None, rngs: nnx.Rngs):
    prompts = (lambda r: Prefix(cfg, prefix, r)) if prefix is not None and prefix.length else None
    self.encoder = XLMREncoder(cfg, dtype=dtype, remat=remat, prefix=prompts, rngs=rngs)
    with nnx.use_eager_sharding(False):
      self.heads = nnx.Dict({name: head(cfg, n, dtype, rngs)
                             for name, (head, n) in sorted(heads.items())})

  def __call__(self, batch, *, task: str, rng=None):
    return self.heads[task](self.encoder, batch, rng)
