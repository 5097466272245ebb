"""Hyper-parameter sweeps: override grids, trained as one vmapped program or per process.

A sweep is a list of override dicts on a base config, e.g. ``{"optim.learning_rate":
1e-3, "seed": 0}`` (``parse_sweep``: the cartesian product of ``a.b=1,2;c=x,y``). Config
``run_name(overrides)`` trains in ``<workdir>/<name>`` exactly like a single run
(metrics.jsonl, orbax checkpoints, figures) plus ``done.json`` once finished, so a
rerun skips it; ``write_results`` tabulates every config.

``train_vmapped``: C configs differing only in ``VMAPPABLE`` fields are ONE XLA program,
``jax.vmap`` of ``train.make_train_chunk`` over C stacked ``SweepState``s, each with its
own keys (init, train, data: its own batch order), data split and ``hyper`` values. The
optimizer runs at rate 1 and ``SweepState`` scales its update by the state's rate:
lr * (-f(t) u_t) = optax's -(lr f(t)) u_t for adam/adamw/sgd (f the unit schedule),
bitwise for a constant schedule, so checkpoints keep a single run's layout.
``train_processes``: ``loop.train_and_evaluate`` per config, here or in a spawn pool.
"""

from __future__ import annotations

import ast
import concurrent.futures
import copy
import csv
import dataclasses
import difflib
import functools
import hashlib
import io
import itertools
import json
import multiprocessing
import os
import pathlib
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import logging

from vae_jax import (
    ae_objectives,
    checkpoint,
    config_checks,
    evaluate,
    experiment,
    figures,
    loop,
    objectives,
    preemption,
    train,
    writer,
)
from vae_jax import data as data_lib

# Numeric fields that change no shape or program: they may differ within one vmap.
VMAPPABLE = (
    "seed",
    "optim.learning_rate",
    "objective.beta",
    "objective.kl_warmup_steps",
    "objective.noise_level",
    "objective.sparsity_target",
    "objective.sparsity_weight",
)
HYPER = {field.split(".")[-1]: field for field in VMAPPABLE[1:]}  # state.hyper keys
MODES = ("auto", "vmap", "process")
_FAILURES = (ValueError, OSError, checkpoint.CheckpointError, FloatingPointError)


@dataclasses.dataclass(frozen=True)
class Run:
    """One config of a sweep: its directory name, overrides and full config."""

    name: str
    overrides: dict[str, Any]
    config: ml_collections.ConfigDict


# ------------------------------------------------------------------ specification
def flatten(config: ml_collections.ConfigDict) -> dict[str, Any]:
    """Dotted leaf names -> values, e.g. {"optim.learning_rate": 1e-3, "seed": 0, ...}."""
    out = {}
    for key, value in config.items():
        if isinstance(value, ml_collections.ConfigDict):
            out.update({f"{key}.{k}": v for k, v in flatten(value).items()})
        else:
            out[key] = value
    return out


