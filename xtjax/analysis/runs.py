"""Checkpoints named on the command line (``RUN_DIR[:phase]``), and the run-side defaults the
analysis commands share; the one module of `xtjax.analysis` that imports `xtjax.run`.

A spec without a phase means, for ``align``, every finished phase with a model (pretrained
first, in the config's order) and, for ``bench`` and ``crosslingual``, the last finished train
phase (the pretrained one if nothing was trained). The phase after the last ``:`` counts only if
it has no ``/``, so ``gs://bucket/run`` is a run directory.
"""

from __future__ import annotations

import dataclasses
from pathlib import PurePosixPath

from xtjax.data import pipeline
from xtjax.data.tasks import RETRIEVAL_TASKS, Task, get_task, retrieval_languages
from xtjax.run import Run

MODEL_KINDS = ("pretrained", "train", "dual_encoder")


@dataclasses.dataclass(frozen=True)
class Checkpoint:
  run: Run
  phase: str

  @property
  def label(self) -> str:
    return f"{PurePosixPath(str(self.run.dir)).name}:{self.phase}"


def parse_spec(spec: str) -> tuple[str, str | None]:
  """(run directory, phase or None) of ``RUN_DIR[:phase]``."""
  head, sep, tail = spec.rpartition(":")
  if sep and head and tail and "/" not in tail:
    return head, tail
  return spec, None


def model_phases(run: Run) -> list[str]:
  """The finished phases of ``run`` that keep a model, in the config's order."""
  return [n for n, p in run.phases.items() if p.kind in MODEL_KINDS and _finished(run, n)]


def _finished(run: Run, phase: str) -> bool:
  done = run.result(phase)
  return done is not None and done.selected_step is not None


def resolve(specs: list[str], *, every: bool) -> list[Checkpoint]:
  """Checkpoints of ``specs`` (one `Run` per directory); a spec without a phase is every model
  phase (``every``) or the last trained one."""
  loaded, out = {}, []
  for spec in specs:
    directory, phase = parse_spec(spec)
    if directory not in loaded:
      loaded[directory] = Run.from_dir(directory)
    run = loaded[directory]
    finished = model_phases(run)
    if not finished:
      raise ValueError(f"{directory} has no finished phase with a model: run it first")
    if phase is None:
      trained = [n for n in finished if run.phases[n].kind != "pretrained"]
      out += [Checkpoint(run, n) for n in (finished if every else (trained or finished)[-1:])]
    elif phase not in finished:
      raise ValueError(f"phase {phase!r} of {directory} is not a finished phase with a model: "
                       f"use one of {', '.join(finished)}")
    else:
      out.append(Checkpoint(run, phase))
  return list(dict.fromkeys(out))


def pretrained(run: Run) -> str:
  """The run's pretrained phase: the baseline that retention divides by."""
  names = [n for n in model_phases(run) if run.phases[n].kind == "pretrained"]
  if not names:
    raise ValueError(f"{run.dir} has no finished pretrained phase to measure retention against")
  return names[0]


def languages(run: Run, task: str, given=None) -> list[str]:
  """``given`` (checked), else the languages the run evaluates ``task`` in, else all of the
  task's."""
  known = (retrieval_languages(task) if task in RETRIEVAL_TASKS
           else list(get_task(task).languages))
  if given:
    unknown = [l for l in given if l not in known]
    if unknown:
      raise ValueError(f"unknown language(s) {unknown} for {task}: it has {', '.join(known)}")
    return list(given)
  own = (run.config.get("retrieval_languages") or {}).get(task)
  if own:
    return list(own)
  evaluated = [l for p in run.phases.values()
               if p.kind in ("eval", "retrieval") and getattr(p, "task", None) == task
               for l in (getattr(p, "languages", None) or known)]
  return list(dict.fromkeys(evaluated)) or (retrieval_languages(task, "xtreme")
                                            if task in RETRIEVAL_TASKS else known)


def task_head(ckpt: Checkpoint, task: Task) -> str | None:
  """The head of ``ckpt``'s phase that predicts ``task``: its own, the one it shares (squad for
  xquad), or the phase's only head of the same kind; None if there is none."""
  heads = ckpt.run.result(ckpt.phase).tasks
  for head in (task.name, task.model_task):
    if head in heads:
      return head
  same = [h for h in heads if get_task(h).kind == task.kind]
  return same[0] if len(same) == 1 else None


def task_data(ckpt: Checkpoint, head: str | None):
  """The data settings ``head`` was trained with in ``ckpt``'s phase (the run's otherwise)."""
  phase = ckpt.run.phases[ckpt.phase]
  return phase.data_for(head) if head and hasattr(phase, "data_for") else ckpt.run.data


def load_model(ckpt: Checkpoint, head: str | None):
  """(model, parameter shardings, parameters) of ``ckpt``: the encoder with ``head`` (or none),
  exactly as the phase trained them (whatever parameters its model has)."""
  run = ckpt.run
  tasks = [pipeline.resolve(get_task(head), run.data)] if head else []
  model, shardings = run.model(tasks, phase=ckpt.phase)
  params, _ = run.trained_params(ckpt.phase, model, shardings)
  return model, shardings, params


def one_line(error: BaseException) -> str:
  """An error's message on one line (for the commands' stderr)."""
  return " ".join(str(error).split())
