"""Eight simulated CPU devices for every test and fast-compiling XLA flags (set before JAX
initialises), and shared fixtures."""

import collections
import importlib.metadata
import os
import tempfile

# Tests check numbers, not speed: LLVM at -O0 with XLA:CPU's loop emitters compiles the suite's
# many small programs about twice as fast (jaxlib 0.10, a tiny model's train step: 4.0 -> 1.7-2.6
# s). jaxlib 0.11 removed the emitter switch (XLA stops on an unknown flag). The processes that
# tests start inherit these flags (tests/subprocs.py).
TEST_XLA_FLAGS = "--xla_backend_optimization_level=0"
if tuple(int(p) for p in importlib.metadata.version("jaxlib").split(".")[:2]) < (0, 11):
  TEST_XLA_FLAGS += " --xla_cpu_use_fusion_emitters=false"
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + f" {TEST_XLA_FLAGS}"
                           " --xla_force_host_platform_device_count=8").strip()
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Compiled programs are reused across tests and the subprocesses they start (identical programs
# recur: tiny demo models, evaluation buckets); a cold cache only costs the writes.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR",
                      os.path.join(tempfile.gettempdir(), f"xtjax-tests-jax-cache-{os.getuid()}"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")

import jax  # noqa: E402

jax.config.update("jax_default_matmul_precision", "float32")

import pytest  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def _library_temp_files(tmp_path_factory):
  """Temporary files that libraries create and never remove (TFDS makes an empty directory for
  every builder it constructs) go under pytest's session directory, which pytest prunes."""
  tempfile.tempdir = str(tmp_path_factory.mktemp("tempfile"))
  yield
  tempfile.tempdir = None


@pytest.fixture(scope="session")
def xtreme_assets(tmp_path_factory):
  """Hub-layout fixtures of every target task's data, with a tokenizer and tiny model on them."""
  import hub_fixtures
  return hub_fixtures.write_assets(tmp_path_factory.mktemp("xtreme"))


@pytest.fixture(scope="session")
def intermediate_assets(xtreme_assets):
  """The intermediate tasks' fixtures added to the same mirror (plus CCGbank and MLM text)."""
  import pathlib
  import hub_fixtures
  hub, model = xtreme_assets
  root = pathlib.Path(hub).parent
  hub_fixtures.write_intermediate_mirror(root)
  return dict(hub=hub, model=model, ccgbank=str(root / "ccgbank"), mlm=str(root / "mlm"))


# Fixtures that train a model or write every task's hub fixtures: their tests are the slow tier.
SLOW_FIXTURES = {"xtreme_assets", "intermediate_assets", "finished", "finished_run", "demo_sweep",
                 "xtreme_run"}


def pytest_collection_modifyitems(items):
  for item in items:
    if SLOW_FIXTURES & set(item.fixturenames):
      item.add_marker(pytest.mark.slow)
  # Files run by their share of quick tests, fewest first: under pytest-xdist (--dist loadfile)
  # the all-slow end-to-end files start early and the quick ones fill in at the end. The sort is
  # stable, so each file stays in one piece.
  quick = collections.defaultdict(list)
  for item in items:
    quick[item.path].append(item.get_closest_marker("slow") is None)
  items.sort(key=lambda item: sum(quick[item.path]) / len(quick[item.path]))
