"""Every XTREME / XTREME-R target task: train on English, zero-shot evaluation in every language.

    xtjax run --config configs/xtreme/targets.py:large,xtreme
    xtjax run --config configs/xtreme/targets.py:large,xtreme-r,xnli+udpos
    xtjax eval --checkpoint runs/xtreme/large_xtreme --tasks xnli,udpos --benchmark xtreme

The argument is ``SIZE[,BENCHMARK[,TASKS[,PRESET]]]``: the XLM-R size (base, large, xl, xxl), the
benchmark whose languages are evaluated, the target tasks joined by ``+`` (default: all of the
benchmark's tasks, retrieval included: BUCC and Tatoeba need ``data.bucc_dir``; Mewsli-X and
LAReQA ``data.mewslix_dir`` and ``data.lareqa_dir``) and a sharding preset. Every target model starts from the
pretrained encoder with fresh heads; the intermediate-task configs start them from there instead.

Hyperparameters are those of google-research/xtreme's ``scripts/train_*.sh`` (see
../shared/reference/xtreme_benchmark.md, section 1.3) unless noted.
"""

from ml_collections import ConfigDict

from xtjax.config import base_config, model_config
from xtjax.scoring import TASK_LANGUAGES

# task -> (the train phase's task, its settings). XQuAD and MLQA share one SQuAD v1.1 model.
_RECIPES = {
    # train_xnli.sh / train_pawsx.sh: lr 2e-5, 5 epochs, max length 128, batch 32.
    "xnli": ("xnli", dict(optim=dict(lr=2e-5), train=dict(epochs=5.0))),
    "pawsx": ("pawsx", dict(optim=dict(lr=2e-5), train=dict(epochs=5.0))),
    # train_udpos.sh / train_panx.sh: lr 2e-5, 10 epochs, max length 128.
    "udpos": ("udpos", dict(optim=dict(lr=2e-5), train=dict(epochs=10.0))),
    "panx": ("panx", dict(optim=dict(lr=2e-5), train=dict(epochs=10.0))),
    # train_qa.sh / run_squad.py: lr 3e-5, 2-3 epochs, 384 tokens, stride 128, weight decay 1e-4.
    "xquad": ("squad", dict(optim=dict(lr=3e-5, weight_decay=1e-4), train=dict(epochs=3.0),
                            data=dict(max_length=384))),
    "mlqa": ("squad", dict(optim=dict(lr=3e-5, weight_decay=1e-4), train=dict(epochs=3.0),
                           data=dict(max_length=384))),
    "tydiqa": ("tydiqa", dict(optim=dict(lr=3e-5, weight_decay=1e-4), train=dict(epochs=3.0),
                              data=dict(max_length=384))),
    # train_xcopa.sh: SocialIQA, then English COPA (its head carried over), then zero-shot XCOPA.
    "xcopa": ("copa", dict(optim=dict(lr=1e-5), train=dict(epochs=5.0))),
}
_SIQA = dict(optim=dict(lr=1e-5), train=dict(epochs=2.0))
# Retrieval: task -> the phase whose encoder it reads. XTREME reads BUCC and Tatoeba from the
# pretrained model; XTREME-R reads Tatoeba from the SQuAD v1.1 model, and Mewsli-X and LAReQA
# from dual encoders fine-tuned as train_mewslix.sh / train_lareqa.sh do.
_RETRIEVAL = {"xtreme": {"bucc2018": "pretrained", "tatoeba": "pretrained"},
              "xtreme-r": {"tatoeba": "squad", "mewslix": "dual_mewslix", "lareqa": "dual_lareqa"}}


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
  c.train.update(batch_size=32, eval_every=1000)
  c.phases.pretrained = dict(kind="pretrained")
  for task in [t for t in tasks if t in _RETRIEVAL[benchmark]]:
    source = _RETRIEVAL[benchmark][task]
    if source.startswith("dual_"):
      c.phases[source] = dict(kind="dual_encoder", task=task, init_from="pretrained")
    elif source == "squad" and "squad" not in tasks:
      tasks.append("xquad")  # trains the SQuAD model Tatoeba reads
    c.phases[f"eval_{task}"] = dict(kind="retrieval", task=task, from_phase=source,
                                    languages=tuple(TASK_LANGUAGES[benchmark][task]))
  for task in [t for t in tasks if t in _RECIPES]:
    trained, settings = _RECIPES[task]
    if trained not in c.phases:
      init, extra = "pretrained", {}
      if trained == "copa":
        c.phases.siqa = dict(kind="train", task="siqa", init_from="pretrained",
                             dont_load=["heads/.*"], **_SIQA)
        init, extra = "siqa", dict(head_map=dict(copa="siqa"))
      c.phases[trained] = dict(kind="train", task=trained, init_from=init,
                               **(extra or dict(dont_load=["heads/.*"])), **settings)
    c.phases[f"eval_{task}"] = ConfigDict(dict(
        kind="eval", task=task, from_phase=trained, split="test",
        languages=tuple(TASK_LANGUAGES[benchmark][task]), data=settings.get("data", {})))
  return c
