"""Retrieval from any phase: the Tatoeba protocol (sorted English side, en -> xx top-1), BUCC
mining with a dev-tuned threshold on the official archive layout, and ``xtjax eval --config
configs/demo.py --tasks tatoeba,bucc2018`` on the demo run's checkpoints with a layer sweep."""

import json
import types
import zlib

import numpy as np
import pytest

import configs.demo as demo_config
from xtjax import cli, runner, scoring
from xtjax.data.hub import load_hub_dataset
from xtjax.data import synthetic
from xtjax.data.tasks import TATOEBA_CODES, retrieval_languages
from xtjax.phase_config import DualEncoderPhase, PretrainedPhase, TrainPhase
from xtjax.retrieval import evaluate as retrieval
from xtjax.retrieval import mining


class PerfectEncoder:
  """Maps a sentence to a fixed random vector of its meaning (its English translation)."""

  def __init__(self, meaning: dict, layers=(1,)):
    self.meaning, self.layers = meaning, list(layers)
    self.run = types.SimpleNamespace(mesh=None)

  def __call__(self, texts):
    vecs = [np.random.default_rng(zlib.crc32(self.meaning.get(t, t).encode())).normal(size=16)
            for t in texts]  # crc32: the same vector in every process (hash() is salted)
    return np.stack(vecs)[:, None, :].repeat(len(self.layers), 1).astype(np.float32)


@pytest.fixture(scope="module")
def retrieval_data(tmp_path_factory):
  root = tmp_path_factory.mktemp("retrieval")
  synthetic.write_retrieval_data(root / "hub", root / "bucc", languages=("en", "de", "zh"),
                                 tatoeba_codes=TATOEBA_CODES, n_pairs=60,
                                 n_distractors=80)
  return root


def data(root):
  return types.SimpleNamespace(hub_mirror=str(root / "hub"), bucc_dir=str(root / "bucc"),
                               bucc_duplicates="expand")


def test_tatoeba_sorted_english_side_and_gold_indices(retrieval_data):

  ds = load_hub_dataset(str(retrieval_data / "hub" / "google" / "xtreme"), "tatoeba.deu",
                        "validation")
  meaning = dict(zip(ds["source_sentence"], ds["target_sentence"]))
  (predicted, acc), = retrieval.tatoeba(PerfectEncoder(meaning), "de", data(retrieval_data)).values()
  order = sorted(range(len(ds)), key=lambda i: ds["target_sentence"][i])
  # Line k of the sorted English file retrieves the source line it translates; identical
  # English sentences (possible in generated data) may swap among their sources.
  eng = ds["target_sentence"]
  assert all(eng[p] == eng[o] for p, o in zip(predicted, order))
  assert acc == pytest.approx(100 * np.mean([p == o for p, o in zip(predicted, order)]))
  assert acc > 90


def test_bucc_threshold_from_dev_finds_the_planted_pairs(retrieval_data):
  meaning = {}
  for split in ("dev", "test"):
    b = mining.read_bucc(retrieval_data / "bucc", "de", split)
    src, trg = dict(zip(b.src_ids, b.src_sentences)), dict(zip(b.trg_ids, b.trg_sentences))
    meaning.update({src[s]: trg[t] for s, t in b.gold})
  (predicted, scores), = retrieval.bucc(PerfectEncoder(meaning), "de", data(retrieval_data)).values()
  assert scores["f1"] > 95 and scores["dev_f1"] > 95 and scores["precision"] > 95
  assert len(predicted) == pytest.approx(60, abs=3)
  with pytest.raises(FileNotFoundError, match="set data.bucc_dir"):
    retrieval.bucc(PerfectEncoder(meaning), "de", types.SimpleNamespace(bucc_dir=None))


def test_unknown_names_are_clear_errors():
  with pytest.raises(ValueError, match="unknown Tatoeba language 'xx'"):
    retrieval.tatoeba_source("xx")
  with pytest.raises(ValueError, match="unknown retrieval task 'bucc'"):
    retrieval_languages("bucc")
  with pytest.raises(ValueError, match="unknown retrieval task 'bucc': use tatoeba, bucc2018"):
    retrieval.evaluate_retrieval(None, "bucc", "intermediate", out_dir=None)
  # XTREME-R's added Tatoeba languages come from the LASER files on mteb's hub copy.
  assert retrieval.tatoeba_source("az")[0].repo == "mteb/tatoeba-bitext-mining"
  assert retrieval_languages("tatoeba") == (scoring.TASK_LANGUAGES["xtreme"]["tatoeba"]
                                                 + ["az", "lt", "pl", "uk", "ro"])


@pytest.mark.slow
def test_eval_retrieval_on_the_demo_run(tmp_path, capsys):
  c = demo_config.get_config()
  c.run_dir = str(tmp_path)
  c.demo.update(languages=("en", "de", "zh"), n_train=128, n_dev=24, n_test=24, vocab_size=400,
                hidden_size=32, max_positions=64)
  c.retrieval_languages = dict(tatoeba=("de", "zh"), bucc2018=("de", "zh"))
  c.phases.zero_shot.languages = ("en", "de")
  c.train.update(batch_size=16, eval_batch_size=16, steps=4, eval_every=4, log_every=2)
  runner.run_all(c)
  capsys.readouterr()
  flags = [f"--config.run_dir={tmp_path}", "--config.demo.languages=('en','de','zh')",
           "--config.retrieval_languages.tatoeba=('de','zh')",
           "--config.retrieval_languages.bucc2018=('de','zh')"]
  assert cli.main(["xtjax", "eval", "--config", "configs/demo.py", "--tasks", "tatoeba,bucc2018"]
                  + flags) == 0
  out = capsys.readouterr().out
  for phase in ("pretrained", "intermediate", "target"):
    assert f"| tatoeba accuracy ({phase}) | layer | de | zh | avg |" in out
    assert f"| bucc2018 f1 ({phase}) | layer | de | zh | avg |" in out
    results = json.loads((tmp_path / f"retrieval-{phase}" / "results.json").read_text())
    tatoeba, bucc = results
    assert list(tatoeba["layers"]) == ["0", "1", "2"] and tatoeba["layer"] == 2
    assert set(bucc["metrics"]) >= {"f1", "precision", "recall", "threshold", "dev_f1"}
  preds = scoring.read_predictions("tatoeba", "de", tmp_path / "retrieval-target" / "predictions")
  assert len(preds) == 100 and all(0 <= p < 100 for p in preds)
  assert cli.main(["xtjax", "eval", "--config", "configs/demo.py", "--tasks", "xnli"] + flags) == 2
  assert "use --checkpoint" in capsys.readouterr().err


def test_default_phase_for_each_retrieval_task():
  phases = dict(pretrained=PretrainedPhase(name="pretrained"),
                intermediate=TrainPhase(name="intermediate", task="mnli", init_from="pretrained"),
                dual=DualEncoderPhase(name="dual", task="mewslix", init_from="pretrained"))
  run = types.SimpleNamespace(dir="run", phases=phases)
  assert retrieval.default_phase(run, "tatoeba") == "intermediate"
  assert retrieval.default_phase(run, "mewslix") == "dual"
  with pytest.raises(ValueError, match="lareqa needs a dual_encoder phase"):
    retrieval.default_phase(run, "lareqa")
  del run.phases["intermediate"]
  assert retrieval.default_phase(run, "bucc2018") == "pretrained"
