"""Mewsli-X and LAReQA on tiny files in the official layouts: query and candidate texts as upstream
builds them, mAP@20 from stub encoders (perfect and hand-computed), and the dual-encoder phase on a
tiny random model, read back by `Encoder`."""

import json

import jax
import numpy as np
import pytest

from xtjax.config import base_config
from xtjax.data import synthetic
from xtjax.models.heads import MaskedLMHead, TaskModel
from xtjax.models.loading import save_hf
from xtjax.models.xlmr import XLMRConfig
from xtjax.optim import make_optimizer
from xtjax.params import Model
from xtjax.phases import dual_encoder, pretrained
from xtjax.retrieval import ranking
from xtjax.run import Run
from xtjax.steps import make_train_step, opt_shardings


def spans(text, sentences):
  """Sentence spans of ``sentences`` found in order in ``text``."""
  out, at = [], 0
  for s in sentences:
    at = text.index(s, at)
    out.append({"start": at, "end": at + len(s)})
    at += len(s)
  return out


def entity(qid, lang, sentences, sep=" "):
  text = sep.join(sentences)
  return {"entity_id": qid, "title": qid, "description": text, "description_language": lang,
          "description_url": f"https://{lang}.wikipedia.org/{qid}",
          "sentence_spans": spans(text, sentences)}


def doc(lang, sentences, mentions, sep=" "):
  text = sep.join(sentences)
  context = {"document_title": "t", "document_url": "u", "document_id": f"{lang}-doc",
             "language": lang, "text": text, "sentence_spans": spans(text, sentences)}
  found = []
  for i, (surface, qid, after) in enumerate(mentions):
    start = text.index(surface, text.index(after))
    found.append({"example_id": f"{lang}-{i}", "entity_id": qid,
                  "mention_span": {"start": start, "end": start + len(surface), "text": surface}})
  return {"context": context, "mentions": found}


def write_jsonl(path, rows):
  path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")


ENTITIES = [entity("Q1", "de", ["Berlin ist die Hauptstadt.", "Sie liegt an der Spree."]),
            entity("Q2", "en", ["Paris is the capital of France.", "It is\nlarge."], sep="  "),
            entity("Q3", "ja", ["東京は日本の首都である。"]),
            entity("Q4", "de", ["Die Spree ist ein Fluss."])]
MENTIONS = [doc("de", ["Vorwort hier.", "Er wohnt in Berlin seit {2010}.", "Die Spree fließt."],
                [("Berlin", "Q1", "Er"), ("Spree", "Q4", "Die")]),
            doc("en", ["Paris\nwas busy.", "Nothing else."], [("Paris", "Q2", "Paris")]),
            doc("ja", ["東京で会議。"], [("東京", "Q3", "東京")])]
QUERIES = {"de-0": "Berlin: Er wohnt in { Berlin } seit (2010).",
           "de-1": "Spree: Die { Spree } fließt.", "en-0": "Paris: { Paris } was busy.",
           "ja-0": "東京: { 東京 } で会議。"}
DESCRIPTIONS = {"Q1": "Berlin ist die Hauptstadt. Sie liegt an der Spree.",
                "Q2": "Paris is the capital of France. It is large.",
                "Q3": "東京は日本の首都である。", "Q4": "Die Spree ist ein Fluss."}


@pytest.fixture(scope="module")
def mewslix_dir(tmp_path_factory):
  root = tmp_path_factory.mktemp("mewslix")
  write_jsonl(root / "candidate_set_entities.jsonl", ENTITIES)
  write_jsonl(root / "wikinews_mentions-test.jsonl", MENTIONS)
  # English Wikipedia pairs for fine-tuning: entity k is mentioned by its made-up name.
  for split, ks in (("train", range(48)), ("dev", range(48, 64))):
    pairs = []
    for k in ks:
      name = f"nam{k}"
      cm = doc("en", [f"Yesterday we met {name} in town.", "It rained."], [(name, f"Q{k}", "Y")])
      pairs.append({"contextual_mention": {"context": cm["context"], "mention": cm["mentions"][0]},
                    "entity": entity(f"Q{k}", "en", [f"{name} is thing {k % 7}.", "It is old."])})
    write_jsonl(root / f"wikipedia_pairs-{split}.jsonl", pairs)
  return root


class Stub:
  """texts -> fixed vectors (KeyError on an unexpected text)."""

  def __init__(self, vectors: dict):
    self.vectors = vectors

  def __call__(self, texts):
    return np.asarray([self.vectors[t] for t in texts], np.float32)