def _unknown_field(key: str, fields) -> ValueError:
    close = difflib.get_close_matches(key, list(fields), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return ValueError(f"Unknown config field {key!r} in the sweep{hint}.")


def parse_value(key: str, text: str, current: Any) -> Any:
    """``text`` as the type of the field's ``current`` value: "3e-4" -> float, "2" ->
    int, "true" -> bool, "(64, 32)" -> tuple, else str. ValueError if unparseable."""
    text = text.strip()
    try:
        if isinstance(current, bool):
            return {"true": True, "1": True, "false": False, "0": False}[text.lower()]
        if isinstance(current, int):
            number = float(text)
            if not number.is_integer():
                raise ValueError
            return int(number)
        if isinstance(current, float):
            return float(text)
        if isinstance(current, (tuple, list)):
            value = ast.literal_eval(text)
            return tuple(value) if isinstance(value, (tuple, list)) else (value,)
        return text.strip("'\"") if isinstance(current, str) else ast.literal_eval(text)
    except (ValueError, KeyError, SyntaxError):
        kind = type(current).__name__
        raise ValueError(f"Cannot parse {text!r} as {key} (a {kind}).") from None


def _split_top(text: str, sep: str) -> list[str]:
    """``text`` split at ``sep`` outside brackets: "(1,2),(3,)" -> ["(1,2)", "(3,)"]."""
    parts, depth, start = [], 0, 0
    for i, char in enumerate(text):
        depth += (char in "([{") - (char in ")]}")
        if char == sep and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    return parts + [text[start:]]


def parse_sweep(spec: str, base: ml_collections.ConfigDict) -> list[dict[str, Any]]:
    """Spec "a.b=1,2;c=x" -> the cartesian product [{"a.b": 1, "c": "x"}, {"a.b": 2, ...}]
    (last axis fastest), each value typed like ``base``'s field."""
    fields, axes = flatten(base), {}
    for part in _split_top(spec, ";"):
        key, equals, values = (s.strip() for s in part.partition("="))
        if not key and not values:
            continue
        if not equals or not key or not values:
            raise ValueError(f"Sweep axis {part.strip()!r} is not 'field=v1,v2,...'.")
        if key not in fields:
            raise _unknown_field(key, fields)
        if key in axes:
            raise ValueError(f"Field {key!r} appears twice in the sweep.")
        axes[key] = [parse_value(key, v, fields[key]) for v in _split_top(values, ",")]
    if not axes:
        raise ValueError(f"Empty sweep {spec!r}; expected 'field=v1,v2;field2=...'.")
    return [dict(zip(axes, combo)) for combo in itertools.product(*axes.values())]


def load_get_sweep(config_file: str) -> list[dict[str, Any]] | None:
    """``get_sweep()`` of a config file (a list of override dicts), or None if absent."""
    import importlib.util

    path = config_file if os.path.exists(config_file) else config_file.split(":")[0]
    spec = importlib.util.spec_from_file_location("_sweep_config", path)
    if spec is None:
        raise ValueError(f"Cannot load config file {path!r}.")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, "get_sweep"):
        return None
    overrides = list(module.get_sweep())
    if not overrides or not all(isinstance(o, Mapping) for o in overrides):
        raise ValueError(
            f"get_sweep() in {path} must return a non-empty list of dicts."
        )
    return [dict(o) for o in overrides]


def apply_overrides(base: ml_collections.ConfigDict, overrides: Mapping[str, Any]):
    """A copy of ``base`` with the dotted ``overrides`` set (types as in ``base``)."""
    config, fields = copy.deepcopy(base), flatten(base)
    for key, value in overrides.items():
        if key not in fields:
            raise _unknown_field(key, fields)
        *path, leaf = key.split(".")
        node = functools.reduce(lambda n, p: n[p], path, config)
        value = tuple(value) if isinstance(value, list) else value
        try:
            setattr(node, leaf, value)
        except (TypeError, ValueError) as err:
            raise ValueError(f"Bad sweep value {key}={value!r}: {err}") from None
    return config


def _format(value: Any) -> str:
    if isinstance(value, (tuple, list)):
        return "-".join(map(_format, value)) or "none"
    return repr(value) if isinstance(value, float) else str(value)


def run_name(overrides: Mapping[str, Any]) -> str:
    """Filename-safe directory name: {"optim.learning_rate": 3e-4, "seed": 1} ->
    "learning_rate=0.0003_seed=1" (full dotted keys where last parts clash)."""
    lasts = [key.split(".")[-1] for key in overrides]
    parts = [
        f"{key if lasts.count(last) > 1 else last}={_format(value)}"
        for (key, value), last in zip(overrides.items(), lasts)
    ]
    name = re.sub(r"[^A-Za-z0-9._=+-]", "-", "_".join(parts)) or "base"
    if len(name) > 200:  # file names stop at 255 bytes
        name = name[:180] + "_" + hashlib.sha1(name.encode()).hexdigest()[:12]
    return name


