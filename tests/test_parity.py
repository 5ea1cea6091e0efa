"""xtjax XLM-R vs Hugging Face's PyTorch XLM-R: every hidden state and logit within 1e-5, and
every parameter's gradient.

Tiny random PyTorch models are saved with ``save_pretrained`` and loaded through xtjax; batches
are padded (the second row is shorter), float32 on CPU.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import transformers as tf

import xtjax
from xtjax import kinds
from xtjax.models import convert
from xtjax.models.heads import TaskModel
from xtjax.models.hf import read_config
from xtjax.models.loading import read_hf_params
from xtjax.params import Model

TOL = 1e-5  # max |xtjax - torch|, float32 on CPU
TINY = dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
            intermediate_size=37, max_position_embeddings=64, type_vocab_size=1,
            hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)


def batch(shape=(2, 11), seed=0):
  rng = np.random.default_rng(seed)
  ids = rng.integers(3, 99, size=shape)
  mask = np.ones(shape, np.int64)
  ids[..., 0] = 0
  ids[1, 7:] = 1  # padding (pad id 1) in the second example
  mask[1, 7:] = 0
  return ids, mask


def save(model_cls, config_cls, path, seed=0, **kw):
  torch.manual_seed(seed)
  model = model_cls(config_cls(**TINY, **kw)).eval()
  model.save_pretrained(path)
  return model


def close(ours, theirs):
  ours, theirs = np.asarray(ours), theirs.detach().numpy()
  assert ours.shape == theirs.shape
  np.testing.assert_allclose(ours, theirs, atol=TOL, rtol=0)


@pytest.mark.parametrize("model_cls,config_cls", [
    (tf.XLMRobertaModel, tf.XLMRobertaConfig),
    (tf.XLMRobertaXLModel, tf.XLMRobertaXLConfig),
], ids=["post_ln", "pre_ln_xl"])
def test_encoder_hidden_states(tmp_path, model_cls, config_cls):
  ref = save(model_cls, config_cls, tmp_path)
  ids, mask = batch()
  out = xtjax.load_encoder(str(tmp_path))(ids, mask, output_hidden_states=True)
  with torch.no_grad():
    theirs = ref(torch.tensor(ids), attention_mask=torch.tensor(mask), output_hidden_states=True)
  assert len(out.hidden_states) == len(theirs.hidden_states) == TINY["num_hidden_layers"] + 1
  for a, b in zip(out.hidden_states, theirs.hidden_states):
    close(a, b)
  close(out.last_hidden_state, theirs.last_hidden_state)


HEADS = [
    ("classification", tf.XLMRobertaForSequenceClassification, 3, lambda o: o.logits, (2, 11)),
    ("token_classification", tf.XLMRobertaForTokenClassification, 5, lambda o: o.logits, (2, 11)),
    ("question_answering", tf.XLMRobertaForQuestionAnswering, 2,
     lambda o: torch.stack([o.start_logits, o.end_logits], -1), (2, 11)),
    ("multiple_choice", tf.XLMRobertaForMultipleChoice, 1, lambda o: o.logits, (2, 3, 11)),
    ("masked_lm", tf.XLMRobertaForMaskedLM, 0, lambda o: o.logits, (2, 11)),
]


@pytest.mark.parametrize("kind,model_cls,num_labels,logits,shape", HEADS, ids=[h[0] for h in HEADS])
def test_head_logits(tmp_path, kind, model_cls, num_labels, logits, shape):
  ref = save(model_cls, tf.XLMRobertaConfig, tmp_path, num_labels=max(num_labels, 2))
  ids, mask = batch(shape if len(shape) == 2 else (2, 11))
  if len(shape) == 3:  # three choices per example, the first shares example 0
    ids = np.stack([ids, ids[::-1], np.roll(ids, 1, 0)], 1)
    mask = np.stack([mask, mask[::-1], np.roll(mask, 1, 0)], 1)
  n = num_labels if kind in ("classification", "token_classification") else 0
  model = xtjax.load_task_model(str(tmp_path), {"t": (kind, n)}, checkpoint_head="t")
  ours = model({"input_ids": ids, "attention_mask": mask}, task="t")
  with torch.no_grad():
    theirs = logits(ref(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask)))
  close(ours, theirs)


GRADIENT_CASES = [
    ("classification", tf.XLMRobertaForSequenceClassification, tf.XLMRobertaConfig, 3),
    ("masked_lm", tf.XLMRobertaForMaskedLM, tf.XLMRobertaConfig, 0),
    ("classification", tf.XLMRobertaXLForSequenceClassification, tf.XLMRobertaXLConfig, 3),
]


@pytest.mark.parametrize("kind,model_cls,config_cls,num_labels", GRADIENT_CASES,
                         ids=["classification", "masked_lm", "classification_pre_ln_xl"])
def test_parameter_gradients(tmp_path, kind, model_cls, config_cls, num_labels):
  """The gradient of every parameter (biases and LayerNorm parameters through `affine`'s own
  backward pass) equals PyTorch autograd's, for one fixed cotangent on the real tokens' logits."""
  ref = save(model_cls, config_cls, tmp_path, num_labels=max(num_labels, 2))
  ids, mask = batch()
  cfg = read_config(tmp_path)
  model = Model.create(lambda rngs: TaskModel(cfg, {"t": (kinds.get(kind).head, num_labels)},
                                              rngs=rngs))
  params = dict(model.init(jax.random.key(0)))
  params.update(read_hf_params(tmp_path, model.shapes(), cfg, head=("t", kind)))
  inputs = {"input_ids": ids, "attention_mask": mask}
  shape = model.bind(params)(inputs, task="t").shape
  weights = np.random.default_rng(1).normal(size=shape).astype(np.float32)
  if len(shape) == 3:  # per-token logits: padding carries no loss (label -100), as in training
    weights *= mask[..., None]
  grads = jax.grad(lambda p: jnp.sum(model.bind(p)(inputs, task="t") * weights))(params)
  out = ref(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask))
  (out.logits * torch.from_numpy(weights)).sum().backward()
  theirs = {k.removeprefix("roberta."): v
            for k, v in ref.named_parameters(remove_duplicate=False)}  # the tied MLM decoder too
  for path, grad in grads.items():
    name, transpose = convert.to_hf(path, pre_layer_norm=cfg.pre_layer_norm,
                                    head_kinds={"t": kind})
    expected = theirs[name.removeprefix("roberta.")].grad.numpy()
    np.testing.assert_allclose(np.asarray(grad), expected.T if transpose else expected,
                               atol=1e-5 * np.abs(expected).max() + 1e-7, rtol=1e-4,
                               err_msg=path)


def test_pytorch_bin_and_export_round_trip(tmp_path):
  """pytorch_model.bin loads without torch in xtjax; save_hf writes what transformers loads."""
  ref = save(tf.XLMRobertaForMaskedLM, tf.XLMRobertaConfig, tmp_path / "st")
  bin_dir = tmp_path / "bin"
  bin_dir.mkdir()
  torch.save(ref.state_dict(), bin_dir / "pytorch_model.bin")
  (bin_dir / "config.json").write_text((tmp_path / "st" / "config.json").read_text())
  ids, mask = batch()
  model = xtjax.load_task_model(str(bin_dir), {"mlm": ("masked_lm", 0)}, checkpoint_head="mlm")
  with torch.no_grad():
    close(model({"input_ids": ids, "attention_mask": mask}, task="mlm"),
          ref(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask)).logits)

  from flax import nnx
  from xtjax.params import flatten
  params = flatten(nnx.state(model, nnx.Param))
  xtjax.save_hf(tmp_path / "out", params, model.encoder.cfg, {"mlm": "masked_lm"})
  back = tf.XLMRobertaForMaskedLM.from_pretrained(tmp_path / "out").eval()
  for name, value in ref.state_dict().items():
    np.testing.assert_array_equal(back.state_dict()[name].numpy(), value.numpy(), err_msg=name)


def test_bfloat16_safetensors(tmp_path):
  """Checkpoints stored in bfloat16 load exactly (upcast to float32 parameters)."""
  ref = save(tf.XLMRobertaModel, tf.XLMRobertaConfig, tmp_path / "f32")
  ref.to(torch.bfloat16).save_pretrained(tmp_path / "bf16")
  ref = ref.float()  # the same bfloat16-rounded weights, computed in float32
  ids, mask = batch()
  out = xtjax.load_encoder(str(tmp_path / "bf16"))(ids, mask)
  with torch.no_grad():
    close(out.last_hidden_state, ref(torch.tensor(ids), attention_mask=torch.tensor(mask))[0])


def test_hub_id_offline_from_cache(tmp_path, monkeypatch):
  """A hub id resolves from a populated Hugging Face cache with HF_HUB_OFFLINE=1."""
  src = tmp_path / "src"
  ref = save(tf.XLMRobertaModel, tf.XLMRobertaConfig, src)
  cache = tmp_path / "hub"
  snap = cache / "models--someone--tiny-xlmr" / "snapshots" / ("a" * 40)
  snap.mkdir(parents=True)
  for f in src.iterdir():
    (snap / f.name).write_bytes(f.read_bytes())
  (cache / "models--someone--tiny-xlmr" / "refs").mkdir()
  (cache / "models--someone--tiny-xlmr" / "refs" / "main").write_text("a" * 40)
  monkeypatch.setenv("HF_HUB_OFFLINE", "1")
  monkeypatch.setenv("HF_HUB_CACHE", str(cache))
  import huggingface_hub.constants as c
  monkeypatch.setattr(c, "HF_HUB_OFFLINE", True)
  monkeypatch.setattr(c, "HF_HUB_CACHE", str(cache))
  ids, mask = batch()
  out = xtjax.load_encoder("someone/tiny-xlmr")(ids, mask)
  with torch.no_grad():
    close(out.last_hidden_state, ref(torch.tensor(ids), attention_mask=torch.tensor(mask))[0])


def test_missing_checkpoint_is_a_clear_error(tmp_path, monkeypatch):
  monkeypatch.setenv("HF_HUB_OFFLINE", "1")
  with pytest.raises(FileNotFoundError, match="does not exist"):
    xtjax.load_encoder(str(tmp_path / "nope"))
  (tmp_path / "empty").mkdir()
  with pytest.raises(FileNotFoundError, match="config.json"):
    xtjax.load_encoder(str(tmp_path / "empty"))
