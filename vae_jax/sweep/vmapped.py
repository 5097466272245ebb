"""Training C configs of a sweep as one vmapped XLA program.

C configs differing only in ``sweep_spec.VMAPPABLE`` fields: ``jax.vmap`` of
``train.make_train_chunk`` over C stacked ``SweepState``s, each with its own keys
(init, train, data: its own batch order), data split and ``hyper`` values. The
optimizer runs at rate 1 and ``SweepState`` scales its update by the state's rate:
lr * (-f(t) u_t) = optax's -(lr f(t)) u_t for adam/adamw/sgd (f the unit schedule),
bitwise for a constant schedule, so checkpoints keep a single run's layout. The step
loop is ``loop.run_loop`` over the stacked state, with per-config hooks.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import pathlib
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging

from vae_jax import (
    batching,
    build,
    checkpoint,
    evaluate,
    figures,
    loop,
    objectives,
    optim,
    parallel,
    provenance,
    runtime,
    train,
    workdir_lock,
    writer,
)
from vae_jax.sweep.results import write_done
from vae_jax.sweep.spec import VMAPPABLE, Run, check_vmappable, flatten

HYPER = {field.split(".")[-1]: field for field in VMAPPABLE[1:]}  # state.hyper keys


class SweepState(train.TrainState):
    """TrainState of one config of a vmapped sweep: ``tx`` runs at learning rate 1 and
    the update is scaled by ``hyper["learning_rate"]``; ``hyper`` holds the config's
    ``HYPER`` values (scalars [] per config, [C] when stacked)."""

    hyper: dict[str, jax.Array]

    def param_updates(self, grads):
        updates, opt_state = self.tx.update(grads, self.opt_state, self.params)
        rate = self.hyper["learning_rate"]
        return jax.tree.map(lambda u: rate * u, updates), opt_state


def hyper_values(config: ml_collections.ConfigDict) -> dict[str, jax.Array]:
    """{"learning_rate", "beta", "kl_warmup_steps", ...}: the config's ``HYPER`` values."""
    fields = flatten(config)
    return {name: jnp.asarray(fields[f], jnp.float32) for name, f in HYPER.items()}


def unit_rate_optimizer(exp: build.Experiment):
    """``optim.make_optimizer`` of the experiment at learning rate 1 (schedule shape f)."""
    optim_config = copy.deepcopy(exp.config.optim)
    optim_config.learning_rate = 1.0
    return optim.make_optimizer(optim_config, exp.total_steps, exp.steps_per_epoch)


def stack_states(
    exp: build.Experiment,
    states: Sequence[train.TrainState],
    configs: Sequence[ml_collections.ConfigDict],
) -> SweepState:
    """C configs' train states as one ``SweepState`` [C]: ``exp``'s unit-rate optimizer
    and apply_fn, each config's ``hyper_values``."""
    tx, apply_fn = unit_rate_optimizer(exp), exp.model.apply
    members = [
        SweepState(
            step=st.step,
            apply_fn=apply_fn,
            params=st.params,
            tx=tx,
            opt_state=st.opt_state,
            key=st.key,
            hyper=hyper_values(config),
        )
        for st, config in zip(states, configs)
    ]
    return jax.tree.map(lambda *x: jnp.stack(x), *members)


def hyper_loss_one(exp: build.Experiment, hyper) -> objectives.LossOne:
    """``objectives.make_objective`` with the objective's levels (noise, sparsity, ...)
    from ``hyper`` (traced); beta comes through hparams."""
    return objectives.make_objective(exp.config, exp.model, levels=hyper)


def make_sweep_step(exp: build.Experiment) -> Callable:
    """step(state: SweepState, batch [B, D]) -> (state, metrics), hparams from state."""

    def step(state, batch):
        loss_one = hyper_loss_one(exp, state.hyper)
        hparams_fn = objectives.make_hparams(exp.config, levels=state.hyper)
        return train.make_step_fn(loss_one, hparams_fn, exp.binarize)(state, batch)

    return step


def make_sweep_chunk(step_fn: Callable, max_steps: int, shared_x: bool) -> Callable:
    """Jitted chunk(state [C], train_x [N, D] (or [C, N, D]), orders [C, E, N // B, B],
    first_epoch, num_steps) -> (state, metrics [C, max_steps]):
    ``train.make_train_chunk`` vmapped over C configs (one program for every n)."""
    chunk = train.make_train_chunk(step_fn, max_steps=max_steps)
    in_axes = (0, None if shared_x else 0, 0, None, None)
    return jax.jit(jax.vmap(chunk, in_axes=in_axes), donate_argnums=0)


def _experiments(runs: Sequence[Run]) -> list[build.Experiment]:
    """One-device experiments; configs with equal data share one Dataset and train_x."""
    loaded, exps = {}, []
    for run in runs:
        config = copy.deepcopy(run.config)
        config.train.data_parallel = "off"  # configs, not batches, split over devices
        key = (config.data.to_json_best_effort(), config.seed)
        if key not in loaded:
            data = build.load_data(config)
            same = [d for d in loaded.values() if _same_data(d, data)]
            loaded[key] = same[0] if same else data
        exp = build.build_experiment(config, loaded[key])
        twin = next((e for e in exps if e.dataset is exp.dataset), None)
        exps.append(
            exp if twin is None else dataclasses.replace(exp, train_x=twin.train_x)
        )
    return exps


