"""``train_and_evaluate``: the outer loop of a run, resumable from its workdir.

``run_loop`` is the one step loop: a single run drives it with its ``ChunkRunner``
and the vmapped sweep (``sweep/vmapped.py``) with C configs' stacked state.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import pathlib
import shutil
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import jax
import ml_collections
import numpy as np
from absl import logging

from vae_jax import (
    build,
    checkpoint,
    early_stopping,
    evaluate,
    figures,
    parallel,
    preemption,
    provenance,
    runtime,
    train_clock,
    workdir_lock,
    writer,
)

Metrics = dict[str, np.ndarray]  # a chunk's host metrics: [n] each ([C, n] stacked)


class NonFiniteLossError(FloatingPointError):
    """Training met a non-finite loss or gradient with ``on_nonfinite='stop'``."""


class Runner(Protocol):
    """``train.ChunkRunner``'s interface: ``runner(state, step, n) -> (state,
    metrics)`` runs n steps from ``step`` in one call, n <= ``max_steps(step)``."""

    def __call__(self, state, step: int, num_steps: int) -> tuple[Any, Metrics]: ...

    def max_steps(self, step: int) -> int: ...


@dataclasses.dataclass(frozen=True)
class Cadence:
    """``run_loop``'s schedule, fields as in ``config.train``: chunks of at most
    ``steps_per_dispatch`` steps; log and checkpoint every ``log_every`` and
    ``checkpoint_every`` steps (> 0), evaluate every ``eval_every`` (0: never)."""

    steps_per_dispatch: int
    log_every: int
    checkpoint_every: int
    eval_every: int = 0

    @classmethod
    def epochs(cls, steps_per_epoch: int) -> Cadence:
        """One chunk per epoch, logged and checkpointed at its end."""
        return cls(steps_per_epoch, steps_per_epoch, steps_per_epoch)


@dataclasses.dataclass
class LoopHooks:
    """What ``run_loop`` does with its state at each event.

    check(metrics, first_step): after each chunk; raises (or marks configs failed) on
      non-finite steps. log(chunks, step): the chunks' metrics since the last log.
    save(state, step): every ``checkpoint_every`` steps, at the end and on a stop.
    saved_in: where ``save`` writes (for the preemption message).
    evaluate(state, step): every ``eval_every`` steps before the end. running(): False
      ends the loop early (a sweep whose configs all failed).
    """

    check: Callable[[Metrics, int], None]
    log: Callable[[Sequence[Metrics], int], None]
    save: Callable[[Any, int], None]
    saved_in: str
    evaluate: Callable[[Any, int], None] = lambda state, step: None
    running: Callable[[], bool] = lambda: True


def _next_boundary(step: int, total_steps: int, cfg: Cadence, runner: Runner) -> int:
    """End of the next chunk: no chunk crosses a log/eval/checkpoint step or the end,
    nor runs more than ``runner.max_steps``."""
    stops = [total_steps, step + min(cfg.steps_per_dispatch, runner.max_steps(step))]
    for every in (cfg.log_every, cfg.checkpoint_every, cfg.eval_every):
        if every > 0:
            stops.append((step // every + 1) * every)
    return min(stops)


class Timer(collections.defaultdict):
    """Seconds spent per activity ("compile", "train", "evaluate", "checkpoint", ...);
    ``with timer("evaluate"): ...`` adds to one."""

    def __init__(self):
        super().__init__(float)

    @contextlib.contextmanager
    def __call__(self, name: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self[name] += time.perf_counter() - start

    def summary(self) -> str:
        return ", ".join(f"{k} {v:.1f}" for k, v in self.items())


def _train_chunk(runner: Runner, state, step: int, n: int, timer: Timer):
    """One chunk; its time goes to "train", the runner's first compile to "compile"."""
    compiled_before = getattr(runner, "compile_seconds", 0.0)
    start = time.perf_counter()
    state, metrics = runner(state, step, n)
    metrics = jax.device_get(metrics)  # the one host sync per chunk
    compiled = getattr(runner, "compile_seconds", 0.0) - compiled_before
    timer["compile"] += compiled
    timer["train"] += time.perf_counter() - start - compiled
    return state, metrics


