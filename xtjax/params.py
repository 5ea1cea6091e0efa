"""Parameters as flat dicts keyed by '/'-joined NNX paths, e.g. ``encoder/layers/0/output/kernel``.

Flat dicts are what the jitted steps take, what optax masks and orbax checkpoints see, and what
``dont_load`` regexes match; `Model` turns them back into the NNX module inside a step.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import numpy as np
from flax import nnx

Params = dict[str, jax.Array]


def flatten(state: nnx.State) -> dict[str, Any]:
  return {"/".join(map(str, path)): var.get_value() for path, var in nnx.to_flat_state(state)}


def _nest(flat: dict[str, Any]) -> dict:
  nested: dict = {}
  for key, value in flat.items():
    *parents, leaf = [int(p) if p.isdigit() else p for p in key.split("/")]
    node = nested
    for p in parents:
      node = node.setdefault(p, {})
    node[leaf] = value
  return nested


@dataclasses.dataclass(frozen=True)
class Model:
  """An NNX module split into its static graph and a parameter template.

  ``make`` builds the module given ``rngs`` (a closure over its config); `Model.create` traces it
  abstractly so that no memory is allocated until `init` runs under jit with shardings.
  """

  make: Callable[..., nnx.Module]
  graphdef: Any
  template: nnx.State

  @classmethod
  def create(cls, make: Callable[..., nnx.Module]) -> "Model":
    abstract = nnx.eval_shape(lambda: make(rngs=nnx.Rngs(0)))
    graphdef, params = nnx.split(abstract, nnx.Param)
    return cls(make, graphdef, params)

  def shapes(self) -> dict[str, jax.ShapeDtypeStruct]:
    return flatten(self.template)

  def logical_axes(self) -> dict[str, tuple]:
    return {"/".join(map(str, p)): tuple(v.get_metadata().get("out_sharding") or (None,) * v.ndim)
            for p, v in nnx.to_flat_state(self.template)}

  def init(self, rng: jax.Array) -> Params:
    """Freshly initialised parameters (call under jax.jit with out_shardings)."""
    return flatten(nnx.state(self.make(rngs=nnx.Rngs(params=rng)), nnx.Param))

  def bind(self, params: Params) -> nnx.Module:
    """The module with ``params`` in place; cheap, and safe inside jit."""
    state = jax.tree.map(lambda x: x, self.template)  # a fresh copy; filled in place below
    nnx.replace_by_pure_dict(state, _nest(params))
    return nnx.merge(self.graphdef, state)


def parameter_counts(shapes: dict, frozen=()) -> dict:
  """How many parameters a model has (``total``), how many train (``trainable``: those not in
  ``frozen``) and their ``fraction`` of the total, and per part: ``encoder`` (the backbone, its
  prompts apart), ``prompts`` and ``heads``."""
  size = {k: int(np.prod(v.shape)) for k, v in shapes.items()}
  part = lambda k: ("prompts" if k.startswith("encoder/prefix/") else
                    "heads" if k.startswith("heads/") else "encoder")
  out = {"total": sum(size.values()),
         "trainable": sum(n for k, n in size.items() if k not in frozen)}
  for name in ("encoder", "prompts", "heads"):
    out[name] = sum(n for k, n in size.items() if part(k) == name)
  out["fraction"] = out["trainable"] / out["total"]
  return out