def make_runs(base: ml_collections.ConfigDict, sweep: Sequence[Mapping]) -> list[Run]:
    """One validated config per override dict; ValueError names a bad one or a repeat."""
    runs = []
    for overrides in sweep:
        config = apply_overrides(base, overrides)
        try:
            config_checks.validate_config(config)
        except ValueError as err:
            raise ValueError(f"Sweep config {run_name(overrides)}: {err}") from None
        runs.append(Run(run_name(overrides), dict(overrides), config))
    names = [run.name for run in runs]
    for name in names:
        if names.count(name) > 1:
            raise ValueError(f"The sweep lists config {name!r} twice.")
    return runs


def sweep_index(flag_value: int | None, num_runs: int, environ=os.environ):
    """Config index of an array-job task: ``flag_value``, else $SLURM_ARRAY_TASK_ID,
    else None (all configs). ValueError when out of [0, num_runs)."""
    index, source = flag_value, "--sweep_index"
    if index is None and environ.get("SLURM_ARRAY_TASK_ID", "").strip():
        source, text = "SLURM_ARRAY_TASK_ID", environ["SLURM_ARRAY_TASK_ID"]
        if not text.strip().isdigit():
            raise ValueError(f"{source}={text!r} is not an integer.")
        index = int(text)
    if index is not None and not 0 <= index < num_runs:
        raise ValueError(
            f"{source}={index} is out of range: the sweep has {num_runs} configs "
            f"(0..{num_runs - 1})."
        )
    return index


# ------------------------------------------------------------------ vmapped training
def vmap_groups(runs: Sequence[Run]) -> list[list[Run]]:
    """``runs`` grouped by every field outside ``VMAPPABLE``: one program per group."""
    groups = {}
    for run in runs:
        fixed = sorted((k, repr(v)) for k, v in flatten(run.config).items())
        key = repr([kv for kv in fixed if kv[0] not in VMAPPABLE])
        groups.setdefault(key, []).append(run)
    return list(groups.values())


def check_vmappable(runs: Sequence[Run]) -> None:
    """ValueError naming a field outside ``VMAPPABLE`` in which two configs differ."""
    first = flatten(runs[0].config)
    for run in runs[1:]:
        for key, value in flatten(run.config).items():
            if key not in VMAPPABLE and value != first[key]:
                raise ValueError(
                    f"--mode=vmap trains configs that differ only in {', '.join(VMAPPABLE)}"
                    f"; {runs[0].name} and {run.name} differ in {key} ({first[key]!r} vs "
                    f"{value!r}), which changes shapes or the program. Use --mode=process."
                )


class SweepState(train.TrainState):
    """TrainState of one config of a vmapped sweep: ``tx`` runs at learning rate 1 and
    the update is scaled by ``hyper["learning_rate"]``; ``hyper`` holds the config's
    ``HYPER`` values (scalars [] per config, [C] when stacked)."""

    hyper: dict[str, jax.Array]

    def apply_gradients(self, *, grads, **kwargs):
        updates, opt_state = self.tx.update(grads, self.opt_state, self.params)
        rate = self.hyper["learning_rate"]
        updates = jax.tree.map(lambda u: rate * u, updates)
        params = optax.apply_updates(self.params, updates)
        return self.replace(
            step=self.step + 1, params=params, opt_state=opt_state, **kwargs
        )


def hyper_values(config: ml_collections.ConfigDict) -> dict[str, jax.Array]:
    """{"learning_rate", "beta", "kl_warmup_steps", ...}: the config's ``HYPER`` values."""
    fields = flatten(config)
    return {name: jnp.asarray(fields[f], jnp.float32) for name, f in HYPER.items()}


def unit_rate_optimizer(exp: experiment.Experiment):
    """``train.make_optimizer`` of the experiment at learning rate 1 (schedule shape f)."""
    optim = copy.deepcopy(exp.config.optim)
    optim.learning_rate = 1.0
    return train.make_optimizer(optim, exp.total_steps, exp.steps_per_epoch)


