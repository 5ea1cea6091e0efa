"""The Colab notebooks: the quickstart runs headless end to end (tiny settings, a temporary working
directory) and shows every table and the heatmap; the TPU template is valid and its code compiles."""

import base64
import json
import re
import sys
from pathlib import Path

import ipykernel  # noqa: F401  (the kernel the quickstart runs in; all three: the test extra)
import nbclient
import nbformat
import pytest

import subprocs

pytestmark = pytest.mark.slow  # trains demo-scale models end to end

ROOT = Path(__file__).resolve().parent.parent
QUICKSTART = ROOT / "colab" / "quickstart.ipynb"
TPU = ROOT / "colab" / "xlmr_large_tpu.ipynb"


def _kernel_manager(spec_root: Path):
  """A kernel manager for this interpreter's ipykernel, whatever kernelspecs the machine has.

  The kernelspec is written under ``spec_root`` (``sys.executable -m ipykernel_launcher``) and
  found there only: a ``python3`` spec in ~/.local/share/jupyter or elsewhere on JUPYTER_PATH
  that points at another Python (without jax or xtjax) cannot be picked, and nothing needs
  ``ipykernel install`` beforehand; ``pip install -e '.[test]'`` is enough."""
  from jupyter_client.kernelspec import KernelSpecManager
  from jupyter_client.manager import AsyncKernelManager
  spec_dir = spec_root / "kernels" / "xtjax-test"
  spec_dir.mkdir(parents=True)
  (spec_dir / "kernel.json").write_text(json.dumps({
      "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
      "display_name": f"xtjax test ({sys.executable})", "language": "python"}))
  specs = KernelSpecManager(kernel_dirs=[str(spec_root / "kernels")], ensure_native_kernel=False)
  return AsyncKernelManager(kernel_name="xtjax-test", kernel_spec_manager=specs)


def _kernel_env(run_root: Path) -> dict:
  # One CPU device, as on a Colab CPU runtime (conftest.py simulates 8 for the other tests).
  return subprocs.env(None, XTJAX_NB_FAST="1", XTJAX_NB_DIR=str(run_root), XTJAX_SOURCE=str(ROOT),
                      HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
                      MPLBACKEND="Agg", PYDEVD_DISABLE_FILE_VALIDATION="1")


def _outputs(nb) -> dict:
  """Every output of the executed notebook by kind: stdout text, markdown, png images."""
  out = {"text": [], "markdown": [], "png": []}
  for cell in nb.cells:
    for o in cell.get("outputs", []):
      if o.output_type == "stream":
        out["text"].append(o.text)
      elif o.output_type in ("display_data", "execute_result"):
        out["markdown"].append(o.data.get("text/markdown", ""))
        if "image/png" in o.data:
          out["png"].append(base64.b64decode(o.data["image/png"]))
  return out


def test_notebooks_are_saved_valid_and_without_outputs():
  for path in (QUICKSTART, TPU):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.nbformat == 4 and nb.metadata.kernelspec.name == "python3"
    for cell in nb.cells:
      if cell.cell_type == "code":
        assert cell.outputs == [] and cell.execution_count is None, f"{path.name}: clear outputs"


def test_tpu_notebook_code_compiles():
  nb = nbformat.read(TPU, as_version=4)
  code = [c for c in nb.cells if c.cell_type == "code"]
  assert len(code) >= 5
  for i, cell in enumerate(code):
    # Shell (!) and magic (%) lines are IPython syntax, not Python.
    source = "\n".join(l for l in cell.source.splitlines() if not l.lstrip().startswith(("!", "%")))
    compile(source, f"{TPU.name}[code cell {i}]", "exec")
  text = "\n".join(c.source for c in nb.cells)
  for needle in ("FacebookAI/xlm-roberta-large", "configs/phang2020/mnli_xnli.py:large",
                 "jax.devices()", "[tpu]", "grad_accum_steps", "fsdp", "bfloat16", "skipped"):
    assert needle in text, needle


def test_quickstart_runs_headless(tmp_path):
  nb = nbformat.read(QUICKSTART, as_version=4)
  work = tmp_path / "work"  # the kernel's working directory: outside the checkout
  work.mkdir()
  run_root = tmp_path / "runs"
  client = nbclient.NotebookClient(nb, km=_kernel_manager(tmp_path / "jupyter"), timeout=240,
                                   startup_timeout=120, resources={"metadata": {"path": str(work)}})
  client.execute(env=_kernel_env(run_root))

  out = _outputs(nb)
  text, markdown = "".join(out["text"]), "\n".join(out["markdown"])
  assert re.search(r"xtjax \S+ is installed; nothing to install", text)  # the install cell: a no-op
  # The zero-shot table, from results.md of the demo run.
  assert "| task | metric | en | de | avg |" in markdown
  assert "| xnli | accuracy |" in markdown
  assert (run_root / "demo" / "zero_shot" / "results.md").is_file()
  # The retrieval layer tables of every phase (layers 0..2 of the 2-layer demo model).
  for phase in ("pretrained", "intermediate", "target"):
    assert f"| tatoeba accuracy ({phase}) | layer | de | avg |" in markdown
    assert f"| bucc2018 f1 ({phase}) | layer | de | avg |" in markdown
  assert "| | 2 * |" in markdown
  # The sweep report: the baseline and both intermediate settings, then the heatmap.
  assert re.search(r"\| intermediate +\| +xnli \|.* avg \|", markdown)
  for setting in ("none", "mnli", "mnli_half"):
    assert re.search(rf"\| {setting} +\|", markdown), setting
  assert (run_root / "demo_sweep" / "report.csv").is_file()
  assert len(out["png"]) == 1 and out["png"][0].startswith(b"\x89PNG\r\n\x1a\n")
  assert not list(work.iterdir())  # every file went to XTJAX_NB_DIR