def _same_data(a, b) -> bool:
    return all(
        x.shape == y.shape and np.array_equal(x, y)
        for x, y in ((a.train, b.train), (a.valid, b.valid), (a.test, b.test))
    )


def _evaluator(exp: build.Experiment, eval_fns: dict) -> Callable:
    """``loop.make_evaluator`` with one compiled ``eval_fn`` per distinct loss in
    ``eval_fns`` (eval fixes beta = 1)."""
    obj = exp.config.objective
    level = obj.noise_level if obj.name == "denoising_mse" else None
    if level not in eval_fns:
        eval_fns[level] = evaluate.make_eval_fn(exp.loss_one, {"beta": 1.0})
    return loop.make_evaluator(exp, eval_fns[level])


def stacked_orders(
    data_keys: jax.Array, num_examples: int, batch_size: int, max_steps: int
) -> train.EpochOrders:
    """``train.EpochOrders`` of C configs: step -> orders [C, E, N // B, B],
    ``batching.epoch_batches`` vmapped over the data keys [C], once per epoch."""
    order = functools.partial(
        batching.epoch_batches, num_examples=num_examples, batch_size=batch_size
    )
    order_fn = jax.jit(jax.vmap(order, in_axes=(0, None)))
    return train.EpochOrders(
        data_keys, num_examples, batch_size, max_steps, order_fn=order_fn
    )


def _take(tree, i: int):
    """Config i's slice of a stacked pytree: [C, ...] -> [...]."""
    return jax.tree.map(lambda x: x[i], tree)


@dataclasses.dataclass
class _Member:
    """One config of a vmapped group and its run directory's writers."""

    run: Run
    exp: build.Experiment
    dir: pathlib.Path  # <workdir>/<name>
    manager: Any  # orbax CheckpointManager of <name>/checkpoints
    state: train.TrainState  # restored or fresh, single-run layout
    evaluate: Callable = None  # (params, splits) -> {"valid/elbo", "test/elbo", ...}
    writer: writer.MetricWriter | None = None
    failed: str = ""

    def save(self, stacked: SweepState, i: int, step: int) -> None:
        s = _take(stacked, i)
        single = self.state.replace(
            params=s.params, opt_state=s.opt_state, step=s.step, key=s.key
        )
        try:
            checkpoint.save(self.manager, single, step)
        except checkpoint.NonFiniteStateError as err:
            self.fail(f"{err} {loop.last_good(self.manager)}")

    def fail(self, message: str) -> None:
        self.failed = f"failed: {message}"
        logging.error("%s %s", self.run.name, self.failed)


class _StackedRunner(train.ChunkRunner):
    """``train.ChunkRunner`` over a stacked state [C]: ``runner(state, step, n)`` runs
    ``make_sweep_chunk`` (one compiled program) on ``train_x`` with the configs'
    epoch orders [C, E, N // B, B] (``place``d on the mesh); host metrics [C, n]."""

    def __init__(
        self,
        step_fn,
        train_x,
        shared: bool,
        orders,
        place: Callable,
        steps_per_dispatch: int,
    ):
        chunk = make_sweep_chunk(step_fn, steps_per_dispatch, shared)
        self._use(chunk, train_x, orders, steps_per_dispatch, place)


def _hooks(members: Sequence[_Member]) -> loop.LoopHooks:
    """``loop.run_loop``'s hooks for a stacked state [C]: per-config logs, evaluations,
    checkpoints; a config with a non-finite step (``on_nonfinite='stop'``) is marked
    failed and no longer logged or saved."""
    live = lambda: [(i, m) for i, m in enumerate(members) if not m.failed]
    budgets = [
        loop.SkipBudget(m.exp.config.train.max_skipped_fraction) for m in members
    ]

    def check(metrics, first_step):
        for i, m in live():
            bad = loop.nonfinite_step(metrics["nonfinite"][i], first_step)
            overflow = loop.nonfinite_step(metrics["nonfinite_state"][i], first_step)
            if overflow is not None:
                m.fail(f"non-finite parameters after step {overflow} (an overflow)")
            elif bad is not None and m.exp.config.train.on_nonfinite == "stop":
                m.fail(f"non-finite loss or gradient at step {bad}")
            elif too_many := budgets[i].add(metrics["nonfinite"][i]):
                m.fail(too_many)

    def log(window, step):
        terms = []
        for i, m in live():
            means = loop.window_means(window, i)
            m.writer.write_scalars(step, {f"train/{k}": v for k, v in means.items()})
            shown = [k for k in ("objective", "elbo", "mse") if k in means]
            terms.append(
                " ".join([m.run.name, *(f"{k} {means[k]:.4g}" for k in shown)])
            )
        total = members[0].exp.total_steps
        logging.info("step %d/%d | %s", step, total, " | ".join(terms))

    def evaluate_now(state, step):  # valid only, unless eval_test_during_training
        for i, m in live():
            splits = loop.splits_during_training(m.exp.config)
            metrics = m.evaluate(_take(state.params, i), splits)
            if metrics:
                m.writer.write_scalars(step, metrics)

    def save(state, step):
        for i, m in live():
            m.save(state, i, step)

    return loop.LoopHooks(
        check=check,
        log=log,
        evaluate=evaluate_now,
        save=save,
        saved_in=str(members[0].dir.parent / "*" / "checkpoints"),
        running=lambda: bool(live()),
    )


