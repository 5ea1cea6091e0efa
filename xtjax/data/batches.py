"""Model features (numpy arrays, one row per model input) -> batches.

Training batches come from a checkpointable grain iterator that shuffles anew each epoch and gives
each JAX process its own rows. Evaluation batches cover every feature exactly once, grouped into a
small set of length buckets (one compiled shape per bucket) and padded with masked rows
(``example_mask`` 0), so results do not depend on the batch size.
"""

from __future__ import annotations

import grain
import jax
import numpy as np

INPUTS = ("input_ids", "attention_mask")
TOKEN_KEYS = INPUTS + ("labels",)  # the arrays with a position axis (last), cut with the batch


def model_keys(targets, features: dict) -> tuple[str, ...]:
  """The feature arrays that go to the device: inputs, and those of ``targets`` present."""
  return INPUTS + tuple(k for k in targets if k in features)


def num_rows(features: dict) -> int:
  return len(features["input_ids"])


def _device_dtype(array: np.ndarray) -> np.ndarray:
  """int32 for integer features, float32 for real-valued ones (regression targets)."""
  array = np.asarray(array)
  return array.astype(np.float32 if np.issubdtype(array.dtype, np.floating) else np.int32,
                      copy=False)


class _Rows:
  """Row access to a dict of equally long arrays, as grain's MapDataset.source expects."""

  def __init__(self, features: dict, keys):
    self.arrays = {k: _device_dtype(features[k]) for k in keys}

  def __len__(self):
    return len(self.arrays["input_ids"])

  def __getitem__(self, i):
    return {**{k: v[i] for k, v in self.arrays.items()}, "example_mask": np.int32(1)}


class _Mixture:
  """Batch ``s`` of the mixed stream: the next batch of the task drawn for step ``s``."""

  def __init__(self, parts, choice: np.ndarray):
    self.parts, self.choice = parts, choice
    self.position = np.zeros_like(choice)
    for i in range(len(parts)):  # how many batches of the same task came before
      chosen = choice == i
      self.position[chosen] = np.arange(chosen.sum())

  def __len__(self):
    return len(self.choice)

  def __getitem__(self, s):
    i = int(self.choice[s])
    return {**self.parts[i][int(self.position[s])], "task": np.int32(i)}


def train_batches(parts, global_batch_size: int, seed: int, *, weights=None,
                  num_batches: int = 0, buckets=None) -> grain.DatasetIterator:
  """A checkpointable iterator of this process's training batches.

  ``parts`` is a list of (features, keys, transform or None), one per task; every batch comes
  from one task, drawn at random with probability proportional to ``weights`` (a fixed draw per
  batch index, the same on every process), and carries the task's index as ``task``. Each
  task's rows are reshuffled every epoch; ``transform`` (a grain random map, e.g. MLM masking)
  is applied per row. With several tasks, ``num_batches`` (the run's length) must be given.
  ``buckets`` (per part; None or empty: keep the features' length): each batch is cut to the
  shortest bucket that holds the longest row of the global batch, the same in every process;
  the rows and their order do not change.
  """
  n_proc, index = jax.process_count(), jax.process_index()
  if global_batch_size % n_proc:
    raise ValueError(f"batch size {global_batch_size} does not divide over {n_proc} processes")
  streams = []
  for i, (features, keys, transform) in enumerate(parts):
    if num_rows(features) < global_batch_size:
      raise ValueError(f"{num_rows(features)} training examples are fewer than one batch of "
                       f"{global_batch_size}")
    shuffled = grain.MapDataset.source(_Rows(features, keys)).seed(seed + i).shuffle().repeat(None)
    rows = shuffled if transform is None else shuffled.random_map(transform)
    local = rows[index::n_proc].batch(global_batch_size // n_proc, drop_remainder=True)
    if buckets and buckets[i]:  # the global batch j is the j-th run of global_batch_size rows
      bounds = bucket_lengths(features["input_ids"].shape[-1], buckets[i])
      # The row lengths in the rows' shuffled order (the same seed and length, the same order).
      longest = grain.MapDataset.source(row_lengths(features["attention_mask"])).seed(
          seed + i).shuffle().repeat(None).batch(global_batch_size, drop_remainder=True)
      local = local.map_with_index(
          lambda j, batch, bounds=bounds, longest=longest: cut(
              batch, bounds[np.searchsorted(bounds, longest[j].max())]))
    streams.append(local)
  if len(streams) == 1:
    mixed = streams[0].map(lambda b: {**b, "task": np.int32(0)})
  else:
    p = np.asarray(weights, np.float64) / np.sum(weights)
    choice = np.random.default_rng(seed).choice(len(streams), size=num_batches, p=p)
    mixed = grain.MapDataset.source(_Mixture(streams, choice))
  return iter(mixed.to_iter_dataset(grain.ReadOptions(num_threads=2, prefetch_buffer_size=4)))


def bucket_lengths(max_length: int, buckets) -> list[int]:
  return sorted({b for b in buckets if b < max_length} | {max_length})


def row_lengths(mask: np.ndarray) -> np.ndarray:
  """One past each row's last real position (over all its choices); 0 for an empty row."""
  mask = np.asarray(mask)
  real = mask.reshape(len(mask), -1, mask.shape[-1]).any(1)
  return np.where(real.any(1), real.shape[1] - np.argmax(real[:, ::-1], 1), 0)


def cut(batch: dict, length: int) -> dict:
  """``batch`` with its `TOKEN_KEYS` arrays cut to their first ``length`` positions."""
  return {k: v[..., :length] if k in TOKEN_KEYS else v for k, v in batch.items()}


def eval_batches(features: dict, keys, global_batch_size: int, buckets):
  """Every row once, shorter buckets first: yields (this process's rows, global row indices).

  Rows are ordered by length bucket (stably) and cut into consecutive batches, so that only the
  last batch is part empty; each batch is trimmed to the bucket of its longest row (the padding
  it drops is masked anyway) and filled with masked rows.
  """
  n_proc, index = jax.process_count(), jax.process_index()
  local = global_batch_size // n_proc
  bounds, which = _buckets(features, buckets)
  for chunk, b in _chunks(which, global_batch_size):
    length = bounds[b]
    mine = chunk[index * local:(index + 1) * local]
    batch = {}
    for k, value in cut({k: _device_dtype(np.asarray(features[k])[mine]) for k in keys},
                        length).items():
      fill = np.full((local,) + value.shape[1:], 1 if k == "input_ids" else 0, value.dtype)
      fill[:len(mine)] = value
      batch[k] = fill
    batch["example_mask"] = (np.arange(local) < len(mine)).astype(np.int32)
    yield batch, chunk


def _chunks(which: np.ndarray, size: int):
  """(global row indices, bucket) of each batch: rows in bucket order, ``size`` at a time."""
  order = np.argsort(which, kind="stable")
  for start in range(0, len(order), size):
    chunk = order[start:start + size]
    yield chunk, int(which[chunk].max())


def _buckets(features: dict, buckets) -> tuple[list[int], np.ndarray]:
  """The bucket lengths, and each row's bucket (the shortest that holds its longest sequence)."""
  bounds = bucket_lengths(features["input_ids"].shape[-1], buckets)
  return bounds, np.searchsorted(bounds, row_lengths(features["attention_mask"]))


def count_buckets(features: dict, buckets, global_batch_size: int) -> int:
  """How many distinct shapes (compilations) `eval_batches` will use for ``features``."""
  return len({b for _, b in _chunks(_buckets(features, buckets)[1], global_batch_size)})
