"""Every XTREME / XTREME-R target task: train on English, zero-shot evaluation in every language.

    xtjax run --config configs/xtreme/targets.py:large,xtreme
    xtjax run --config configs/xtreme/targets.py:large,xtreme-r,xnli+udpos
    xtjax eval --checkpoint runs/xtreme/large_xtreme --tasks xnli,udpos --benchmark xtreme

The argument is ``SIZE[,BENCHMARK[,TASKS[,PRESET]]]``: the XLM-R size (base, large, xl, xxl), the
benchmark whose languages are evaluated, the target tasks joined by ``+`` (default: all of the
benchmark's tasks, retrieval included: BUCC and Tatoeba need ``data.bucc_dir``; Mewsli-X and
LAReQA ``data.mewslix_dir`` and ``data.lareqa_dir``) and a sharding preset. Every target model
starts from the pretrained encoder with fresh heads; the intermediate-task configs start them
from there instead.

Every value is google-research/xtreme's (commit 838c13b), its source beside it: ``scripts/*.sh``
pass the arguments; ``third_party/run_*.py`` hold the defaults of the rest. The scripts set base
and large apart where they differ (``XLM-R large`` / ``base`` below); they have no XL or XXL
settings, so those sizes take large's (no source). Batch sizes are per GPU x accumulation steps,
one GPU (``CUDA_VISIBLE_DEVICES=$GPU``): ``train.batch_size`` is their product. Adam's epsilon
(1e-8) and clipping (1.0) are every script's defaults and base_config's.
"""

from ml_collections import ConfigDict

from xtjax.config import base_config, model_config
from xtjax.scoring import TASK_LANGUAGES

# scripts/train_qa.sh (both sizes): batch 4 x 8 (lines 26-27), 384 tokens (29), lr 3e-5 (30),
# 3 epochs (31), --doc_stride 128 (67), --warmup_steps 500 (71), --weight_decay 0.0001 (73);
# run_squad.py --max_query_length default 64 (lines 582-588): base_config's doc_stride and
# max_query_length. --save_steps -1 (68) and no --evaluate_during_training: the last step's model
# predicts. get_final_text as run_squad.py lines 403-409 (transformers'
# compute_predictions_logits), n-best 20 and 30-token answers (lines 622-634).
_QA = dict(optim=dict(lr=3e-5, warmup=500, weight_decay=1e-4),
           train=dict(epochs=3.0, selection="last"),
           data=dict(max_length=384, qa_postprocess="official"))
# scripts/train_xcopa.sh: SocialIQA then COPA, each lr 3e-5 / 2e-5 (XLM-R large / base, lines
# 44-54), 5 epochs (30, 75, 100), 128 tokens (45, 50). run_xcopa.py trains with transformers
# 4.9.2's Trainer defaults (no warmup, no weight decay, no evaluation during training) and saves
# the last step's model (lines 371-380).
_MC = dict(optim=dict(lr={"base": 2e-5, "large": 3e-5}),
           train=dict(epochs=5.0, selection="last"))
_SIQA = dict(**_MC, data=dict(max_length=128, mc_prompt="{premise} {question}"))  # lines 307-310

# task -> (the train phase's task, its settings). XQuAD and MLQA share one SQuAD v1.1 model.
_RECIPES = {
    # scripts/train_xnli.sh: lr 2e-5 (line 25; 3e-5 for XLM-R large, 39-42), 5 epochs (26), 128
    # tokens (27), batch 8 x 4 / 2 x 16 (40-45); --save_steps 100 (67) with
    # --save_only_best_checkpoint (71): run_classify.py lines 242-277 score the English dev set
    # every save_steps and keep the best (strictly higher accuracy).
    "xnli": ("xnli", dict(optim=dict(lr={"base": 2e-5, "large": 3e-5}),
                          train=dict(epochs=5.0, eval_every=100), data=dict(max_length=128))),
    # scripts/train_pawsx.sh: lr 2e-5 for both sizes (line 25), 5 epochs (26), 128 tokens (27),
    # batch 2 x 16 / 8 x 4 (39-45), best English dev accuracy every --save_steps 200 (62, 73).
    "pawsx": ("pawsx", dict(optim=dict(lr=2e-5), train=dict(epochs=5.0, eval_every=200),
                            data=dict(max_length=128))),
    # scripts/train_udpos.sh: 10 epochs, 128 tokens, lr 2e-5 (lines 25-27), batch 2 x 16 / 8 x 4
    # (39-45), --save_steps 500 (60) with --save_only_best_checkpoint (72): run_tag.py lines
    # 194-221 keep the best English dev F1.
    "udpos": ("udpos", dict(optim=dict(lr=2e-5), train=dict(epochs=10.0, eval_every=500),
                            data=dict(max_length=128))),
    # scripts/train_panx.sh: as UD-POS (lines 25-27, 39-45, 73) with --save_steps 1000 (61).
    "panx": ("panx", dict(optim=dict(lr=2e-5), train=dict(epochs=10.0, eval_every=1000),
                          data=dict(max_length=128))),
    "xquad": ("squad", _QA),
    "mlqa": ("squad", _QA),
    "tydiqa": ("tydiqa", _QA),
    # COPA's head is SocialIQA's, carried over; run_xcopa.py lines 303-306 ask "What was the
    # cause/effect?" after the premise.
    "xcopa": ("copa", dict(**_MC, data=dict(max_length=128,
                                            mc_prompt="{premise} What was the {connective}?"))),
}
# Retrieval: task -> the phase whose encoder it reads. XTREME reads BUCC and Tatoeba from the
# pretrained model; XTREME-R reads Tatoeba from the SQuAD v1.1 model, and Mewsli-X and LAReQA
# from dual encoders fine-tuned as train_mewslix.sh / train_lareqa.sh do.
_RETRIEVAL = {"xtreme": {"bucc2018": "pretrained", "tatoeba": "pretrained"},
              "xtreme-r": {"tatoeba": "squad", "mewslix": "dual_mewslix", "lareqa": "dual_lareqa"}}
