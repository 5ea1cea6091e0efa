"""Device mesh from config and logical-axis rules that turn parameter axis names into shardings.

A config names mesh axes with sizes (-1 fills the remaining devices) and a list of rules
``(logical axis, mesh axis | tuple of mesh axes | None)``. Parameters carry logical names such as
``('embed', 'mlp')`` (see `xtjax.models.xlmr`); the logical axis ``batch`` shards input batches.
"""

from __future__ import annotations

import math
from typing import Sequence

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

MESH_AXES = ("data", "fsdp", "tensor")

# Ready-made strategies; a config may write its own mesh and rules instead.
PRESETS = {
    # Replicated parameters, batch split over every device.
    "data": dict(mesh=[("data", -1), ("fsdp", 1), ("tensor", 1)],
                 rules=[("batch", ("data", "fsdp"))]),
    # ZeRO-3 style: parameters and optimizer state split along the hidden axis.
    "fsdp": dict(mesh=[("data", 1), ("fsdp", -1), ("tensor", 1)],
                 rules=[("batch", ("data", "fsdp")), ("embed", "fsdp")]),
    # Megatron style: attention heads and MLP columns split over 'tensor', batch over 'data'.
    "tensor": dict(mesh=[("data", -1), ("fsdp", 1), ("tensor", 4)],
                   rules=[("batch", ("data", "fsdp")), ("heads", "tensor"), ("mlp", "tensor")]),
}


def make_mesh(axes: Sequence[tuple[str, int]], devices=None) -> Mesh:
  """A mesh with the named axes; one size may be -1 to take the remaining devices."""
  devices = np.asarray(jax.devices() if devices is None else devices)
  names = tuple(a for a, _ in axes)
  sizes = [int(s) for _, s in axes]
  if sizes.count(-1) > 1:
    raise ValueError(f"mesh {list(axes)}: at most one axis may have size -1")
  known = math.prod(s for s in sizes if s != -1)
  if -1 in sizes:
    if devices.size % known:
      raise ValueError(f"mesh {list(axes)}: {devices.size} devices do not divide by {known}")
    sizes[sizes.index(-1)] = devices.size // known
  if math.prod(sizes) != devices.size:
    raise ValueError(f"mesh {dict(zip(names, sizes))} needs {math.prod(sizes)} devices, "
                     f"found {devices.size}: change config.mesh")
  return jax.make_mesh(tuple(sizes), names, axis_types=(AxisType.Auto,) * len(names),
                       devices=devices.ravel())


def _mesh_axes(logical: str | None, rules: dict) -> tuple[str, ...]:
  target = rules.get(logical) if logical is not None else None
  if target is None:
    return ()
  return (target,) if isinstance(target, str) else tuple(target)


def logical_to_spec(name: str, axes: tuple, shape: tuple, mesh: Mesh, rules) -> P:
  """The PartitionSpec of one parameter; errors if a sharded dimension does not divide."""
  rules = dict(rules)
  spec, used = [], set()
  for dim, logical in zip(shape, axes):
    mesh_axes = tuple(a for a in _mesh_axes(logical, rules) if mesh.shape[a] > 1 and a not in used)
    size = math.prod(mesh.shape[a] for a in mesh_axes)
    if dim % size:
      raise ValueError(
          f"parameter {name}: axis {logical!r} of size {dim} does not divide over mesh axes "
          f"{mesh_axes} (size {size}); map {logical!r} to None in config.sharding_rules")
    used.update(mesh_axes)
    spec.append(mesh_axes if len(mesh_axes) > 1 else (mesh_axes[0] if mesh_axes else None))
  return P(*spec)


def param_shardings(shapes: dict, axes: dict, mesh: Mesh, rules) -> dict[str, NamedSharding]:
  return {k: NamedSharding(mesh, logical_to_spec(k, axes[k], shapes[k].shape, mesh, rules))
          for k in shapes}


def batch_sharding(mesh: Mesh, rules) -> NamedSharding:
  """Leading (batch) axis split over the mesh axes that the 'batch' rule names."""
  axes = tuple(a for a in _mesh_axes("batch", dict(rules)) if a in mesh.shape)
  return NamedSharding(mesh, P(axes if axes else None))


def global_batch(local: dict[str, np.ndarray], sharding: NamedSharding) -> dict[str, jax.Array]:
  """Assembles each process's rows into one global array per key (multi-host safe)."""
  return {k: jax.make_array_from_process_local_data(sharding, v) for k, v in local.items()}
