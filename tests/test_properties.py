"""Properties over arbitrary text and numbers (hypothesis): the metric functions never crash, stay
in 0..100 and give 100 for a perfect prediction; the config loader answers any override with a
config or one line on stderr, never a traceback."""

import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xtjax import metrics
from xtjax.cmdline import parse_config

TEXT = st.text(max_size=30)
TAG = st.one_of(st.sampled_from(["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "NOUN", "SCONJ", "X"]),
                st.text(min_size=1, max_size=6))
LANGS = st.sampled_from([None, *metrics.MLQA_ARTICLES])
SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def in_range(scores: dict) -> bool:
  return all(0.0 <= v <= 100.0 + 1e-9 for v in scores.values())


@SETTINGS
@given(st.lists(st.tuples(st.one_of(st.integers(), TEXT), st.one_of(st.integers(), TEXT)),
                min_size=1))
def test_accuracy_is_a_percentage_and_100_for_perfect_predictions(pairs):
  predictions, labels = zip(*pairs)
  assert 0.0 <= metrics.accuracy(list(predictions), list(labels)) <= 100.0
  assert metrics.accuracy(list(labels), list(labels)) == 100.0


@pytest.mark.filterwarnings("ignore")  # seqeval warns about undefined scores and odd tags
@SETTINGS
@given(st.lists(st.lists(st.tuples(TAG, TAG), min_size=1, max_size=12), min_size=1, max_size=6))
def test_tagging_scores_are_percentages_and_perfect_tags_score_100(sentences):
  gold = [[g for g, _ in s] for s in sentences]
  predicted = [[p for _, p in s] for s in sentences]
  assert in_range(metrics.tagging_scores(gold, predicted))
  perfect = metrics.tagging_scores(gold, gold)
  assert in_range(perfect) and perfect["accuracy"] == 100.0
  assert perfect["f1"] in (0.0, 100.0)  # 0 only when the gold tags hold no chunk at all
  assert perfect["precision"] == perfect["recall"] == perfect["f1"]


@SETTINGS
@given(st.dictionaries(st.text(string.ascii_letters, min_size=1, max_size=5),
                       st.tuples(st.lists(TEXT, min_size=1, max_size=3), TEXT),
                       min_size=1, max_size=8),
       LANGS, st.booleans())
def test_qa_scores_are_percentages_and_perfect_answers_score_100(questions, lang, version_2):
  if version_2:
    lang = None
  gold = {qid: answers for qid, (answers, _) in questions.items()}
  predicted = {qid: prediction for qid, (_, prediction) in questions.items()}
  assert in_range(metrics.qa_scores(predicted, gold, lang, version_2))
  perfect = metrics.qa_scores({q: a[0] for q, a in gold.items()}, gold, lang, version_2)
  assert perfect["exact_match"] == 100.0 or version_2  # v2 drops answers normalising to ""
  if all(metrics.normalize_answer(a[0], lang) for a in gold.values()):
    assert perfect["exact_match"] == perfect["f1"] == 100.0
  partial = metrics.qa_scores(dict(list(predicted.items())[1:]), gold, lang, version_2)
  assert in_range(partial)  # a missing prediction scores 0, never an error


KEYS = st.one_of(st.sampled_from(["optim.lr", "train.batch_size", "train.steps", "seed",
                                  "data.max_length", "model.dtype", "phases.target.task",
                                  "train.eval_buckets", "mesh", "data.hub_mirror"]),
                 st.text(string.ascii_letters + "._", min_size=1, max_size=20))
VALUES = st.one_of(TEXT, st.integers().map(str), st.floats().map(repr),
                   st.lists(st.integers(), max_size=3).map(str))


@settings(max_examples=100, deadline=None,  # capsys is read out after every example
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(KEYS, VALUES), min_size=1, max_size=3))
def test_any_override_gives_a_config_or_one_line_error(capsys, overrides):
  argv = ["xtjax", "--config", "configs/demo.py"] + [f"--config.{k}={v}" for k, v in overrides]
  config, _ = parse_config("run", argv, lambda values: None, "configs/demo.py")
  err = capsys.readouterr().err
  if config is None:
    assert err.startswith("xtjax run: ") and err.endswith("\n") and err.count("\n") == 1, err
  else:
    assert err == ""
