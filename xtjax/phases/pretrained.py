"""A ``pretrained`` phase: the Hugging Face checkpoint (``model.checkpoint``) as the phase's orbax
checkpoint (encoder only), the starting point of every phase after it."""

from __future__ import annotations

import jax

from xtjax.models.loading import read_hf_params
from xtjax.phase_config import PretrainedPhase
from xtjax.run import PhaseResult, Run


def run_phase(run: Run, phase: PretrainedPhase) -> PhaseResult:
  model, shardings = run.model()
  with jax.set_mesh(run.mesh):
    params = read_hf_params(run.hf_path, model.shapes(), run.model_cfg, shardings=shardings)
  ckpt = run.checkpoints(phase.name)
  ckpt.save(0, params, meta={"phase": phase.name, "source": str(run.hf_path)}, force=True)
  ckpt.wait()
  ckpt.close()
  return PhaseResult(phase.name, phase.kind, selected_step=0,
                     details={"source": str(run.hf_path)})