def hyper_loss_one(exp: experiment.Experiment, hyper) -> objectives.LossOne:
    """``objectives.make_objective`` with noise/sparsity levels from ``hyper`` (traced)."""
    obj, model = exp.config.objective, exp.model
    if obj.name == "denoising_mse":
        return functools.partial(
            ae_objectives.denoising_squared_error, model=model,
            corruption=obj.corruption, level=hyper["noise_level"],
        )  # fmt: skip
    if obj.name == "sparse_mse":
        return ae_objectives.with_sparsity_penalty(
            functools.partial(objectives.squared_error, model=model), model=model,
            target=hyper["sparsity_target"], weight=hyper["sparsity_weight"],
        )  # fmt: skip
    return exp.loss_one  # beta comes through hparams


def hyper_hparams_fn(hyper) -> Callable:
    """``objectives.make_hparams`` with traced beta and warm-up: beta min(1, t / w)
    (Bowman et al. 2016), beta if w = 0."""

    def hparams(step):
        warmup = hyper["kl_warmup_steps"]
        ramp = jnp.minimum(1.0, step.astype(jnp.float32) / jnp.maximum(warmup, 1.0))
        return {"beta": hyper["beta"] * jnp.where(warmup > 0, ramp, 1.0)}

    return hparams


def make_sweep_step(exp: experiment.Experiment) -> Callable:
    """step(state: SweepState, batch [B, D]) -> (state, metrics), hparams from state."""

    def step(state, batch):
        loss_one = hyper_loss_one(exp, state.hyper)
        hparams_fn = hyper_hparams_fn(state.hyper)
        return train.make_step_fn(loss_one, hparams_fn, exp.binarize)(state, batch)

    return step


def make_sweep_chunk(step_fn: Callable, num_steps: int, shared_x: bool) -> Callable:
    """Jitted chunk(state [C], train_x [N, D] (or [C, N, D]), batches [C, N // B, B])
    -> (state, metrics [C, T]): ``train.make_train_chunk`` vmapped over C configs."""
    chunk = train.make_train_chunk(step_fn, num_steps=num_steps)
    in_axes = (0, None if shared_x else 0, 0)
    return jax.jit(jax.vmap(chunk, in_axes=in_axes), donate_argnums=0)


def _experiments(runs: Sequence[Run]) -> list[experiment.Experiment]:
    """One-device experiments; configs with equal data share one Dataset and train_x."""
    loaded, exps = {}, []
    for run in runs:
        config = copy.deepcopy(run.config)
        config.train.data_parallel = "off"  # the config axis is the vmapped one
        key = (config.data.to_json_best_effort(), config.seed)
        if key not in loaded:
            data = experiment.load_data(config)
            same = [d for d in loaded.values() if _same_data(d, data)]
            loaded[key] = same[0] if same else data
        exp = experiment.build_experiment(config, loaded[key])
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


def _evaluator(exp: experiment.Experiment, eval_fns: dict) -> Callable:
    """params -> {"valid/loss", "test/loss", ...} as ``loop.train_and_evaluate``; one
    compiled ``eval_fn`` per distinct loss in ``eval_fns`` (eval fixes beta = 1)."""
    obj = exp.config.objective
    level = obj.noise_level if obj.name == "denoising_mse" else None
    if level not in eval_fns:
        eval_fns[level] = evaluate.make_eval_fn(exp.loss_one, {"beta": 1.0})
    eval_fn = eval_fns[level]
    sets, batch = exp.eval_sets(), exp.config.train.eval_batch_size

    def evaluate_now(params):
        out = {}
        for name, x in sets.items():
            means = evaluate.evaluate_dataset(
                eval_fn, params, x, batch, exp.keys["eval"]
            )
            out.update({f"{name}/{k}": v for k, v in means.items()})
        return out

    return evaluate_now


class _StackedOrders(train.EpochBatches):
    """``train.EpochBatches`` of C configs: step -> orders [C, N // B, B] of its epoch,
    ``data.epoch_batches`` vmapped over the data keys [C], once per epoch."""

    def __init__(self, data_keys: jax.Array, num_examples: int, batch_size: int):
        super().__init__(data_keys, num_examples, batch_size)
        order = functools.partial(data_lib.epoch_batches, num_examples=num_examples,
                                  batch_size=batch_size)  # fmt: skip
        self._order = jax.jit(jax.vmap(order, in_axes=(0, None)))