# How BUCC and Tatoeba read the encoder. third_party/evaluate_retrieval.py pools
# hidden_states[-num_layers:][specific_layer] (lines 207-213): a 0-based index into the last
# num_layers hidden states, i.e. xtjax layer (0 = embeddings) n - num_layers + specific_layer + 1
# of an n-layer model. Both scripts tokenize to 512 (MAXL) and mean-pool over the attention mask,
# <s> and </s> included (prepare_batch, lines 85-110: no --pool_skip_special_token).
_POOLING = {
    # run_bucc2018.sh: --pool_type cls (line 66), --specific_layer 7 (75) and no --num_layers, so
    # its default 12 (evaluate_retrieval.py line 373): <s> of layer n - 4, i.e. 20 of 24 (large),
    # 8 of 12 (base); XL and XXL by the same rule (no source).
    "bucc2018": {"base": 8, "large": 20, "xl": 32, "xxl": 44, "pooling": "cls"},
    # run_tatoeba.sh: mean pooling (no --pool_type), LAYER=13 with NLAYER=24 (lines 37-41): layer
    # 14 of 24 for large. The same lines set 13 of 24 for base, an index past base's 13 hidden
    # states (its embedding stays zero); base takes the 12-layer setting of lines 28-29 (7 of 12:
    # layer 8) instead, and xl / xxl the default n // 2 + 2 (0): no source.
    "tatoeba": {"base": 8, "large": 14, "xl": 0, "xxl": 0, "pooling": "mean"},
}


def _sized(settings: dict, size: str) -> dict:
  """``settings`` with {"base": v, "large": v} values resolved for ``size`` (XL, XXL: large's)."""
  resolve = lambda v: v.get(size, v["large"]) if isinstance(v, dict) and "large" in v else v
  return {k: ({kk: resolve(vv) for kk, vv in v.items()} if isinstance(v, dict) else v)
          for k, v in settings.items()}


def _retrieval_phase(task: str, source: str, size: str, languages) -> dict:
  phase = dict(kind="retrieval", task=task, from_phase=source, languages=tuple(languages))
  if task in _POOLING:
    phase.update(layer=_POOLING[task][size], pooling=_POOLING[task]["pooling"],
                 include_special=True, max_length=512)
  return phase


def get_config(arg: str = "large,xtreme"):
  size, benchmark, tasks, preset = ((arg or "large,xtreme").split(",") + ["", "", ""])[:4]
  benchmark = benchmark or "xtreme"
  if benchmark not in TASK_LANGUAGES:
    raise ValueError(f"unknown benchmark {benchmark!r}: use {', '.join(TASK_LANGUAGES)}")
  known = [t for t in TASK_LANGUAGES[benchmark] if t in _RECIPES or t in _RETRIEVAL[benchmark]]
  tasks = tasks.split("+") if tasks else known
  unknown = [t for t in tasks if t not in known]
  if unknown:
    raise ValueError(f"unknown target task(s) {unknown} for {benchmark}: use {'+'.join(known)}")
  c = base_config()
  model_config(c, size, preset)
  c.run_dir = f"runs/xtreme/{size}_{benchmark}"
  # Batch 32 for every task and size: 2 x 16 (large) or 8 x 4 (base) in train_xnli.sh,
  # train_pawsx.sh, train_udpos.sh, train_panx.sh (lines 39-45) and train_xcopa.sh (44-54), 4 x 8
  # in train_qa.sh (26-27). Model selection on the English dev set unless a recipe keeps the last
  # step. No warmup or weight decay: run_classify.py lines 568 and 580, run_tag.py 439 and 449
  # (defaults 0, not passed), Trainer's defaults for XCOPA; QA sets its own.
  c.train.update(batch_size=32, eval_every=1000, selection="best_dev")
  c.optim.update(warmup=0, weight_decay=0.0)
  c.phases.pretrained = dict(kind="pretrained")
  for task in [t for t in tasks if t in _RETRIEVAL[benchmark]]:
    source = _RETRIEVAL[benchmark][task]
    if source.startswith("dual_"):
      c.phases[source] = dict(kind="dual_encoder", task=task, init_from="pretrained")
    elif source == "squad" and "squad" not in tasks:
      tasks.append("xquad")  # trains the SQuAD model Tatoeba reads
    c.phases[f"eval_{task}"] = _retrieval_phase(task, source, size,
                                                TASK_LANGUAGES[benchmark][task])
  for task in [t for t in tasks if t in _RECIPES]:
    trained, settings = _RECIPES[task][0], _sized(_RECIPES[task][1], size)
    if trained not in c.phases:
      init, extra = "pretrained", {}
      if trained == "copa":
        c.phases.siqa = dict(kind="train", task="siqa", init_from="pretrained",
                             dont_load=["heads/.*"], **_sized(_SIQA, size))
        init, extra = "siqa", dict(head_map=dict(copa="siqa"))
      c.phases[trained] = dict(kind="train", task=trained, init_from=init,
                               **(extra or dict(dont_load=["heads/.*"])), **settings)
    c.phases[f"eval_{task}"] = ConfigDict(dict(
        kind="eval", task=task, from_phase=trained, split="test",
        languages=tuple(TASK_LANGUAGES[benchmark][task]), data=settings.get("data", {})))
  return c
