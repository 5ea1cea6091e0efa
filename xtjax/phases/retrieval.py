"""A ``retrieval`` phase: Tatoeba, BUCC, Mewsli-X or LAReQA from another phase's encoder."""

from __future__ import annotations

import jax

from xtjax.phase_config import RetrievalPhase
from xtjax.retrieval.evaluate import evaluate_retrieval, layer_table
from xtjax.run import PhaseResult, Run
from xtjax.tables import write_results


def run_phase(run: Run, phase: RetrievalPhase) -> PhaseResult:
  """``phase.task`` from ``phase.from_phase`` (languages, layer, layers, pooling, include_special
  as in `xtjax.retrieval.evaluate.evaluate_retrieval`)."""
  result = evaluate_retrieval(
      run, phase.task, phase.from_phase, languages=phase.languages or None, layer=phase.layer,
      layers=phase.layers, pooling=phase.pooling, include_special=phase.include_special,
      max_length=phase.max_length, split=phase.split, out_dir=run.dir / phase.name,
      data=phase.data, batch_size=phase.train.eval_batch_size)
  write_results(run.dir / phase.name, [result], f"{phase.task} from phase {phase.from_phase}, "
                f"layer {result['layer']} ({result['pooling']} pooling)")
  if jax.process_index() == 0:
    print(layer_table(result) + "\n")
  return PhaseResult(phase.name, phase.kind, details={**result, "setting": phase.setting})
