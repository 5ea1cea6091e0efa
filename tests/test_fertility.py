"""Fertility and padding counts on hand-counted examples."""

import numpy as np
import pytest
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from xtjax.analysis import fertility


def chunks_of_three(texts):
  """A stand-in tokenizer: every word splits into pieces of at most three characters."""
  return [sum(-(-len(w) // 3) for w in t.split()) for t in texts]


def test_fertility_hand_counted():
  # "tokenization" -> tok eni zat ion (4), "is" (1), "fun" (1): 6 sub-words, 3 words, 17 chars.
  en = fertility.fertility(["tokenization is fun"], chunks_of_three)
  assert en == {"texts": 1, "words": 3, "chars": 17, "subwords": 6, "per_word": 2.0,
                "per_char": 6 / 17}
  # No spaces: one "word" of 4 characters -> 2 pieces.
  zh = fertility.fertility(["我喜欢猫", "  "], chunks_of_three)
  assert (zh["texts"], zh["words"], zh["chars"], zh["subwords"]) == (1, 1, 4, 2)
  rel = fertility.relative({"en": en, "zh": zh})
  assert rel["zh"]["per_word_rel"] == pytest.approx(1.0)
  assert rel["zh"]["per_char_rel"] == pytest.approx(0.5 / (6 / 17))
  assert rel["en"]["per_word_rel"] == 1.0
  assert fertility.relative({"zh": zh})["zh"]["per_char_rel"] is None


def test_subword_counter_excludes_special_tokens():
  vocab = {"[UNK]": 0, "<s>": 1, "</s>": 2, "token": 3, "##ization": 4, "is": 5, "fun": 6}
  tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
  tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
  hf = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", bos_token="<s>",
                               eos_token="</s>")
  count = fertility.subword_counter(hf)
  assert count(["tokenization is fun", "fun"]) == [4, 1]  # token ##ization is fun
  stats = fertility.fertility(["tokenization is fun", "fun"], count)
  assert (stats["subwords"], stats["words"], stats["per_word"]) == (5, 4, 1.25)


def test_padding_fixed_and_bucketed_hand_counted():
  lengths = [3, 5, 8, 2]
  mask = np.array([[1] * n + [0] * (8 - n) for n in lengths])
  out = fertility.padding(mask, [4, 8])
  # buckets 4, 8, 8, 4 -> 24 tokens run; 18 real; 32 when padded to max_length.
  assert (out["real_tokens"], out["padded_bucketed"], out["padded_fixed"]) == (18, 24, 32)
  assert out["pad_share_bucketed"] == pytest.approx(1 - 18 / 24)
  assert out["pad_share_fixed"] == pytest.approx(1 - 18 / 32)
  assert out["full_rows"] == 0.25 and out["tokens_per_row"] == 4.5


def test_padding_of_multiple_choice_rows_buckets_by_the_longest_choice():
  row = lambda *ns: [[1] * n + [0] * (8 - n) for n in ns]
  out = fertility.padding(np.array([row(3, 5), row(2, 2)]), [4, 8])
  assert (out["real_tokens"], out["padded_bucketed"], out["padded_fixed"]) == (12, 24, 32)


def test_bad_inputs_are_clear_errors():
  with pytest.raises(ValueError, match="at least one non-empty text"):
    fertility.fertility(["", " "], chunks_of_three)
  with pytest.raises(ValueError, match="must reach the features' length 8"):
    fertility.padding(np.ones((2, 8)), [4])
