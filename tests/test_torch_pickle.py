"""The torch-free reader of pytorch_model.bin equals torch.load, and refuses foreign pickles."""

import os
import pickle
import zipfile

import numpy as np
import pytest
import torch

from xtjax.models.torch_pickle import load_torch_state_dict


def test_equals_torch_load_for_dtypes_views_offsets_and_shared_storage(tmp_path):
  base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
  state = {
      "f32": torch.randn(3, 5), "f16": torch.randn(4).half(), "bf16": torch.randn(2, 3).bfloat16(),
      "i64": torch.arange(7), "bool": torch.tensor([True, False, True]),
      "transposed": base.t(), "sliced": base[1:3, 2:5], "shared_a": base, "shared_b": base[2],
      "scalar": torch.tensor(3.5),
  }
  path = tmp_path / "pytorch_model.bin"
  torch.save(state, path)
  ours = load_torch_state_dict(path)
  assert set(ours) == set(state)
  for name, value in state.items():
    expected = value.float().numpy() if value.dtype == torch.bfloat16 else value.numpy()
    got = ours[name].astype(np.float32) if value.dtype == torch.bfloat16 else ours[name]
    assert got.shape == expected.shape and got.dtype == expected.dtype, name
    np.testing.assert_array_equal(got, expected, err_msg=name)


class Evil:
  def __reduce__(self):
    return (os.system, ("touch pwned",))


def test_refuses_code_execution(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  path = tmp_path / "evil.bin"
  with zipfile.ZipFile(path, "w") as z:
    z.writestr("archive/data.pkl", pickle.dumps({"w": Evil()}, protocol=2))
  with pytest.raises(ValueError, match="refusing to unpickle posix.system|refusing to unpickle os.system"):
    load_torch_state_dict(path)
  assert not (tmp_path / "pwned").exists()


def test_legacy_format_names_the_fix(tmp_path):
  path = tmp_path / "old.bin"
  torch.save({"w": torch.ones(2)}, path, _use_new_zipfile_serialization=False)
  with pytest.raises(ValueError, match=r"legacy \(pre-1\.6\) format: re-save it .*safetensors"):
    load_torch_state_dict(path)
