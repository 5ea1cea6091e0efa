"""The synthetic hub mirrors load through datasets.load_dataset in the upstream schemas, and the
generated tokenizer loads through AutoTokenizer laid out like XLM-R's."""

import collections

import datasets
import pytest

from xtjax.data import synthetic

LANGS = ("en", "de", "ru")


def _load(root, repo, config, split):
  """Through datasets itself (a cache of this session's own: datasets keys the cache of a local
  folder on its name, so an older session's could be served)."""
  return datasets.load_dataset(str(root / repo), config, split=split,
                               cache_dir=str(root / ".hf_cache"))


@pytest.fixture(scope="module")
def mirror(tmp_path_factory):
  root = tmp_path_factory.mktemp("hub")
  info = synthetic.write_nli_mirror(root, languages=LANGS, n_train=90, n_dev=30, n_test=60, seed=0)
  return root, info


def test_mnli_mirror_has_upstream_schema_and_balanced_labels(mirror):
  root, info = mirror
  for split, n in [("train", 90), ("validation_matched", 30), ("validation_mismatched", 30)]:
    ds = _load(root, "nyu-mll/glue", "mnli", split)
    assert list(ds.features) == ["premise", "hypothesis", "label", "idx"]
    assert ds.features["premise"] == datasets.Value("string")
    assert ds.features["hypothesis"] == datasets.Value("string")
    assert ds.features["label"].names == ["entailment", "neutral", "contradiction"]
    assert ds.features["idx"] == datasets.Value("int32")
    assert len(ds) == n == info["mnli"]["sizes"][split]
    assert collections.Counter(ds["label"]) == {0: n // 3, 1: n // 3, 2: n // 3}
    assert list(ds["idx"]) == list(range(n))


def test_xnli_mirror_has_every_language_in_upstream_schema(mirror):
  root, _ = mirror
  for split, n in [("validation", 30), ("test", 60)]:
    ds = _load(root, "google/xtreme", "XNLI", split)
    assert ds.features == datasets.Features({name: datasets.Value("string") for name in
                                             ["sentence1", "sentence2", "language", "gold_label"]})
    assert collections.Counter(ds["language"]) == {lang: n for lang in LANGS}
    for lang in LANGS:
      labels = [g for g, l in zip(ds["gold_label"], ds["language"]) if l == lang]
      assert collections.Counter(labels) == {name: n // 3 for name in synthetic.NLI_LABELS}
    english = [s for s, l in zip(ds["sentence1"], ds["language"]) if l == "en"]
    german = [s for s, l in zip(ds["sentence1"], ds["language"]) if l == "de"]
    assert english != german


def test_splits_are_seeded_apart(mirror):
  root, _ = mirror
  train = set(_load(root, "nyu-mll/glue", "mnli", "train")["premise"])
  dev = list(_load(root, "nyu-mll/glue", "mnli", "validation_matched")["premise"])
  assert sum(p in train for p in dev) < len(dev) // 2


def test_same_seed_same_data_other_seed_other_data(tmp_path):
  def premises(name, seed):
    synthetic.write_nli_mirror(tmp_path / name, languages=("en", "fr"), n_train=30, n_dev=6,
                               n_test=6, seed=seed)
    return list(_load(tmp_path / name, "google/xtreme", "XNLI", "test")["sentence1"])

  assert premises("a", 0) == premises("b", 0)
  assert premises("a", 0) != premises("c", 1)


def test_configs_share_one_readme(tmp_path):
  feats = datasets.Features({"x": datasets.Value("string")})
  for config in ("one", "two"):
    synthetic.write_hub_config(tmp_path, config, {
        "test": datasets.Dataset.from_dict({"x": [config]}, features=feats)})
  for config in ("one", "two"):
    assert datasets.load_dataset(str(tmp_path), config, split="test",
                                 cache_dir=str(tmp_path / ".hf_cache"))["x"] == [config]


def test_unknown_language_is_refused(tmp_path):
  with pytest.raises(ValueError, match="xx"):
    synthetic.write_nli_mirror(tmp_path, languages=("en", "xx"))


def test_tokenizer_loads_as_xlmr(mirror, tmp_path):
  from transformers import AutoTokenizer

  root, _ = mirror
  xnli = _load(root, "google/xtreme", "XNLI", "test")
  size = synthetic.train_tokenizer(list(xnli["sentence1"]) + list(xnli["sentence2"]), tmp_path,
                                   vocab_size=300)
  assert not (tmp_path / "config.json").exists()
  tok = AutoTokenizer.from_pretrained(tmp_path)
  assert type(tok).__name__ == "XLMRobertaTokenizer"
  assert [tok.bos_token_id, tok.pad_token_id, tok.eos_token_id, tok.unk_token_id] == [0, 1, 2, 3]
  assert tok.mask_token_id == size - 1 == len(tok) - 1
  ids = tok("Anna has", "Ben owns")["input_ids"]
  tokens = tok.convert_ids_to_tokens(ids)
  assert tokens[0] == "<s>" and tokens[-1] == "</s>"
  assert ids.count(2) == 3 and ids[ids.index(2) + 1] == 2
  assert tok.decode(ids, skip_special_tokens=True) == "Anna has Ben owns"
  assert "<unk>" not in tokens
  batch = tok(["Anna", "Anna has 5 red cats ."], padding=True)["input_ids"]
  assert batch[0][-1] == 1