def _next_stop(step: int, cfg, total: int, order: train.EpochBatches) -> int:
    """End of the next chunk: no chunk crosses an epoch, log/eval/checkpoint step or end."""
    stops = [total, step + min(cfg.steps_per_dispatch, order.steps_left(step))]
    for every in (cfg.log_every, cfg.checkpoint_every, cfg.eval_every):
        if every > 0:
            stops.append((step // every + 1) * every)
    return min(stops)


def _take(tree, i: int):
    """Config i's slice of a stacked pytree: [C, ...] -> [...]."""
    return jax.tree.map(lambda x: x[i], tree)


@dataclasses.dataclass
class _Member:
    """One config of a vmapped group and its run directory's writers."""

    run: Run
    exp: experiment.Experiment
    dir: pathlib.Path  # <workdir>/<name>
    manager: Any  # orbax CheckpointManager of <name>/checkpoints
    state: train.TrainState  # restored or fresh, single-run layout
    evaluate: Callable = None  # params -> {"valid/loss", "test/loss", ...}
    writer: writer.MetricWriter | None = None
    failed: str = ""

    def save(self, stacked: SweepState, i: int, step: int) -> None:
        s = _take(stacked, i)
        single = self.state.replace(params=s.params, opt_state=s.opt_state,
                                    step=s.step, key=s.key)  # fmt: skip
        checkpoint.save(self.manager, single, step)


def _log_window(window, members, step: int, total: int) -> None:
    """Writes each live config's mean train metrics over ``window`` ([C, n] chunks)."""
    terms = []
    for i, m in enumerate(members):
        if m.failed:
            continue
        means = {
            k: float(np.mean(np.concatenate([w[k][i] for w in window])))
            for k in window[0]
        }
        m.writer.write_scalars(step, {f"train/{k}": v for k, v in means.items()})
        terms.append(f"{m.run.name} loss {means['loss']:.4g}")
    logging.info("step %d/%d | %s", step, total, " | ".join(terms))


def _check_finite(metrics, members, step: int) -> None:
    """Marks configs with a non-finite step failed (``on_nonfinite='stop'``)."""
    for i in np.flatnonzero(np.asarray(metrics["nonfinite"]).any(axis=1)):
        m = members[i]
        if m.exp.config.train.on_nonfinite == "stop" and not m.failed:
            bad = step + int(np.argmax(metrics["nonfinite"][i]))
            m.failed = f"failed: non-finite loss or gradient at step {bad}"
            logging.error("%s %s", m.run.name, m.failed)


def _train_group(members: Sequence[_Member], state: SweepState) -> SweepState:
    """The step loop of ``loop.train_and_evaluate``, vmapped over ``state`` [C]."""
    exp = members[0].exp
    cfg, total, step = exp.config.train, exp.total_steps, int(state.step[0])
    data_keys = jnp.stack([m.exp.keys["data"] for m in members])
    orders = _StackedOrders(data_keys, exp.train_x.shape[0], cfg.batch_size)
    shared = all(m.exp.dataset is exp.dataset for m in members)
    train_x = exp.train_x if shared else jnp.stack([m.exp.train_x for m in members])
    step_fn, chunks, window = make_sweep_step(exp), {}, []
    live = lambda: [(i, m) for i, m in enumerate(members) if not m.failed]
    with preemption.PreemptionGuard() as guard:
        while step < total and live():
            n = _next_stop(step, cfg, total, orders) - step
            if n not in chunks:
                chunks[n] = make_sweep_chunk(step_fn, n, shared)
            state, metrics = chunks[n](state, train_x, orders(step))
            metrics = jax.device_get(metrics)  # the one host sync per chunk
            _check_finite(metrics, members, step)
            step += n
            window.append(metrics)
            if step % cfg.log_every == 0 or step == total or guard.requested:
                _log_window(window, members, step, total)
                window = []
            if cfg.eval_every and step % cfg.eval_every == 0 and step < total:
                for i, m in live():
                    m.writer.write_scalars(step, m.evaluate(_take(state.params, i)))
            if step % cfg.checkpoint_every == 0 or step == total or guard.requested:
                for i, m in live():
                    m.save(state, i, step)
            if guard.requested and step < total:
                raise preemption.Preempted(
                    f"Stopped by {guard.signal_name} at step {step}; checkpoints saved. "
                    "Rerun the same command to resume."
                )
    return state


def _train_members(members: Sequence[_Member]) -> None:
    """Trains configs resumed at one step as one program; evaluates and marks them done."""
    tx = unit_rate_optimizer(members[0].exp)
    apply_fn = members[0].exp.model.apply
    states = [SweepState(step=m.state.step, apply_fn=apply_fn, params=m.state.params,
                         tx=tx, opt_state=m.state.opt_state, key=m.state.key,
                         hyper=hyper_values(m.run.config)) for m in members]  # fmt: skip
    step = int(members[0].state.step)
    logging.info("vmapped training of %d configs from step %d", len(members), step)
    for m in members:
        m.writer = writer.MetricWriter(m.dir, resume_step=step)
    try:
        state = _train_group(members, jax.tree.map(lambda *x: jnp.stack(x), *states))
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
    Returns {name: message} for configs stopped by a non-finite loss."""
    check_vmappable(runs)
    members, eval_fns = [], {}
    for run, exp in zip(runs, _experiments(runs)):
        run_dir = pathlib.Path(workdir) / run.name
        run_dir.mkdir(parents=True, exist_ok=True)
        writer.write_config(run_dir, run.config)
        keep = exp.config.train.keep_checkpoints
        manager = checkpoint.make_manager(run_dir / "checkpoints", keep)
        fresh = exp.init_state()
        state = checkpoint.restore_latest(manager, fresh) or fresh
        members.append(
            _Member(run, exp, run_dir, manager, state, _evaluator(exp, eval_fns))
        )
    for step in sorted({int(m.state.step) for m in members}):
        _train_members([m for m in members if int(m.state.step) == step])
    return {m.run.name: m.failed for m in members if m.failed}


# ------------------------------------------------------------------ per-process training
def _config_json(config: ml_collections.ConfigDict) -> dict:
    return json.loads(config.to_json_best_effort())


def write_done(run: Run, run_dir, final: Mapping[str, float]) -> None:
    """``<name>/done.json``: the config (to detect changes), overrides, final metrics."""
    record = {"name": run.name, "overrides": run.overrides, "final": dict(final),
              "config": _config_json(run.config)}  # fmt: skip
    _write_atomic(pathlib.Path(run_dir) / "done.json", json.dumps(record, indent=1))


def is_finished(run: Run, workdir) -> bool:
    """Whether ``<workdir>/<name>`` holds this config's finished run: a ``done.json`` of
    the same config, or (``train.num_steps`` > 0) the final evaluation in metrics.jsonl."""
    run_dir = pathlib.Path(workdir) / run.name
    try:
        done = json.loads((run_dir / "done.json").read_text())
        return done.get("config") == _config_json(run.config)
    except (OSError, json.JSONDecodeError):
        pass
    steps = run.config.train.num_steps
    records = writer.read_metrics(run_dir / "metrics.jsonl")
    return steps > 0 and any(
        r["step"] == steps and any(k.startswith(("valid/", "test/")) for k in r)
        for r in records
    )


def train_run(run: Run, workdir) -> dict[str, float]:
    """``loop.train_and_evaluate`` in ``<workdir>/<name>`` (resuming), then ``done.json``."""
    run_dir = pathlib.Path(workdir) / run.name
    final = loop.train_and_evaluate(run.config, str(run_dir))
    write_done(run, run_dir, final)
    return final


def _train_child(run: Run, workdir: str) -> None:
    """Pool worker: logs into ``<name>/log.txt``, GPU memory on demand, then train_run."""
    import logging as std_logging

    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # shared GPU
    run_dir = pathlib.Path(workdir) / run.name
    run_dir.mkdir(parents=True, exist_ok=True)
    handler = std_logging.FileHandler(run_dir / "log.txt")
    handler.setFormatter(logging.PythonFormatter())
    handler.addFilter(
        lambda r: r.levelno >= std_logging.WARNING or "orbax" not in r.pathname
    )
    std_logging.getLogger().handlers = [handler]
    logging.set_verbosity(logging.INFO)
    train_run(run, workdir)


def train_processes(
    runs: Sequence[Run], workdir, max_workers: int = 1
) -> dict[str, str]:
    """Each config by ``train_run``: one after another here (max_workers <= 1), else in
    a pool of fresh spawned processes. Returns {name: "failed: ..."} for failures."""
    failures = {}
    if max_workers <= 1:
        for run in runs:
            logging.info("training %s", run.name)
            try:
                train_run(run, workdir)
            except _FAILURES as err:
                failures[run.name] = f"failed: {type(err).__name__}: {err}"
                logging.error("%s %s", run.name, failures[run.name])
        return failures
    fresh = {"max_tasks_per_child": 1} if sys.version_info >= (3, 11) else {}
    context = multiprocessing.get_context("spawn")  # fork is unsafe once JAX runs
    with concurrent.futures.ProcessPoolExecutor(
        max_workers, mp_context=context, **fresh
    ) as pool:
        futures = {pool.submit(_train_child, run, str(workdir)): run for run in runs}
        for future in concurrent.futures.as_completed(futures):
            run = futures[future]
            try:
                future.result()
                logging.info("finished %s (log: %s/log.txt)", run.name, run.name)
            except Exception as err:  # noqa: BLE001 - a child's failure is its row's status
                failures[run.name] = f"failed: {type(err).__name__}: {err}"
                logging.error("%s %s", run.name, failures[run.name])
    return failures


# ------------------------------------------------------------------ results
def _write_atomic(path: pathlib.Path, text: str) -> None:
    """Writes via a temporary file + rename: concurrent array tasks never tear it."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _final_metrics(run_dir: pathlib.Path) -> dict[str, float]:
    """The last value of every metric in metrics.jsonl: final train window and eval."""
    out = {}
    for record in writer.read_metrics(run_dir / "metrics.jsonl"):
        out.update({k: v for k, v in record.items() if v is not None})
    return out


def _metric_order(name: str):
    prefixes = ("step", "train/", "valid/", "test/")
    return next((i for i, p in enumerate(prefixes) if name.startswith(p)), 4), name


def write_results(
    runs: Sequence[Run], workdir, failures: Mapping[str, str] | None = None
):
    """``results.csv`` and ``results.md`` (a row per config: overrides, status, final
    train and eval metrics) and ``results.png``; returns the rows as dicts."""
    workdir, rows = pathlib.Path(workdir), []
    keys = list(dict.fromkeys(k for run in runs for k in run.overrides))
    for run in runs:
        metrics, fields = _final_metrics(workdir / run.name), flatten(run.config)
        status = "done" if is_finished(run, workdir) else (failures or {}).get(run.name)
        status = status or ("incomplete" if metrics else "pending")
        values = {k: fields[k] for k in keys}  # the base value where not overridden
        rows.append({"name": run.name, **values, "status": status, **metrics})
    metric_names = sorted(
        set().union(*rows) - {"name", "status", *keys}, key=_metric_order
    )
    columns = ["name", *keys, "status", *metric_names]
    text = io.StringIO()
    table = csv.DictWriter(text, columns, lineterminator="\n")
    table.writeheader()
    table.writerows(
        {k: _format(v) if k in keys else v for k, v in r.items()} for r in rows
    )
    _write_atomic(workdir / "results.csv", text.getvalue())
    cell = lambda c, v: (
        f"{v:.4g}" if isinstance(v, float) and c not in keys else _format(v)
    )
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(c, r[c]) if c in r else "" for c in columns) + " |"
              for r in rows]  # fmt: skip
    _write_atomic(workdir / "results.md", "\n".join(lines) + "\n")
    plot_results(rows, keys, workdir / "results.png")
    return rows


