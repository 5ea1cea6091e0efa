"""The gain from intermediate training at every XLM-R size: one sweep per size over the same
intermediate x target grid, compared by ``xtjax report --scaling``.

    xtjax sweep --config configs/sweeps/scaling.py:base --dry-run
    xtjax sweep --config configs/sweeps/scaling.py:large
    xtjax sweep --config configs/sweeps/scaling.py:xl            # fsdp and remat (phang2020.py)
    xtjax sweep --config configs/sweeps/scaling.py:xxl,fsdp      # where the hardware allows
    xtjax report --scaling runs/sweeps/scaling_base runs/sweeps/scaling_large runs/sweeps/scaling_xl

    for s in demo-s demo-m demo-l; do xtjax sweep --config configs/sweeps/scaling.py:$s; done
    xtjax report --scaling runs/sweeps/scaling_demo-s runs/sweeps/scaling_demo-m \
        runs/sweeps/scaling_demo-l                                   # offline, minutes

The argument is the size (base, large, xl, xxl; a sharding preset after a comma) or a demo size.
The grid is phang2020.py's (jiant's recipes, dev sets, the same at every size: jiant gives them
for XLM-R large only) restricted to ``none`` and the three intermediate tasks Phang et al. found
best (MNLI, SQuAD, HellaSwag); all nine targets. Encoder sizes (xtjax/models/xlmr.py PRESETS,
tests/test_presets.py): base 277M, large 559M, XL 3.48B, XXL 10.7B parameters.

The demo sizes are tiny random-init models on the demo's generated data (configs/sweeps/demo.py):
``demo-s`` (hidden 32, 2 layers), ``demo-m`` (64, 2; the demo's own) and ``demo-l`` (128, 4), each
with ``none`` and ``mnli`` and the XNLI target; they show the machinery, not XLM-R's scaling.
"""

from ml_collections import ConfigDict

from xtjax.config import MODELS, sibling_config

INTERMEDIATES = ("none", "mnli", "squad", "hellaswag")
DEMO_SIZES = {"demo-s": (32, 2, 2), "demo-m": (64, 2, 4), "demo-l": (128, 4, 4)}


def get_config(arg: str = "large"):
  size = (arg or "large").partition(",")[0]
  if size in DEMO_SIZES:
    return demo_config(size)
  if size not in MODELS:
    raise ValueError(f"unknown size {size!r}: use one of {', '.join([*MODELS, *DEMO_SIZES])}")
  c = sibling_config(__file__, "phang2020", arg or "large")
  c.sweep_dir = f"runs/sweeps/scaling_{size}"
  kept = ConfigDict(sort_keys=False)
  for name in INTERMEDIATES:
    kept[name] = c.intermediates[name]
  c.intermediates = kept
  return c


def demo_config(size: str):
  c = sibling_config(__file__, "demo")
  hidden, layers, heads = DEMO_SIZES[size]
  c.sweep_dir = f"runs/sweeps/scaling_{size}"
  c.run.demo.update(n_train=4000, hidden_size=hidden, num_layers=layers, num_heads=heads)
  del c.intermediates["mnli_half"]
  del c.targets["bucc2018"]
  return c