def test_mewslix_query_and_candidate_texts_as_upstream(mewslix_dir):
  data = ranking.read_mewslix(mewslix_dir, "test", ["de", "en", "ja"])
  assert {i: t for l in data.queries for i, t in zip(*data.queries[l])} == QUERIES
  assert dict(zip(data.candidate_ids, data.candidate_texts)) == DESCRIPTIONS
  assert data.gold["de"] == {"de-0": ["Q1"], "de-1": ["Q4"]}
  with pytest.raises(ValueError, match="no mentions in language.*'ar'"):
    ranking.read_mewslix(mewslix_dir, "test", ["ar"])
  with pytest.raises(FileNotFoundError, match="mentions-dev.jsonl is missing.*get-mewsli-x.sh"):
    ranking.read_mewslix(mewslix_dir, "dev")
  with pytest.raises(FileNotFoundError, match="set data.mewslix_dir"):
    ranking.read_mewslix(None)


def test_mewslix_map_perfect_and_hand_computed(mewslix_dir):
  onehot = {q: np.eye(4)[int(q[1:]) - 1] for q in DESCRIPTIONS}
  cands = Stub({t: onehot[q] for q, t in DESCRIPTIONS.items()})
  gold = {"de-0": "Q1", "de-1": "Q4", "en-0": "Q2", "ja-0": "Q3"}
  perfect = Stub({t: onehot[gold[i]] for i, t in QUERIES.items()})
  langs = ["de", "en", "ja"]
  scores, predictions = ranking.evaluate_mewslix(perfect, cands, mewslix_dir, langs,
                                                 lower_case=False)
  assert scores == {"map@20": {"de": 100.0, "en": 100.0, "ja": 100.0}, "avg_map@20": 100.0}
  assert predictions["de"]["de-1"][0] == "Q4" and len(predictions["de"]["de-1"]) == 4
  # Berlin ranks Q4 above its gold Q1 (1/2); Tokyo's gold comes third (1/3).
  imperfect = dict(perfect.vectors)
  imperfect[QUERIES["de-0"]] = 0.6 * onehot["Q4"] + 0.5 * onehot["Q1"]
  imperfect[QUERIES["ja-0"]] = 0.9 * onehot["Q1"] + 0.8 * onehot["Q2"] + 0.7 * onehot["Q3"]
  scores, _ = ranking.evaluate_mewslix(Stub(imperfect), cands, mewslix_dir, langs,
                                       lower_case=False)
  assert scores["map@20"] == pytest.approx({"de": 75.0, "en": 100.0, "ja": 100 / 3})
  # Lower-casing (the default) reaches the encoders.
  lower = lambda stub: Stub({t.lower(): v for t, v in stub.vectors.items()})
  scores, _ = ranking.evaluate_mewslix(lower(perfect), lower(cands), mewslix_dir, langs)
  assert scores["avg_map@20"] == 100.0


def squad_doc(paragraphs):
  """XQuAD-R layout: paragraphs of (sentences, [(question id, question, answer sentence index)])."""
  out = []
  for sentences, qas in paragraphs:
    context = " ".join(sentences[:2]) + "\n".join([""] + sentences[2:])
    breaks = [[s["start"], s["end"]] for s in spans(context, sentences)]
    out.append({"context": context, "sentence_breaks": breaks, "qas": [
        {"id": qid, "question": q + " ", "answers": [
            {"text": "x", "answer_start": breaks[i][0] if i >= 0 else breaks[0][1]}]}
        for qid, q, i in qas]})
  return {"data": [{"title": "t", "paragraphs": out}]}


@pytest.fixture(scope="module")
def lareqa_dir(tmp_path_factory):
  root = tmp_path_factory.mktemp("lareqa")
  (root / "xquad-r").mkdir()
  words = {"en": ("is", "first", "second", "third", "alone"),
           "de": ("ist", "erster", "zweiter", "dritter", "allein")}
  for lang, (is_, *w) in words.items():
    doc_ = squad_doc([
        ([f"Alpha {is_} {w[0]}.", f"Beta {is_} {w[1]}.", f"Gamma {is_} {w[2]}."],
         [("q1", f"{lang} one?", 0), ("q2", f"{lang} two?", 2), ("q4", "between?", -1)]),
        ([f"Delta {is_} {w[3]}."], [("q3", f"{lang} three?", 0)]),
        (["No questions here."], [])])
    (root / "xquad-r" / f"{lang}.json").write_text(json.dumps(doc_, ensure_ascii=False), "utf-8")
  return root


