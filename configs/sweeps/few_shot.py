"""How much k target-language examples add after English training (Lauscher et al. 2020, "From
Zero to Hero", arXiv 2005.00633): each English-trained target model continues on k = 10, 100 and
1000 examples of one target language (one model per language, as Lauscher et al.), drawn with a
fixed seed, and is evaluated in that language; k = 0 is the zero-shot model.

    xtjax sweep --config configs/sweeps/few_shot.py:large --dry-run
    xtjax sweep --config configs/sweeps/few_shot.py:large
    xtjax report --sweep runs/sweeps/few_shot_large
    xtjax sweep --config configs/sweeps/few_shot.py:demo     # offline, minutes
    xtjax report --sweep runs/sweeps/few_shot_demo

The argument picks the XLM-R size (base, large, xl, xxl; a sharding preset after a comma) or
``demo``. Groups: ``none`` and ``mnli`` (phang2020.py's); targets XNLI, PAN-X, UD-POS and
TyDiQA-GoldP with phang2020.py's English recipes. Few-shot examples come from each language's
train split where the hub has one (PAN-X, UD-POS, TyDiQA-GoldP), else its dev split (XNLI), and
every model is evaluated on the test sets, which none of them touches. Languages: those with at
least 1000 training rows: PAN-X without jv, my, tl and yo (100 each in XTREME's splits), UD-POS
without hu, mr and ta (UD 2.5 has fewer than 1000 training sentences for them) and without kk, th,
tl and yo (no training set); a language with fewer than k well-formed rows stops its phase with a
one-line error naming the count.

``xtjax report`` shows rows ``<group>/k0`` ... ``<group>/k1000`` per language, each k against its
group's k = 0 (the gain from the shots), and a language x k heatmap per task.

UNSETTLED: Lauscher et al.'s few-shot training budget and learning rate are not in the sources at
hand. xtjax continues with the target's own optimiser settings (jiant's lr 1e-5) for 50 epochs of
the k examples (batch min(32, k)), keeping the last step: there is no target-language dev set to
select on in true few-shot transfer.
"""

from ml_collections import ConfigDict

from xtjax.config import grid_sweep, sibling_config
from xtjax.data.tasks import PANX_LANGS, TYDIQA_NAMES, UDPOS_NAMES, UDPOS_NO_DEV, XNLI_LANGS

K = (10, 100, 1000)
TARGETS = ("xnli", "panx", "udpos", "tydiqa")
LANGUAGES = {
    "xnli": tuple(l for l in XNLI_LANGS if l != "en"),
    "panx": tuple(l for l in PANX_LANGS if l not in ("en", "jv", "my", "tl", "yo")),
    "udpos": tuple(l for l in UDPOS_NAMES if l not in ("en", "hu", "mr", "ta", *UDPOS_NO_DEV)),
    "tydiqa": tuple(l for l in TYDIQA_NAMES if l != "en"),
}
TRAIN = dict(epochs=50.0, selection="last", patience=0, eval_every=10**9)


def get_config(arg: str = "large"):
  if (arg or "large") == "demo":
    return demo_config()
  grid, c = grid_sweep(__file__, "few_shot", arg or "large")
  c.split = "test"
  c.intermediates = ConfigDict(sort_keys=False)
  c.intermediates.none = None
  c.intermediates.mnli = grid.intermediates.mnli
  c.targets = ConfigDict({t: grid.targets[t] for t in TARGETS}, sort_keys=False)
  c.few_shot = dict(k=K, seed=0, per_language=True, languages=LANGUAGES, train=TRAIN)
  c.report = report(("none", "mnli"), K)
  return c


def report(groups, ks) -> dict:
  """Every k's row against its group's zero-shot row."""
  return dict(baseline=f"{groups[0]}/k0",
              baselines={f"{g}/k{k}": f"{g}/k0" for g in groups for k in ks})


def demo_config():
  """XNLI on the demo's data: k = 10, 50, 200 German and Arabic examples (its dev sets hold 300
  rows a language), 10 epochs of them, on the English-trained model of each group."""
  c = sibling_config(__file__, "demo")
  c.sweep_dir = "runs/sweeps/few_shot_demo"
  c.split = "test"
  c.run.demo.n_train = 4000
  del c.intermediates["mnli_half"], c.intermediates["mnli"]
  del c.targets["tatoeba"], c.targets["bucc2018"]
  c.few_shot = dict(k=(10, 50, 200), seed=0, per_language=True,
                    languages=dict(xnli=("de", "ar")), train=dict(TRAIN, epochs=10.0))
  c.report = report(("none",), (10, 50, 200))
  return c
