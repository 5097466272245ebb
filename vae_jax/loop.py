"""``train_and_evaluate``: the outer loop of a run, resumable from its workdir."""

from __future__ import annotations

import pathlib
import shutil
import time

import jax
import ml_collections
import numpy as np
from absl import logging

from vae_jax import (
    build,
    checkpoint,
    evaluate,
    figures,
    parallel,
    preemption,
    train,
    writer,
)


class NonFiniteLossError(FloatingPointError):
    """Training met a non-finite loss or gradient with ``on_nonfinite='stop'``."""


def _next_boundary(step: int, exp: build.Experiment, runner: train.ChunkRunner) -> int:
    """End of the next chunk: no chunk crosses an epoch, log/eval/checkpoint step or
    the end."""
    cfg = exp.config.train
    stops = [
        exp.total_steps,
        step + min(cfg.steps_per_dispatch, runner.max_steps(step)),
    ]
    for every in (cfg.log_every, cfg.checkpoint_every, cfg.eval_every):
        if every > 0:
            stops.append((step // every + 1) * every)
    return min(stops)


def _check_workdir(workdir: pathlib.Path, state) -> None:
    """Fails before training if ``workdir`` cannot be written or cannot hold checkpoints."""
    try:
        workdir.mkdir(parents=True, exist_ok=True)
        probe = workdir / f".write_probe{jax.process_index()}"  # one per host
        probe.write_text("ok")
        probe.unlink()
    except OSError as err:
        raise OSError(f"Workdir {workdir} is not writable: {err}") from err
    state_bytes = sum(x.nbytes for x in jax.tree.leaves(state))
    free = shutil.disk_usage(workdir).free
    if free < 2 * state_bytes + (16 << 20):
        raise OSError(
            f"Workdir {workdir} has {free / 2**20:.0f} MiB free; a checkpoint needs about "
            f"{state_bytes / 2**20:.1f} MiB. Free some space or choose another --workdir."
        )


def _evaluate(exp, eval_fn, params, eval_sets) -> dict[str, float]:
    metrics = {}
    for name, x in eval_sets.items():
        means = evaluate.evaluate_dataset(
            eval_fn, params, x, exp.config.train.eval_batch_size, exp.keys["eval"]
        )
        metrics.update({f"{name}/{k}": v for k, v in means.items()})
    return metrics


class ProgressLog:
    """Averages chunk metrics between log steps; prints progress and writes them."""

    def __init__(
        self, metric_writer, total_steps: int, batch_size: int, start_step: int
    ):
        self.writer, self.total, self.batch_size = (
            metric_writer,
            total_steps,
            batch_size,
        )
        self.start_step, self.start_time = start_step, time.time()
        self.window, self.window_time = [], time.time()

    def add(self, metrics: dict[str, np.ndarray]) -> None:
        self.window.append(metrics)

    def flush(self, step: int) -> None:
        """Logs ``step, means, examples/s, ETA`` and writes ``train/...`` scalars."""
        if not self.window:
            return
        means = {
            k: float(np.mean(np.concatenate([w[k] for w in self.window])))
            for k in self.window[0]
        }
        num_steps = sum(len(w["loss"]) for w in self.window)
        rate = num_steps * self.batch_size / max(time.time() - self.window_time, 1e-9)
        done = max(step - self.start_step, 1)
        eta = (time.time() - self.start_time) / done * (self.total - step)
        terms = " ".join(f"{k} {v:.4g}" for k, v in means.items() if k != "nonfinite")
        logging.info(
            "step %d/%d | %s | %s ex/s | ETA %s",
            step,
            self.total,
            terms,
            f"{rate:,.0f}",
            time.strftime("%H:%M:%S", time.gmtime(eta)),
        )
        self.writer.write_scalars(step, {f"train/{k}": v for k, v in means.items()})
        self.window, self.window_time = [], time.time()


def _raise_nonfinite(metrics, first_step, manager) -> None:
    bad = int(np.argmax(np.asarray(metrics["nonfinite"]) > 0)) + first_step
    raise NonFiniteLossError(
        f"Non-finite loss or gradient at step {bad}; the update was not applied. "
        f"Last good checkpoint: step {manager.latest_step()} in {manager.directory}. "
        "Lower optim.learning_rate, set optim.grad_clip_norm, or set "
        "train.on_nonfinite='skip' to skip such updates."
    )


def _train(exp, state, manager, metric_writer, evaluate_now):
    """The step loop: scan-fused chunks, logging, evaluation, checkpoints, signals."""
    cfg = exp.config.train
    step = int(state.step)
    runner = exp.chunk_runner()
    progress = ProgressLog(metric_writer, exp.total_steps, cfg.batch_size, step)
    with preemption.PreemptionGuard() as guard:
        while step < exp.total_steps:
            n = _next_boundary(step, exp, runner) - step
            state, metrics = runner(state, step, n)
            metrics = jax.device_get(metrics)  # the one host sync per chunk
            if np.any(metrics["nonfinite"]) and cfg.on_nonfinite == "stop":
                _raise_nonfinite(metrics, step, manager)
            step += n
            progress.add(metrics)
            stop = parallel.any_process(guard.requested)  # every host stops together
            if step % cfg.log_every == 0 or step == exp.total_steps or stop:
                progress.flush(step)
            if cfg.eval_every and step % cfg.eval_every == 0 and step < exp.total_steps:
                metric_writer.write_scalars(step, evaluate_now(state.params))
            if step % cfg.checkpoint_every == 0 or step == exp.total_steps or stop:
                checkpoint.save(manager, state, step)
            if stop and step < exp.total_steps:
                raise preemption.Preempted(
                    f"Stopped by {guard.signal_name or 'a signal to another process'} "
                    f"at step {step}; checkpoint saved in "
                    f"{manager.directory}. Rerun the same command to resume."
                )
    return state


def train_and_evaluate(
    config: ml_collections.ConfigDict, workdir: str
) -> dict[str, float]:
    """Trains per ``config``, resuming from ``workdir``'s latest checkpoint.

    Writes ``metrics.jsonl``, ``tensorboard/``, ``config.json``, checkpoints and
    figures into ``workdir``; returns the final evaluation metrics (``test/...``).
    """
    workdir = pathlib.Path(workdir)
    exp = build.build_experiment(config)
    fresh = exp.init_state()
    _check_workdir(workdir, fresh)
    manager = checkpoint.make_manager(
        workdir / "checkpoints", config.train.keep_checkpoints
    )
    state = checkpoint.restore_latest(manager, fresh) or fresh
    step = int(state.step)
    primary = parallel.is_primary()  # with several hosts, process 0 writes the files
    if primary:
        writer.write_config(workdir, config)
    logging.info(
        "JAX backend %s, devices %s%s",
        jax.default_backend(),
        jax.devices(),
        f", data-parallel over {exp.mesh.size}" if exp.mesh is not None else "",
    )
    logging.info(
        "%s from step %d of %d",
        "Resuming" if step else "Starting",
        step,
        exp.total_steps,
    )
    eval_fn = evaluate.make_eval_fn(exp.loss_one, {"beta": 1.0})
    eval_sets = exp.eval_sets()
    evaluate_now = lambda params: _evaluate(exp, eval_fn, params, eval_sets)
    metric_writer = (
        writer.MetricWriter(workdir, resume_step=step)
        if primary
        else writer.NullMetricWriter()
    )
    try:
        state = _train(exp, state, manager, metric_writer, evaluate_now)
        final = evaluate_now(state.params)
        metric_writer.write_scalars(exp.total_steps, final)
        logging.info("final: %s", " ".join(f"{k} {v:.4f}" for k, v in final.items()))
        if config.train.write_figures and primary:
            params = jax.device_get(state.params)  # host-local: this process alone
            images = figures.write_run_figures(exp, params, workdir)
            metric_writer.write_images(exp.total_steps, images)
    finally:
        metric_writer.close()
    return final
