"""Multilingual against English-only intermediate training, on the XTREME-R targets.

    xtjax sweep --config configs/sweeps/multilingual_intermediate.py:large --dry-run
    xtjax sweep --config configs/sweeps/multilingual_intermediate.py:large \
        --config.run.data.tfds_data_dir=/data/tfds
    xtjax report --sweep runs/sweeps/multilingual_intermediate_large
    xtjax sweep --config configs/sweeps/multilingual_intermediate.py:demo   # offline, minutes
    xtjax report --sweep runs/sweeps/multilingual_intermediate_demo

The argument picks the XLM-R size (base, large, xl, xxl; a sharding preset after a comma) or
``demo``. Settings (one group each): ``none``; the English intermediate tasks ``mnli``,
``squad`` and ``pawsx`` (phang2020.py's recipe: 3 epochs, last step); their translate-train-all
counterparts ``mnli_translated`` (MNLI plus XTREME's translations into the 14 other XNLI
languages, ``xnli_translate_train``), ``squad_translated`` (SQuAD plus XQuAD's 10 translations,
``xquad_translate_train``) and ``pawsx_translated`` (PAWS-X plus its 6 translations); and
``mnli_mlm`` (MNLI with multilingual masked-language modelling on Wikipedia in every XTREME-R
language). The translated settings see as many examples as their English counterparts (3 epochs'
worth: 3 / (1 + translations) epochs of the larger set), so a gain is the data's, not more steps.
Targets: the XTREME-R tasks that train on English data (XNLI, UD-POS, PAN-X, XQuAD, MLQA,
TyDiQA; phang2020.py's jiant recipes) in XTREME-R's languages, and Tatoeba from each encoder.
Not in the grid: XCOPA (its target is a SocialIQA -> COPA chain) and Mewsli-X / LAReQA (a
dual-encoder phase on the official files).

``xtjax report`` gives every task per language with the gain of each translated or MLM setting
over its English original (and of the English settings over ``none``), and a language x setting
heatmap per task (``languages_<task>.png``). The translations come from TFDS
(``--config.run.data.tfds_data_dir``; XTREME's translate-train builders, xtjax/data/tfds_source.py),
XQuAD's English part and PAWS-X's from the hub. UNSETTLED: the MLM data and mix (Phang et al. do
not say which text they used); ``mlm_max_texts`` caps each language's Wikipedia at 4,000 articles.
"""

from ml_collections import ConfigDict

from xtjax.config import grid_sweep, sibling_config
from xtjax.data.tasks import PAWSX_LANGS, XNLI_LANGS, XQUAD_LANGS
from xtjax.scoring import TASK_LANGUAGES

TARGETS = ("xnli", "udpos", "panx", "xquad", "mlqa", "tydiqa")
# setting: (task, English counterpart, languages translated into)
TRANSLATED = {"mnli_translated": ("xnli_translate_train", "mnli", len(XNLI_LANGS) - 1),
              "squad_translated": ("xquad_translate_train", "squad", len(XQUAD_LANGS) - 1),
              "pawsx_translated": ("pawsx_translate_train", "pawsx", len(PAWSX_LANGS) - 1)}
WIKIPEDIA = "wikimedia/wikipedia:20231101.{lang}"


def get_config(arg: str = "large"):
  if (arg or "large") == "demo":
    return demo_config()
  grid, c = grid_sweep(__file__, "multilingual_intermediate", arg or "large")
  c.run.data.update(mlm_sources=tuple(WIKIPEDIA.format(lang=l)
                                      for l in ("en", *TASK_LANGUAGES["xtreme-r"]["tatoeba"])),
                    mlm_max_texts=4000)
  english = grid.intermediates.mnli.train.to_dict()  # 3 epochs, the last step (jiant's)
  c.intermediates = ConfigDict(sort_keys=False)
  c.intermediates.none = None
  for name in ("mnli", "squad"):
    c.intermediates[name] = grid.intermediates[name]
  c.intermediates.pawsx = dict(task="pawsx", train=english)
  for name, (task, _, n) in TRANSLATED.items():
    c.intermediates[name] = dict(task=task, train={**english,
                                                   "epochs": english["epochs"] / (1 + n)})
  c.intermediates.mnli_mlm = dict(tasks=("mnli", "mlm"), train=english)
  c.targets = ConfigDict(sort_keys=False)
  for task in TARGETS:
    c.targets[task] = grid.targets[task].to_dict()
    c.targets[task]["languages"] = tuple(TASK_LANGUAGES["xtreme-r"][task])
  c.targets.tatoeba = grid.targets.tatoeba.to_dict()
  c.targets.tatoeba["languages"] = tuple(TASK_LANGUAGES["xtreme-r"]["tatoeba"])
  c.report = dict(baseline="none", baselines={
      **{name: english_name for name, (_, english_name, _) in TRANSLATED.items()},
      "mnli_mlm": "mnli"})
  return c


def demo_config():
  """The same comparison on the demo's generated data: its MNLI rendered in the 7 other
  languages stands for XNLI's translations (a perfect translation system, read as the hub's
  XNLI-MT layout through data.translations), and generated monolingual text for MLM."""
  c = sibling_config(__file__, "demo")
  c.sweep_dir = "runs/sweeps/multilingual_intermediate_demo"
  c.run.demo.update(n_train=4000, translate_train=True, mlm_texts=1500)
  c.run.data.update(translations={"xnli_translate_train": "facebook/xnli"},
                    translate_languages=tuple(l for l in c.run.demo.languages if l != "en"),
                    mlm_sources=("{sweep_dir}/.setup/assets/text/*.txt",), mlm_dev_texts=200)
  languages = len(c.run.demo.languages)
  c.intermediates = ConfigDict(sort_keys=False)
  c.intermediates.none = None
  c.intermediates.mnli = dict(task="mnli", train=dict(epochs=1.0))
  c.intermediates.mnli_translated = dict(task="xnli_translate_train",
                                         train=dict(epochs=1.0 / languages))
  c.intermediates.mnli_mlm = dict(tasks=("mnli", "mlm"), train=dict(epochs=1.0))
  del c.targets["bucc2018"]
  c.report = dict(baseline="none", baselines={"mnli_translated": "mnli", "mnli_mlm": "mnli"})
  return c
