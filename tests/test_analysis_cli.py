"""``xtjax align``, ``bench`` and ``crosslingual`` end to end on a tiny finished demo run: tables,
plots, numbers that agree with the rest of xtjax, one-line errors; and the timing harness."""

import json

import jax.numpy as jnp
import numpy as np
import pytest

import configs.demo as demo_config
from xtjax import scoring
from xtjax.analysis import align, bench, crosslingual, fertility, inference, languages, runs
from xtjax.data.tasks import get_task
from xtjax.predict import load_task_data
from xtjax.retrieval.evaluate import evaluate_retrieval
from xtjax.run import Run
from xtjax.runner import run_all

LANGS = ("en", "de", "fr")


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
  c = demo_config.get_config()
  c.run_dir = str(tmp_path_factory.mktemp("run"))
  c.demo.update(languages=LANGS, n_train=128, n_dev=24, n_test=24, vocab_size=400,
                hidden_size=32, max_positions=64)
  c.data.max_length = 64
  c.retrieval_languages.tatoeba = LANGS[1:]
  c.phases.zero_shot.languages = LANGS
  c.train.update(batch_size=16, eval_batch_size=16, steps=4, eval_every=4, log_every=2)
  return c.run_dir, run_all(c)


@pytest.mark.slow
def test_align_writes_tables_and_plots_and_agrees_with_tatoeba(finished, tmp_path):
  run_dir, _ = finished
  assert align.main_align(["--checkpoints", run_dir, "--pairs", "tatoeba",
                           "--out", str(tmp_path)]) == 0
  report = json.loads((tmp_path / "align.json").read_text())
  assert [c["label"].split(":")[1] for c in report["checkpoints"]] == [
      "pretrained", "intermediate", "target"]
  assert report["languages"] == ["de", "fr"]  # both resource class 5, Germanic before Romance
  assert report["sizes"]["de"] == {"pairs": 100, "repeats_dropped": 0}
  pre = report["checkpoints"][0]
  layers = [str(l) for l in range(3)]  # a 2-layer model: embeddings and two layers
  assert list(pre["measures"]["de"]) == layers
  assert all(v == pytest.approx(1.0) for lang in ("de", "fr") for l in layers
             for v in pre["retention"][lang][l].values() if v == v)
  target = report["checkpoints"][2]
  assert target["retention"]["fr"]["2"]["cka"] == pytest.approx(
      target["measures"]["fr"]["2"]["cka"] / pre["measures"]["fr"]["2"]["cka"])
  # en -> xx top-1 equals xtjax's Tatoeba accuracy from the same phase and layer.
  tatoeba = evaluate_retrieval(Run.from_dir(run_dir), "tatoeba", "pretrained", languages=["de"],
                               layers="all", out_dir=tmp_path / "tatoeba")
  for layer in layers:
    assert pre["measures"]["de"][layer]["retrieval_en_xx"] == pytest.approx(
        tatoeba["layers"][layer]["accuracy"]["de"])
  lines = (tmp_path / "align.csv").read_text().splitlines()
  assert lines[0] == "checkpoint,language,layer,measure,value,retention"
  assert len(lines) == 1 + 3 * 2 * 3 * 7
  for name in ("align_cosine", "align_cosine_gap", "align_cka", "align_retrieval", "retention"):
    assert (tmp_path / f"{name}.png").read_bytes()[:4] == b"\x89PNG"


def test_align_on_xnli_pairs_at_chosen_layers(finished, tmp_path):
  run_dir, _ = finished
  assert align.main_align(["--checkpoints", f"{run_dir}:target", "--pairs", "xnli",
                           "--layers", "1,2", "--languages", "fr", "--out", str(tmp_path)]) == 0
  report = json.loads((tmp_path / "align.json").read_text())
  assert [c["phase"] for c in report["checkpoints"]] == ["pretrained", "target"]
  assert report["languages"] == ["fr"] and report["checkpoints"][1]["layers"] == [1, 2]
  assert report["sizes"]["fr"]["pairs"] + report["sizes"]["fr"]["repeats_dropped"] == 48