def run_loop(
    state,
    step: int,
    total_steps: int,
    cfg: Cadence,
    runner: Runner,
    hooks: LoopHooks,
    timer: Timer | None = None,
):
    """Trains ``state`` (at global ``step``) to ``total_steps`` in ``runner``'s chunks,
    calling ``hooks`` at ``cfg``'s log/eval/checkpoint steps (``cfg``: a ``Cadence``
    or ``config.train``, which has its fields). ``timer`` collects the seconds spent
    compiling, training, logging, evaluating and checkpointing.

    One host sync per chunk. On SIGTERM/SIGINT to any process every host finishes its
    chunk, logs, saves and raises ``preemption.Preempted``. Returns the final state.
    """
    window, timer = [], timer if timer is not None else Timer()
    with preemption.PreemptionGuard() as guard:
        while step < total_steps and hooks.running():
            n = _next_boundary(step, total_steps, cfg, runner) - step
            state, metrics = _train_chunk(runner, state, step, n, timer)
            hooks.check(metrics, step)
            step += n
            window.append(metrics)
            stop = parallel.any_process(guard.requested)  # every host stops together
            if step % cfg.log_every == 0 or step == total_steps or stop:
                with timer("log"):
                    hooks.log(window, step)
                window = []
            if cfg.eval_every and step % cfg.eval_every == 0 and step < total_steps:
                with timer("evaluate"):
                    hooks.evaluate(state, step)
            if step % cfg.checkpoint_every == 0 or step == total_steps or stop:
                with timer("checkpoint"):
                    hooks.save(state, step)
            if stop and step < total_steps:
                raise preemption.Preempted(
                    f"Stopped by {guard.signal_name or 'a signal to another process'} "
                    f"at step {step}; checkpoint saved in {hooks.saved_in}. "
                    "Rerun the same command to resume."
                )
    return state


def window_means(window: Sequence[Metrics], index=()) -> dict[str, float]:
    """Mean of each metric over the chunks in ``window``; ``index`` picks one config's
    row [n] of stacked [C, n] metrics."""
    return {
        k: float(np.mean(np.concatenate([w[k][index] for w in window])))
        for k in window[0]
    }


def nonfinite_step(nonfinite: np.ndarray, first_step: int) -> int | None:
    """The first step of a chunk whose ``nonfinite`` [n] flag is set, or None."""
    flags = np.asarray(nonfinite) > 0
    return int(np.argmax(flags)) + first_step if flags.any() else None


class SkipBudget:
    """Counts the steps ``on_nonfinite='skip'`` skipped; ``add(nonfinite [n])`` returns
    a message once more than ``fraction`` of the steps run so far (at least 100
    counted) were skipped, else None."""

    def __init__(self, fraction: float):
        self.fraction, self.skipped, self.steps = fraction, 0, 0

    def add(self, nonfinite: np.ndarray) -> str | None:
        flags = np.asarray(nonfinite) > 0
        self.skipped += int(flags.sum())
        self.steps += flags.size
        if self.skipped > self.fraction * max(self.steps, 100):
            return (
                f"{self.skipped} of the {self.steps} steps run had a non-finite loss "
                f"or gradient and were skipped: more than "
                f"train.max_skipped_fraction = {self.fraction}"
            )
        return None


def check_workdir(workdir: pathlib.Path, state) -> None:
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