def plot_results(rows: Sequence[Mapping], keys: Sequence[str], path) -> None:
    """One panel per swept field: the final test (else valid, train) loss of each
    finished config against the field's value, and its mean over the other fields."""
    from vae_jax.plots import plt

    done = [r for r in rows if r["status"] == "done"]
    metric = next((m for m in ("test/loss", "valid/loss", "train/loss")
                   if any(m in r for r in done)), None)  # fmt: skip
    if metric is None or not keys:
        return
    fig, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 3.2), squeeze=False)
    for ax, key in zip(axes[0], keys):
        points = [(r[key], r[metric]) for r in done if key in r and metric in r]
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool)
                      for v, _ in points)  # fmt: skip
        labels = sorted({_format(v) for v, _ in points}) if not numeric else []
        xs = [v if numeric else labels.index(_format(v)) for v, _ in points]
        ys = [m for _, m in points]
        values = sorted(set(xs))
        means = [np.mean([y for x, y in zip(xs, ys) if x == u]) for u in values]
        ax.scatter(xs, ys, alpha=0.6, label="configs")
        ax.plot(values, means, "o-", color="C1", label="mean over other fields")
        if numeric and values[0] > 0 and values[-1] >= 10 * values[0]:
            ax.set_xscale("log")
        if not numeric:
            ax.set_xticks(range(len(labels)), labels)
        ax.set(
            xlabel=key,
            ylabel=f"final {metric}",
            title=f"{metric} vs {key.split('.')[-1]}",
        )
        if numeric and all(isinstance(v, int) for v in values):
            ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# ------------------------------------------------------------------ the sweep