def test_align_reads_a_pairs_file(finished, tmp_path):
  run_dir, _ = finished
  rows = ["language\tenglish\ttranslation"] + [f"de\tAnna has {i} cats .\tAnna hat {i} Katzen ."
                                                 for i in range(2, 10)]
  (tmp_path / "pairs.tsv").write_text("\n".join(rows) + "\n")
  assert align.main_align(["--checkpoints", f"{run_dir}:pretrained", "--pairs",
                           str(tmp_path / "pairs.tsv"), "--out", str(tmp_path / "out")]) == 0
  report = json.loads((tmp_path / "out" / "align.json").read_text())
  assert report["sizes"] == {"de": {"pairs": 8, "repeats_dropped": 0}}


@pytest.mark.parametrize("args,message", [
    (["--checkpoints", "{run}:nope"], "phase 'nope' of {run} is not a finished phase with a "
                                      "model: use one of pretrained, intermediate, target"),
    (["--checkpoints", "/no/such/run"], "no run in /no/such/run"),
    (["--checkpoints", "{run}", "--layers", "x"], "--layers must be 'all' or comma-separated"),
    (["--checkpoints", "{run}", "--layers", "1,9"], "must name layers between 0 and 2"),
    (["--checkpoints", "{run}", "--layers", "0,1"], ":pretrained is not among the measured "
                                                   "layers [0, 1]: add it to --layers"),
    (["--checkpoints", "{run}", "--pairs", "{run}/config.json"], "lacks column(s)"),
    (["--checkpoints", "{run}", "--languages", "xx"], "unknown language(s) ['xx'] for tatoeba"),
])
def test_align_bad_input_is_a_one_line_error(finished, capsys, args, message):
  run_dir, _ = finished
  assert align.main_align([a.format(run=run_dir) for a in args]) == 2
  err = capsys.readouterr().err
  assert err.startswith("xtjax align: ") and message.format(run=run_dir) in err
  assert err.count("\n") == 1


def test_bench_per_language_cost(finished, tmp_path):
  run_dir, _ = finished
  assert bench.main_bench(["--checkpoint", run_dir, "--tasks", "xnli", "--batch-sizes", "1,8",
                           "--max-examples", "16", "--latency-calls", "4", "--passes", "1",
                           "--out", str(tmp_path)]) == 0
  report = json.loads((tmp_path / "bench.json").read_text())
  assert report["device"]["platform"] == "cpu" and report["device"]["devices_used"] == 1
  (task,) = report["tasks"]
  assert (task["checkpoint"].split(":")[1], task["head"]) == ("target", "xnli")
  assert list(task["languages"]) == list(LANGS)
  run = Run.from_dir(run_dir)
  rows, features, _ = load_task_data(run, get_task("xnli"), "test", "de", run.data, limit=16)
  de = task["languages"]["de"]
  texts = list(rows["text_a"]) + list(rows["text_b"])
  counts = fertility.subword_counter(run.tokenizer)(texts)
  words = sum(len(t.split()) for t in texts)
  assert de["fertility"]["per_word"] == pytest.approx(sum(counts) / words)
  assert task["languages"]["en"]["fertility"]["per_word_rel"] == 1.0
  assert de["padding"]["real_tokens"] == int(features["attention_mask"].sum())
  assert de["latency"]["calls"] == 4 and de["latency"]["p95_ms"] >= de["latency"]["p50_ms"]
  thr = de["throughput"]["8"]
  assert thr["examples_per_s"] * thr["seconds"] == pytest.approx(16)
  assert thr["real_tokens_per_s"] * thr["seconds"] == pytest.approx(de["padding"]["real_tokens"])
  assert task["setup"]["shapes"] >= 2 and task["setup"]["compile_s"] > 0
  assert f"| {task['checkpoint']} | xnli | de | 16 |" in (tmp_path / "bench.md").read_text()
  assert len((tmp_path / "bench.csv").read_text().splitlines()) == 1 + len(LANGS)
  assert (tmp_path / "throughput_vs_fertility.png").read_bytes()[:4] == b"\x89PNG"