def make_evaluator(exp: build.Experiment, eval_fn=None) -> Callable:
    """evaluate_now(params, splits=None, keep_loss=False) -> {"valid/elbo",
    "test/elbo", ...}: the means of ``eval_fn`` (default: ``exp.loss_one`` at beta =
    1) over the named splits of ``exp.eval_sets()`` ("valid", "test"; None: all).

    Each metric is named for what it is: ``elbo``, ``recon``, ``kl`` (nats per image;
    ``iwae_bound`` for L_k) or ``mse`` (squared error per pixel). ``eval_fn``'s
    ``loss``, the objective at beta = 1, is left out unless ``keep_loss`` (early
    stopping monitors it): it is -``elbo``, ``mse`` or -``iwae_bound`` again, and not
    the beta-weighted training ``objective``.
    """
    if eval_fn is None:
        eval_fn = evaluate.make_eval_fn(exp.loss_one, {"beta": 1.0})
    sets, batch_size = exp.eval_sets(), exp.config.train.eval_batch_size

    def evaluate_now(
        params, splits: Sequence[str] | None = None, keep_loss: bool = False
    ) -> dict[str, float]:
        metrics = {}
        for name, x in sets.items():
            if splits is not None and name not in splits:
                continue
            means = evaluate.evaluate_dataset(
                eval_fn, params, x, batch_size, exp.keys["eval"]
            )
            if not keep_loss:
                means.pop("loss", None)
            metrics.update({f"{name}/{k}": v for k, v in means.items()})
        return metrics

    return evaluate_now


def splits_during_training(config: ml_collections.ConfigDict) -> tuple[str, ...]:
    """The splits evaluated every ``train.eval_every`` steps: "valid" (model selection
    on the validation split; the test split once, at the end), or both with
    ``train.eval_test_during_training``."""
    if config.train.eval_test_during_training:
        return ("valid", "test")
    return ("valid",)


def evaluation_warnings(exp: build.Experiment) -> list[str]:
    """Lines for a run whose ``eval_every`` would evaluate nothing (no validation split
    and the test split kept for the end)."""
    cfg = exp.config.train
    splits = splits_during_training(exp.config)
    if cfg.eval_every and not any(len(getattr(exp.dataset, s)) for s in splits):
        line = (
            f"train.eval_every = {cfg.eval_every} evaluates the validation split only, "
            "and this run has none (data.valid_size = 0): nothing is evaluated before "
            "the end. Set data.valid_size > 0, or train.eval_test_during_training=True "
            "to evaluate the test split during training."
        )
        return [line]
    return []


def format_duration(seconds: float) -> str:
    """h:mm:ss, with days when longer (no wrap at 24 h)."""
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    return (f"{days}d " if days else "") + f"{hours}:{minutes:02d}:{secs:02d}"


class ProgressLog:
    """``LoopHooks.log`` of a single run: logs ``step, means, examples/s, ETA`` and
    writes ``train/...`` scalars. examples/s counts the training chunks' time alone
    (``timer["train"]``: no compiles, evaluations or checkpoints); the ETA is the
    steps left at that rate."""

    def __init__(
        self,
        metric_writer,
        total_steps: int,
        batch_size: int,
        start_step: int,
        timer: Timer,
        clock: train_clock.TrainClock | None = None,
    ):
        self.writer, self.total, self.batch_size = (
            metric_writer,
            total_steps,
            batch_size,
        )
        self.start_step, self.timer, self.clock = start_step, timer, clock
        self.train_at_last_log = timer["train"]

    def __call__(self, window: Sequence[Metrics], step: int) -> None:
        means = window_means(window)
        num_steps = sum(len(w["nonfinite"]) for w in window)
        seconds = max(self.timer["train"] - self.train_at_last_log, 1e-9)
        rate = num_steps * self.batch_size / seconds
        per_step = self.timer["train"] / max(step - self.start_step, 1)
        terms = " ".join(
            f"{k} {v:.4g}" for k, v in means.items() if not k.startswith("nonfinite")
        )
        logging.info(
            "step %d/%d | %s | %s ex/s | ETA %s",
            step,
            self.total,
            terms,
            f"{rate:,.0f}",
            format_duration(per_step * (self.total - step)),
        )
        self.writer.write_scalars(step, {f"train/{k}": v for k, v in means.items()})
        self.train_at_last_log = self.timer["train"]
        if self.clock is not None:
            self.clock.write()


