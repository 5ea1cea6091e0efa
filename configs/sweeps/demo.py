"""A demo-scale sweep, offline on a laptop CPU in a few minutes: the sweep machinery of
configs/sweeps/phang2020.py on the generated data and tiny model of configs/demo.py.

    xtjax sweep --config configs/sweeps/demo.py
    xtjax report --sweep runs/sweeps/demo

The assets (data mirror with parallel text, BUCC archives, tokenizer, random-init "pretrained"
model) are generated once, in ``<sweep_dir>/.setup``, and every setting starts from that same
model. Settings: ``none`` (targets from the "pretrained" model), ``mnli`` (one intermediate epoch
of MNLI first) and ``mnli_half`` (half an epoch). Targets: XNLI (trained on English MNLI) and
Tatoeba and BUCC 2018 straight from the setting's encoder; the report shows what the
intermediate phase adds to each.
"""

from ml_collections import ConfigDict

from xtjax.config import base_config

LANGUAGES = ("en", "de", "fr", "es", "ru", "ar", "hi", "zh")


def get_config(arg: str = ""):
  del arg
  run = base_config()
  run.model.update(checkpoint="{sweep_dir}/.setup/assets/model", dtype="float32")
  run.data.update(hub_mirror="{sweep_dir}/.setup/assets/hub",
                  bucc_dir="{sweep_dir}/.setup/assets/bucc", max_length=40)
  run.optim.update(lr=1e-3, warmup=0.1, weight_decay=0.01)
  run.train.update(batch_size=32, eval_batch_size=256, log_every=25, eval_every=100)
  run.demo = ConfigDict(dict(languages=LANGUAGES, n_train=6000, n_dev=300, n_test=500, seed=0,
                             vocab_size=1500, hidden_size=64, num_layers=2, num_heads=4,
                             max_positions=40, dropout=0.1, pre_layer_norm=False, max_facts=1))

  c = ConfigDict()
  c.sweep_dir = "runs/sweeps/demo"
  c.split = "dev"  # as configs/sweeps/phang2020.py: the paper's tables are on dev
  c.run = run
  c.setup = ConfigDict(dict(demo_assets=dict(kind="demo_assets")))
  c.intermediates = ConfigDict(sort_keys=False)
  c.intermediates.none = None
  c.intermediates.mnli = dict(task="mnli", train=dict(epochs=1.0))
  c.intermediates.mnli_half = dict(task="mnli", train=dict(epochs=0.5))
  c.targets = ConfigDict(sort_keys=False)
  c.targets.xnli = dict(languages=LANGUAGES, train=dict(epochs=1.0))
  c.targets.tatoeba = dict(kind="retrieval", languages=LANGUAGES[1:])
  c.targets.bucc2018 = dict(kind="retrieval", languages=("de", "fr", "ru", "zh"))
  return c