def test_bench_of_a_phase_without_the_task_head_times_the_encoder(finished, tmp_path):
  run_dir, _ = finished
  assert bench.main_bench(["--checkpoint", f"{run_dir}:pretrained", "--tasks", "xnli",
                           "--languages", "de", "--batch-sizes", "4", "--max-examples", "8",
                           "--passes", "1", "--out", str(tmp_path)]) == 0
  (task,) = json.loads((tmp_path / "bench.json").read_text())["tasks"]
  assert task["head"] is None and task["languages"]["de"]["latency"] is None


@pytest.mark.parametrize("args,message", [
    (["--tasks", "xnli", "--batch-sizes", "0,8"], "--batch-sizes must be positive integers"),
    (["--tasks", "nope"], "unknown task 'nope'"),
    (["--tasks", "mlm"], "bench measures tasks of kinds"),
])
def test_bench_bad_input_is_a_one_line_error(finished, capsys, args, message):
  run_dir, _ = finished
  assert bench.main_bench(["--checkpoint", run_dir, *args]) == 2
  err = capsys.readouterr().err
  assert err.startswith("xtjax bench: ") and message in err and err.count("\n") == 1


def test_crosslingual_matrix_diagonal_is_the_zero_shot_score(finished, tmp_path):
  run_dir, results = finished
  assert crosslingual.main_crosslingual(["--checkpoint", run_dir, "--tasks", "xnli",
                                         "--out", str(tmp_path)]) == 0
  result = json.loads((tmp_path / "xnli.json").read_text())
  assert result["languages"] == list(LANGS) and result["examples"] == 24
  zero_shot = results["zero_shot"]["metrics"]["accuracy"]
  assert np.diag(result["matrix"]).tolist() == pytest.approx([zero_shot[l] for l in LANGS])
  assert len((tmp_path / "xnli.csv").read_text().splitlines()) == 1 + 9
  assert (tmp_path / "xnli_heatmap.png").read_bytes()[:4] == b"\x89PNG"


def test_crosslingual_needs_a_phase_with_the_head(finished, capsys):
  run_dir, _ = finished
  assert crosslingual.main_crosslingual(["--checkpoint", f"{run_dir}:pretrained"]) == 2
  assert "phase pretrained has no head that predicts xnli" in capsys.readouterr().err


def test_timer_compiles_each_shape_once_and_times_whole_passes():
  timer = inference.Timer(lambda p, b: b["input_ids"] * p, jnp.int32(2), warmup=1)
  batches = [{"input_ids": jnp.ones((1, n), jnp.int32)} for n in (4, 8, 4)]
  lat = inference.latency(timer, batches, calls=5)
  assert lat["calls"] == 5 and timer.setup()["shapes"] == 2
  thr = inference.throughput(timer, batches, examples=3, real_tokens=16, passes=2)
  assert thr["examples_per_s"] * thr["seconds"] == pytest.approx(3)
  assert thr["padded_tokens_per_s"] * thr["seconds"] == pytest.approx(16)
  assert timer.setup()["shapes"] == 2


def test_checkpoint_specs_split_off_a_phase_but_not_a_url_scheme():
  assert runs.parse_spec("runs/a:target") == ("runs/a", "target")
  assert runs.parse_spec("runs/a") == ("runs/a", None)
  assert runs.parse_spec("gs://bucket/run") == ("gs://bucket/run", None)
  assert runs.parse_spec("gs://bucket/run:target") == ("gs://bucket/run", "target")


def test_every_benchmark_language_has_metadata_and_orders_by_resource():
  benchmark = {l for tasks in scoring.TASK_LANGUAGES.values() for ls in tasks.values() for l in ls}
  assert benchmark <= set(languages.LANGUAGES)
  assert languages.ordered(["sw", "xx", "th", "hi", "en"]) == ["en", "hi", "th", "sw", "xx"]
  assert languages.ordered(["sw", "de", "ar"], "family") == ["ar", "de", "sw"]
  with pytest.raises(ValueError, match="unknown language order 'size'"):
    languages.ordered(["en"], "size")
