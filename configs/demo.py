"""The offline demo: the full three-phase run on generated data and a tiny random-init XLM-R.

    xtjax run --config configs/demo.py

Phases: demo_assets (generate data, tokenizer and model under run_dir/assets) -> pretrained
(Hugging Face checkpoint -> orbax) -> intermediate (MNLI) -> target (XNLI, trained on English
MNLI as XTREME does) -> zero_shot (XNLI test in every generated language). Runs on 2 CPU cores in
under 3 minutes; the same code runs configs/phang2020/mnli_xnli.py at full scale.
"""

from ml_collections import ConfigDict

from xtjax.config import base_config

LANGUAGES = ("en", "de", "fr", "es", "ru", "ar", "hi", "zh")


def get_config(arg: str = ""):
  del arg
  c = base_config()
  c.run_dir = "runs/demo"
  c.model.update(checkpoint="{run_dir}/assets/model", dtype="float32")
  c.data.update(hub_mirror="{run_dir}/assets/hub", bucc_dir="{run_dir}/assets/bucc", max_length=40)
  c.optim.update(lr=1e-3, warmup=0.1, weight_decay=0.01)
  c.train.update(batch_size=32, eval_batch_size=256, log_every=25, eval_every=100)
  c.demo = ConfigDict(dict(languages=LANGUAGES, n_train=12000, n_dev=300, n_test=500, seed=0,
                           vocab_size=1500, hidden_size=64, num_layers=2, num_heads=4,
                           max_positions=40, dropout=0.1, pre_layer_norm=False, max_facts=1))
  # xtjax eval --config configs/demo.py --tasks tatoeba,bucc2018 reads these languages.
  c.retrieval_languages = dict(tatoeba=LANGUAGES[1:], bucc2018=("de", "fr", "ru", "zh"),
                               bucc2018_gold_only=("de", "fr", "ru", "zh"))
  c.phases.demo_assets = dict(kind="demo_assets")
  c.phases.pretrained = dict(kind="pretrained", after="demo_assets")
  c.phases.intermediate = dict(kind="train", task="mnli", init_from="pretrained",
                               dont_load=["heads/.*"], train=dict(epochs=1.0))
  c.phases.target = dict(kind="train", task="xnli", init_from="intermediate",
                         head_map=dict(xnli="mnli"), train=dict(epochs=1.0))
  c.phases.zero_shot = dict(kind="eval", task="xnli", from_phase="target", split="test",
                            languages=LANGUAGES)
  return c
