"""The run: phases in dependency order (pretrained -> intermediate -> target -> zero-shot eval),
each bridged by an orbax checkpoint under ``run_dir/<phase>``.

Every phase is checked (kinds, keys, tasks, languages, dependencies, local data) before the first
one runs. One writer holds the run directory (`xtjax.rundir.RunLock`), which records the config it
was trained with: a resume with different training settings is an error unless ``allow_change``
(recorded). A finished phase (``result.json`` present) is skipped; an interrupted one resumes from
its latest intact checkpoint, including the data iterator position.
"""

from __future__ import annotations

import logging

import ml_collections

from xtjax import rundir
from xtjax.phases import demo_assets, dual_encoder, evaluate, pretrained, retrieval, train
from xtjax.run import PhaseResult, Run

log = logging.getLogger(__name__)
# phase kind -> the function that runs a phase of that kind: (run, phase) -> PhaseResult
PHASES = {"demo_assets": demo_assets.run_phase, "pretrained": pretrained.run_phase,
          "train": train.run_phase, "dual_encoder": dual_encoder.run_phase,
          "eval": evaluate.run_phase, "retrieval": retrieval.run_phase}


def run_all(config: ml_collections.ConfigDict, only=None, *,
            allow_change: bool = False) -> dict[str, PhaseResult]:
  """Runs the config's phases in order (or only the named ones), skipping finished ones."""
  run = Run(config)
  results = {}
  with rundir.RunLock(run.dir) as lock:
    rundir.record_config(run.dir, config, allow_change=allow_change)
    for name, phase in run.phases.items():
      if only and name not in only:
        continue
      done = run.result(name)
      if done is not None:
        log.info("phase %s already finished; skipping", name)
        results[name] = done
        continue
      if lock.lost:
        raise rundir.RunLockedError(f"run_dir {run.dir}: another process took over the run "
                                    f"lock; stopping before phase {name}")
      log.info("phase %s (%s) starting", name, phase.kind)
      result = PHASES[phase.kind](run, phase)
      run.write_result(result)
      results[name] = result
  return results
