"""A run loaded back from its workdir: the experiment its ``config.json`` builds and
the state of one of its checkpoints, for evaluation or analysis after training.

  exp, state = runs.load_run("~/runs/quickstart")
  metrics = evaluate.evaluate_dataset(eval_fn, state.params, exp.eval_sets()["test"], ...)
"""

from __future__ import annotations

import pathlib

from vae_jax import build, checkpoint, train, writer
from vae_jax import data as data_lib


def load_run(
    workdir: str | pathlib.Path,
    step: int | None = None,
    *,
    dataset: data_lib.Dataset | None = None,
) -> tuple[build.Experiment, train.TrainState]:
    """(experiment, TrainState) of the run ``loop.train_and_evaluate`` wrote in ``workdir``.

    The experiment is ``build.build_experiment`` of ``<workdir>/config.json`` (same
    data, model, objective and PRNG keys as the run); the state is the checkpoint at
    ``step``, or the newest readable one (``checkpoint.restore_latest``).
    ``dataset``: an already loaded dataset to use instead of loading it again.

    Raises FileNotFoundError if ``workdir`` has no config.json, no checkpoint, or none
    at ``step``; ``checkpoint.CheckpointError`` if the checkpoint does not match the
    config.
    """
    workdir = pathlib.Path(workdir).expanduser()
    if not (workdir / "config.json").is_file():
        raise FileNotFoundError(
            f"{workdir} holds no run: no config.json (loop.train_and_evaluate writes it "
            "when a run starts)."
        )
    config = writer.read_config(workdir)
    checkpoints = workdir / "checkpoints"
    if not checkpoints.is_dir():  # checked first: make_manager would create it
        raise FileNotFoundError(f"The run in {workdir} has no checkpoints/ directory.")
    manager = checkpoint.make_manager(checkpoints, config.train.keep_checkpoints)
    if not manager.all_steps():
        raise FileNotFoundError(f"The run in {workdir} has no checkpoint yet.")
    exp = build.build_experiment(config, dataset)
    template = exp.init_state()
    if step is None:
        state = checkpoint.restore_latest(manager, template)
    else:
        state = checkpoint.restore_step(manager, template, step)
    return exp, state