def resolve_mode(mode: str) -> str:
    """Mode "auto" is vmap on GPU/TPU (a vmapped sweep was slower than sequential scan-fused
    runs on CPU, where XLA makes batched matmuls of them), else process."""
    if mode not in MODES:
        raise ValueError(f"Unknown mode {mode!r}; choose one of {MODES}.")
    if mode == "auto":
        return "vmap" if jax.default_backend() != "cpu" else "process"
    return mode


def run_sweep(base: ml_collections.ConfigDict, sweep: Sequence[Mapping[str, Any]],
              workdir, *, mode: str = "auto", max_workers: int = 1,
              index: int | None = None) -> list[dict]:  # fmt: skip
    """Trains each unfinished config of ``sweep`` (override dicts on ``base``) in
    ``<workdir>/<name>``, then writes the results (``write_results``, returned).

    mode: "vmap" (one program; ValueError if configs differ outside ``VMAPPABLE``),
    "process" (``train_processes`` with ``max_workers``) or "auto" (vmap per group of
    ``vmap_groups`` on GPU/TPU, process on CPU). ``index``: only that config (an
    array-job task), in this process.
    """
    workdir = pathlib.Path(workdir)
    runs = make_runs(base, sweep)
    mode = resolve_mode(mode)
    if mode == "vmap" and index is None:
        check_vmappable(runs)
    todo = runs if index is None else [runs[sweep_index(index, len(runs), {})]]
    pending = [run for run in todo if not is_finished(run, workdir)]
    logging.info("sweep of %d configs in %s: %d to train (%s), %d finished",
                 len(runs), workdir, len(pending), mode, len(todo) - len(pending))  # fmt: skip
    workdir.mkdir(parents=True, exist_ok=True)
    failures = {}
    if index is not None or mode == "process":
        failures = train_processes(
            pending, workdir, max_workers if index is None else 1
        )
    else:
        for group in vmap_groups(pending):
            if len(group) == 1:
                failures.update(train_processes(group, workdir))
            else:
                try:
                    failures.update(train_vmapped(group, workdir))
                except _FAILURES as err:
                    failures.update({r.name: f"failed: {err}" for r in group})
    return write_results(runs, workdir, failures)