def last_good(manager) -> str:
    """Where the newest checkpoint is (every checkpoint holds a finite state)."""
    step = manager.latest_step()
    if step is None:
        return "No checkpoint was written yet."
    return f"Last good checkpoint: step {step} in {manager.directory}."


_ADVICE = (
    "Lower optim.learning_rate or set optim.grad_clip_norm; with "
    "train.on_nonfinite='skip' such updates are skipped."
)


def _train(exp, state, manager, metric_writer, evaluate_now, timer, workdir, clock):
    """``run_loop`` of one run: raises ``NonFiniteLossError``, writes metrics and
    checkpoints; with early stopping keeps the best state in ``checkpoints_best/``
    and stops once patience runs out. Returns (state, the parameters to evaluate
    finally, the step of that record): the best state's after an early stop."""
    cfg = exp.config.train
    step = int(state.step)
    budget = SkipBudget(cfg.max_skipped_fraction)
    stopper = early_stopping.tracker_for_run(exp.config, workdir, step)
    if stopper is not None:
        best_manager = checkpoint.make_manager(workdir / early_stopping.BEST_DIR, 1)

    def check(metrics, first_step):
        overflow = nonfinite_step(metrics["nonfinite_state"], first_step)
        if overflow is not None:  # in both modes: the state itself is lost
            raise NonFiniteLossError(
                f"The parameters or optimizer state hold NaN or inf after step "
                f"{overflow} (an update overflowed); they were not checkpointed. "
                f"{last_good(manager)} {_ADVICE}"
            )
        bad = nonfinite_step(metrics["nonfinite"], first_step)
        if bad is not None and cfg.on_nonfinite == "stop":
            raise NonFiniteLossError(
                f"Non-finite loss or gradient at step {bad}; the update was not "
                f"applied. {last_good(manager)} {_ADVICE}"
            )
        too_many = budget.add(metrics["nonfinite"])
        if too_many:
            raise NonFiniteLossError(
                f"{too_many}. {last_good(manager)} Lower optim.learning_rate, set "
                "optim.grad_clip_norm, or raise train.max_skipped_fraction."
            )

    def save(s, at):
        try:
            checkpoint.save(manager, s, at)
        except checkpoint.NonFiniteStateError as err:
            raise NonFiniteLossError(f"{err} {last_good(manager)} {_ADVICE}") from err

    splits = splits_during_training(exp.config)

    def evaluate_during(s, at):
        metrics = evaluate_now(s.params, splits, keep_loss=stopper is not None)
        if metrics:
            metric_writer.write_scalars(at, metrics)
        if stopper is not None:
            value = metrics.get(early_stopping.METRIC, float("nan"))
            if stopper.update(at, value):
                checkpoint.save(best_manager, s, at)

    hooks = LoopHooks(
        check=check,
        log=ProgressLog(
            metric_writer, exp.total_steps, cfg.batch_size, step, timer, clock
        ),
        evaluate=evaluate_during,
        save=save,
        saved_in=str(manager.directory),
        running=lambda: stopper is None or not stopper.stopped,
    )
    runner = exp.chunk_runner()
    state = run_loop(state, step, exp.total_steps, cfg, runner, hooks, timer)
    if stopper is None or not stopper.stopped:
        return state, state.params, exp.total_steps
    at = int(state.step)
    if manager.latest_step() != at:
        save(state, at)
    if parallel.is_primary():
        early_stopping.write_marker(workdir, at, stopper)
    logging.info("Early stopping at step %d: %s.", at, stopper.summary())
    best = checkpoint.restore_latest(best_manager, state, move_aside=False)
    return state, best.params, at


def finished_metrics(workdir: pathlib.Path, total_steps: int) -> dict | None:
    """The final evaluation record of a finished run in ``workdir`` (the record at
    ``total_steps`` with ``test/`` metrics), or None."""
    for record in writer.read_metrics(workdir / "metrics.jsonl"):
        if record["step"] == total_steps and any(k.startswith("test/") for k in record):
            return {k: v for k, v in record.items() if k != "step"}
    return None