def test_lareqa_pool_targets_and_map(lareqa_dir):
  data = ranking.read_lareqa(lareqa_dir, ["en", "de"])
  assert data.candidate_ids == ["de_1_0", "de_1_1", "de_1_2", "de_2_0",
                                "en_1_0", "en_1_1", "en_1_2", "en_2_0"]
  assert data.candidate_texts[4] == "Alpha is first.Alpha is first. Beta is second.Gamma is third."
  assert data.queries["en"] == (["q1_en", "q2_en", "q3_en"], ["en one?", "en two?", "en three?"])
  assert data.gold["en"] == {"q1_en": ["de_1_0", "en_1_0"], "q2_en": ["de_1_2", "en_1_2"],
                             "q3_en": ["de_2_0", "en_2_0"]}
  # Questions point along their id, answers along their question's, other sentences elsewhere.
  axis = {"q1": 0, "q2": 1, "q3": 2}
  answer_of = {c: q for golds in data.gold.values() for q, cs in golds.items() for c in cs}
  cands = Stub({t: np.eye(4)[axis[answer_of[c][:2]] if c in answer_of else 3]
                for c, t in zip(data.candidate_ids, data.candidate_texts)})
  questions = {t: np.eye(4)[axis[i[:2]]] for l in data.queries for i, t in zip(*data.queries[l])}
  scores, predictions = ranking.evaluate_lareqa(Stub(questions), cands, lareqa_dir, ["en", "de"],
                                                lower_case=False)
  assert scores["map@20"] == {"en": 100.0, "de": 100.0}
  assert predictions["en"]["q2_en"][:2] == ["de_1_2", "en_1_2"]
  # q1_en prefers the two Beta sentences: its answers come 3rd and 4th, AP = (1/3 + 2/4) / 2.
  questions["en one?"] = 0.8 * np.eye(4)[3] + 0.6 * np.eye(4)[0]
  scores, _ = ranking.evaluate_lareqa(Stub(questions), cands, lareqa_dir, ["en", "de"],
                                      lower_case=False)
  assert scores["map@20"]["de"] == 100.0
  assert scores["map@20"]["en"] == pytest.approx(100 * (5 / 12 + 2) / 3)
  with pytest.raises(FileNotFoundError, match="xquad-r/ar.json missing.*data.lareqa_dir"):
    ranking.read_lareqa(lareqa_dir, ["ar"])


def test_squad_sentence_breaks_and_pairs():
  context = "Dr. Smith arrived. The end came. It was U.S. 66 then."
  assert [context[s:e] for s, e in ranking.sentence_breaks(context)] == [
      "Dr. Smith arrived.", "The end came.", "It was U.S. 66 then."]
  rows = [{"question": q, "context": context, "answers": {"text": [a], "answer_start": [at]}}
          for q, a, at in (("Who?", "Smith", 4), ("What?", "end", 23), ("Gap?", " The", 18),
                           ("Bad?", "xyz", 4))]
  pairs = ranking.squad_pairs(rows)
  assert pairs.queries == ["Who?", "What?"]
  assert pairs.candidates == ["Dr. Smith arrived.", "The end came."]
  assert pairs.contexts == [context, context]


def write_tiny_model(texts, out_dir):
  """A tokenizer on ``texts`` and a random XLM-R initialised wide (std 0.3, not 0.02), so that its
  ``<s>`` vectors already tell texts apart as a pretrained model's do."""
  vocab = synthetic.train_tokenizer(texts, out_dir, vocab_size=400)
  cfg = XLMRConfig(vocab_size=vocab, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                   intermediate_size=128, max_position_embeddings=66, hidden_dropout_prob=0.0,
                   attention_probs_dropout_prob=0.0, initializer_range=0.3)
  model = Model.create(lambda rngs: TaskModel(cfg, {"mlm": (MaskedLMHead, 0)}, rngs=rngs))
  save_hf(out_dir, jax.jit(model.init)(jax.random.key(0)), cfg, {"mlm": "masked_lm"})


@pytest.fixture(scope="module")
def run(tmp_path_factory, mewslix_dir):
  root = tmp_path_factory.mktemp("dual")
  texts = [json.dumps(json.loads(line), ensure_ascii=False).lower()
           for name in ("wikipedia_pairs-train", "wikipedia_pairs-dev", "candidate_set_entities",
                        "wikinews_mentions-test")
           for line in (mewslix_dir / f"{name}.jsonl").read_text("utf-8").splitlines()]
  write_tiny_model(texts, root / "model")
  c = base_config()
  c.run_dir = str(root / "run")
  c.model.update(checkpoint=str(root / "model"), dtype="float32")
  c.data.mewslix_dir = str(mewslix_dir)
  c.train.update(eval_batch_size=16, steps=4, eval_every=2, log_every=1)
  c.phases.pretrained = dict(kind="pretrained")
  c.phases.retrieval = dict(kind="dual_encoder", task="mewslix", init_from="pretrained",
                            optim=dict(lr=1e-3, grad_accum_steps=2), train=dict(batch_size=16))
  r = Run(c)
  r.write_result(pretrained.run_phase(r, r.phases["pretrained"]))
  return r


