"""Phang et al. (2020): XLM-R -> MNLI (intermediate) -> XNLI (target) -> zero-shot XNLI, 15 languages.

    xtjax run --config configs/phang2020/mnli_xnli.py:large --config.run_dir=gs://bucket/mnli_xnli

The argument picks the model (base, large, xl, xxl), and optionally a sharding preset after a
comma, e.g. ``:xl,fsdp``. Defaults follow jiant's X-STILTs scripts (../shared notes, section 3a).
"""

from xtjax.config import base_config, model_config


def get_config(arg: str = "large"):
  size, _, preset = (arg or "large").partition(",")
  c = base_config()
  model_config(c, size, preset)
  c.run_dir = f"runs/phang2020/mnli_xnli_{size}"
  # jiant tokenizes every task to 256 tokens; batch 32 as 4 x 8 accumulation on GPUs, one
  # batch of 32 on a TPU slice. Dev evaluation every 1000 steps on 500 examples, as jiant.
  c.data.max_length = 256
  c.train.update(batch_size=32, eval_every=1000, dev_examples=500)
  c.phases.pretrained = dict(kind="pretrained")
  # jiant's Simple API intermediate default: 3 epochs.
  c.phases.intermediate = dict(kind="train", task="mnli", init_from="pretrained",
                               dont_load=["heads/.*"], train=dict(epochs=3.0))
  # XTREME/jiant XNLI target recipe: 2 epochs on English MNLI, model selection on English dev.
  # The intermediate MNLI head is carried over for XNLI (same labels).
  c.phases.target = dict(kind="train", task="xnli", init_from="intermediate",
                         head_map=dict(xnli="mnli"), train=dict(epochs=2.0))
  c.phases.zero_shot = dict(kind="eval", task="xnli", from_phase="target", split="test",
                            languages=())
  return c