def train_and_evaluate(
    config: ml_collections.ConfigDict,
    workdir: str,
    *,
    allow_config_change: bool = False,
) -> dict[str, float]:
    """Trains per ``config``, resuming from ``workdir``'s latest checkpoint.

    Writes ``metrics.jsonl``, ``tensorboard/``, ``config.json``, checkpoints and
    figures into ``workdir``, holding its lock (``workdir_lock``); returns the final
    evaluation metrics (``test/...``). A finished run is not evaluated again: its
    recorded final metrics are returned. A resumed run's config must match the stored
    one (``provenance.check_resume``; ``allow_config_change`` for the fields that may
    change, recorded in ``config_history.jsonl``).
    """
    workdir, start = pathlib.Path(workdir), time.perf_counter()
    exp = build.build_experiment(config)
    fresh = exp.init_state()
    check_workdir(workdir, fresh)
    primary = parallel.is_primary()  # with several hosts, process 0 writes the files
    lock = workdir_lock.locked(workdir) if primary else contextlib.nullcontext()
    with lock:
        manager = checkpoint.make_manager(
            workdir / "checkpoints", config.train.keep_checkpoints
        )
        changes = {}
        if primary and manager.all_steps():  # before any checkpoint is read
            changes = provenance.check_resume(workdir, config, allow_config_change)
        state = checkpoint.restore_latest(manager, fresh) or fresh
        if primary:
            provenance.record(workdir, config, int(state.step), changes)
        last = exp.total_steps
        if config.train.early_stopping_patience > 0:
            last = early_stopping.stopped_at(workdir) or last
        done = finished_metrics(workdir, last)
        if int(state.step) == last and done is not None:
            logging.info(
                "The run in %s finished at step %d; final: %s",
                workdir,
                last,
                " ".join(f"{k} {v:.4f}" for k, v in done.items() if v is not None),
            )
            return done
        return _train_and_evaluate(exp, state, manager, workdir, start)


def _train_and_evaluate(exp, state, manager, workdir, start: float) -> dict:
    """Trains ``state`` to the end or an early stop (evaluating
    ``splits_during_training`` every ``eval_every`` steps), evaluates every split
    once (after an early stop: the best parameters) and writes the figures."""
    config, timer, step = exp.config, Timer(), int(state.step)
    primary = parallel.is_primary()
    logging.info(
        "JAX backend %s, devices %s%s",
        jax.default_backend(),
        jax.devices(),
        f", data-parallel over {exp.mesh.size}" if exp.mesh is not None else "",
    )
    for line in runtime.backend_warnings(jax.default_backend()):
        logging.warning("%s", line)
    for line in evaluation_warnings(exp):
        logging.warning("%s", line)
    logging.info(
        "%s from step %d of %d",
        "Resuming" if step else "Starting",
        step,
        exp.total_steps,
    )
    evaluate_now = make_evaluator(exp)
    metric_writer = (
        writer.MetricWriter(workdir, resume_step=step)
        if primary
        else writer.NullMetricWriter()
    )
    timer["start-up"] = time.perf_counter() - start  # data, init, restore
    clock = train_clock.TrainClock(workdir, start) if primary else None
    try:
        state, params, last = _train(
            exp, state, manager, metric_writer, evaluate_now, timer, workdir, clock
        )
        with timer("evaluate"):
            final = evaluate_now(params)
        metric_writer.write_scalars(last, final)
        logging.info("final: %s", " ".join(f"{k} {v:.4f}" for k, v in final.items()))
        if config.train.write_figures and primary:
            with timer("figures"):
                params = jax.device_get(params)  # host-local: this process alone
                images = figures.write_run_figures(exp, params, workdir)
                metric_writer.write_images(last, images)
    finally:
        metric_writer.close()
        if clock is not None:
            clock.write()
    logging.info(
        "time (s): %s; wall %.1f", timer.summary(), time.perf_counter() - start
    )
    return final