def _train_group(members: Sequence[_Member], state: SweepState) -> SweepState:
    """``loop.run_loop`` over the stacked ``state`` [C]: each chunk one vmapped call."""
    exp = members[0].exp
    cfg = exp.config.train
    data_keys = jnp.stack([m.exp.keys["data"] for m in members])
    orders = stacked_orders(
        data_keys, exp.train_x.shape[0], cfg.batch_size, cfg.steps_per_dispatch
    )
    shared = all(m.exp.dataset is exp.dataset for m in members)
    train_x = exp.train_x if shared else jnp.stack([m.exp.train_x for m in members])
    place = lambda tree: tree
    mode = members[0].run.config.train.data_parallel  # exp's is "off": see _experiments
    mesh = parallel.config_mesh(mode, len(members))
    if mesh is not None:  # configs split over devices; the data on each
        split = parallel.config_sharded(mesh)
        place = functools.partial(jax.device_put, device=split)
        state = place(state)
        train_x = jax.device_put(
            train_x, split if not shared else parallel.replicated(mesh)
        )
        logging.info("%d configs split over %d devices", len(members), mesh.size)
    runner = _StackedRunner(
        make_sweep_step(exp), train_x, shared, orders, place, cfg.steps_per_dispatch
    )
    step = int(members[0].state.step)
    return loop.run_loop(state, step, exp.total_steps, cfg, runner, _hooks(members))


def _train_members(members: Sequence[_Member]) -> None:
    """Trains configs resumed at one step as one program; evaluates and marks them done."""
    state = stack_states(
        members[0].exp, [m.state for m in members], [m.run.config for m in members]
    )
    step = int(members[0].state.step)
    logging.info("vmapped training of %d configs from step %d", len(members), step)
    for m in members:
        m.writer = writer.MetricWriter(m.dir, resume_step=step)
    try:
        state = _train_group(members, state)
        for i, m in enumerate(members):
            if not m.failed:
                _finish(m, _take(state.params, i))
    finally:
        for m in members:
            m.writer.close()


def _finish(m: _Member, params) -> None:
    """Final evaluation, figures and ``done.json`` of one trained config."""
    total = m.exp.total_steps
    final = m.evaluate(params)
    m.writer.write_scalars(total, final)
    logging.info(
        "%s final: %s", m.run.name, " ".join(f"{k} {v:.4f}" for k, v in final.items())
    )
    if m.exp.config.train.write_figures:
        m.writer.write_images(total, figures.write_run_figures(m.exp, params, m.dir))
    write_done(m.run, m.dir, final)


def train_vmapped(runs: Sequence[Run], workdir) -> dict[str, str]:
    """Trains ``runs`` (differing only in ``VMAPPABLE`` fields) as one vmapped program per
    resume step, each in ``<workdir>/<name>`` as ``loop.train_and_evaluate`` would.
    Each run directory is locked (``workdir_lock``) and its config checked against
    the stored one (``provenance.check_resume``) as a single run's would be.
    Returns {name: message} for configs stopped by a non-finite loss."""
    check_vmappable(runs)
    for line in runtime.backend_warnings(jax.default_backend()):
        logging.warning("%s", line)
    members, eval_fns = [], {}
    with contextlib.ExitStack() as locks:
        for run, exp in zip(runs, _experiments(runs)):
            run_dir = pathlib.Path(workdir) / run.name
            fresh = exp.init_state()
            loop.check_workdir(run_dir, fresh)
            locks.enter_context(workdir_lock.locked(run_dir))
            keep = exp.config.train.keep_checkpoints
            manager = checkpoint.make_manager(run_dir / "checkpoints", keep)
            changes = {}
            if manager.all_steps():
                changes = provenance.check_resume(run_dir, run.config)
            state = checkpoint.restore_latest(manager, fresh) or fresh
            provenance.record(run_dir, run.config, int(state.step), changes)
            members.append(
                _Member(run, exp, run_dir, manager, state, _evaluator(exp, eval_fns))
            )
        for line in loop.evaluation_warnings(members[0].exp) if members else []:
            logging.warning("%s", line)
        for step in sorted({int(m.state.step) for m in members}):
            _train_members([m for m in members if int(m.state.step) == step])
    return {m.run.name: m.failed for m in members if m.failed}