@pytest.mark.slow
def test_train_step_lowers_the_in_batch_loss(run):
  features = dual_encoder.pair_features(
      run.tokenizer, ranking.mewslix_pairs(run.config.data.mewslix_dir, "train"), 64, 64, True)
  batch = {k: v[:8].astype(np.int32) for k, v in features.items()}
  batch["example_mask"] = np.ones(8, np.int32)
  model, encoder_sh = run.model()
  params, _ = run.trained_params("pretrained", model, encoder_sh)
  param_sh = {**encoder_sh, dual_encoder.SCALE: jax.sharding.NamedSharding(
      run.mesh, jax.sharding.PartitionSpec())}
  params[dual_encoder.SCALE] = jax.device_put(np.float32(dual_encoder.INITIAL_SCALE),
                                              param_sh[dual_encoder.SCALE])
  optim = run.config.optim.copy_and_resolve_references()
  optim.update(lr=1e-3, warmup=0)
  tx = make_optimizer(optim, 100, list(param_sh))
  opt_abstract = jax.eval_shape(tx.init, params)
  opt_sh = opt_shardings(opt_abstract, params, param_sh, run.mesh)
  step = make_train_step(lambda p, b, r: dual_encoder.in_batch_loss(model, p, b, r), tx, param_sh,
                         opt_sh, run.batch_sh)
  with jax.set_mesh(run.mesh):
    opt_state = jax.jit(tx.init, out_shardings=opt_sh)(params)
    batch = jax.device_put(batch, run.batch_sh)
    losses = []
    for i in range(8):
      params, opt_state, metrics = step(params, opt_state, batch, jax.random.key(i))
      losses.append(float(metrics["loss"]))
  assert losses[-1] < 0.5 * losses[0]


@pytest.mark.slow
def test_phase_trains_and_its_encoder_reads_back(run, tmp_path):
  result = dual_encoder.run_phase(run, run.phases["retrieval"])
  run.write_result(result)
  assert [h["step"] for h in result["history"]] == [2, 4]
  assert result["in_batch"] == 8 and result["train_size"] == 48 and result["dev_size"] == 16
  assert result["settings"]["optim"]["lr"] == 1e-3  # the phase's override beats the default
  assert result["settings"]["optim"]["weight_decay"] == 0.0  # train_mewslix.sh's default
  assert 0 <= result["dev"]["accuracy"] <= 100 and result["dev"]["loss"] > 0
  model, encoder_sh = run.model()
  before, _ = run.trained_params("pretrained", model, encoder_sh)
  after, plan = run.trained_params("retrieval", model, encoder_sh)  # the scale is left out
  assert set(plan) == set(before) and any(not np.allclose(before[k], after[k]) for k in before)
  # Encoder (<s> of the last layer) reads the trained encoder; the test predictions are written.
  out = ranking.evaluate_phase(run, "mewslix", "retrieval", languages=["de", "en", "ja"],
                               out_dir=tmp_path)
  assert out["lower_case"] is True and set(out["metrics"]["map@20"]) == {"de", "en", "ja"}
  written = json.loads((tmp_path / "predictions" / "mewslix" / "test-de.json").read_text())
  assert set(written) == {"de-0", "de-1"} and len(written["de-0"]) == 4


@pytest.mark.slow
def test_the_dual_encoder_stops_on_patience_like_every_phase(run):
  """lr 0: dev accuracy never improves, so patience 2 stops after the third evaluation."""
  c = run.config.copy_and_resolve_references()
  c.phases.patient = dict(kind="dual_encoder", task="mewslix", init_from="pretrained",
                          optim=dict(lr=0.0, grad_accum_steps=2),
                          train=dict(batch_size=16, steps=10, eval_every=1, patience=2))
  r = Run(c)
  result = dual_encoder.run_phase(r, r.phases["patient"])
  assert [h["step"] for h in result["history"]] == [1, 2, 3]
  assert result["steps"] == 10 and result["steps_done"] == 3 and result["selected_step"] == 3
