"""Preset architectures have the parameter counts of the released checkpoints (no download)."""

import numpy as np
import pytest

from xtjax.models.xlmr import PRESETS, XLMREncoder
from xtjax.params import Model

# Hugging Face XLMRobertaModel parameter counts without the (unused) pooler; XL and XXL are the
# 3.5B and 10.7B of Goyal et al. (2021).
COUNTS = {"xlm-roberta-base": 277_453_056, "xlm-roberta-large": 558_840_832,
          "facebook/xlm-roberta-xl": 3_475_929_600, "facebook/xlm-roberta-xxl": 10_695_954_432}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(COUNTS))
def test_parameter_count(name):
  model = Model.create(lambda rngs: XLMREncoder(PRESETS[name], rngs=rngs))
  assert sum(int(np.prod(v.shape)) for v in model.shapes().values()) == COUNTS[name]
  assert round(COUNTS[name] / 1e8) / 10 in (0.3, 0.6, 3.5, 10.7)
  # Every parameter carries logical axis names, one per dimension.
  axes = model.logical_axes()
  assert all(len(axes[k]) == len(v.shape) for k, v in model.shapes().items())
