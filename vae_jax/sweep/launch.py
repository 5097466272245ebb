"""Hyper-parameter sweeps: each unfinished config trained vmapped or per process.

``run_sweep`` trains the configs of a sweep (``sweep_spec``) in ``<workdir>/<name>``
exactly like single runs, plus ``done.json`` once finished, so a rerun skips them, then
tabulates them (``sweep_results``). ``vmapped.train_vmapped`` trains configs that
differ only in numeric hyper-parameters as one program; ``train_processes`` runs
``loop.train_and_evaluate`` (or another ``train_fn``) per config, here or in a spawn
pool.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import pathlib
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import ml_collections
from absl import logging

from vae_jax import build, checkpoint, loop, runtime
from vae_jax.runs import load_run
from vae_jax.sweep import vmapped
from vae_jax.sweep.results import is_finished, write_done, write_results
from vae_jax.sweep.spec import Run, check_vmappable, make_runs, sweep_index, vmap_groups

MODES = ("auto", "vmap", "process")
_FAILURES = (ValueError, OSError, checkpoint.CheckpointError, FloatingPointError)


def train_run(run: Run, workdir) -> dict[str, float]:
    """``loop.train_and_evaluate`` in ``<workdir>/<name>`` (resuming), then ``done.json``."""
    run_dir = pathlib.Path(workdir) / run.name
    final = loop.train_and_evaluate(run.config, str(run_dir))
    write_done(run, run_dir, final)
    return final


# (run, workdir) -> anything: trains the config in <workdir>/<name>.
TrainFn = Callable[[Run, Any], Any]


def _train_child(
    run: Run,
    workdir: str,
    train_fn: TrainFn | None = None,
    env: Mapping[str, str] | None = None,
) -> None:
    """Pool worker: ``env`` set (before JAX starts a backend), logs into
    ``<name>/log.txt``, GPU memory on demand, then ``train_fn(run, workdir)``."""
    import logging as std_logging

    os.environ.update(env or {})
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # shared GPU
    run_dir = pathlib.Path(workdir) / run.name
    run_dir.mkdir(parents=True, exist_ok=True)
    handler = std_logging.FileHandler(run_dir / "log.txt")
    handler.setFormatter(logging.PythonFormatter())
    runtime.quiet_orbax(handler)
    std_logging.getLogger().handlers = [handler]
    runtime.configure()
    (train_fn or train_run)(run, workdir)


def train_processes(
    runs: Sequence[Run],
    workdir,
    max_workers: int = 1,
    *,
    train_fn: TrainFn | None = None,
    env: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Each config by ``train_fn(run, workdir)`` (default ``train_run``): one after
    another here (max_workers <= 1), else in a pool of fresh spawned processes, each
    logging into ``<workdir>/<name>/log.txt`` with the variables ``env`` set (a pool
    pickles ``train_fn``: a module-level function or a partial of one). Returns
    {name: "failed: ..."} for failures."""
    failures = {}
    if max_workers <= 1:
        for run in runs:
            logging.info("training %s", run.name)
            try:
                (train_fn or train_run)(run, workdir)
            except _FAILURES as err:
                failures[run.name] = f"failed: {type(err).__name__}: {err}"
                logging.error("%s %s", run.name, failures[run.name])
        return failures
    fresh = {"max_tasks_per_child": 1} if sys.version_info >= (3, 11) else {}
    context = multiprocessing.get_context("spawn")  # fork is unsafe once JAX runs
    with concurrent.futures.ProcessPoolExecutor(
        max_workers, mp_context=context, **fresh
    ) as pool:
        futures = {
            pool.submit(_train_child, run, str(workdir), train_fn, env): run
            for run in runs
        }
        for future in concurrent.futures.as_completed(futures):
            run = futures[future]
            try:
                future.result()
                logging.info("finished %s (log: %s/log.txt)", run.name, run.name)
            except Exception as err:  # noqa: BLE001 (one failed config: record, go on)
                failures[run.name] = f"failed: {type(err).__name__}: {err}"
                logging.error("%s %s", run.name, failures[run.name])
    return failures


def resolve_mode(mode: str) -> str:
    """Mode "auto" is vmap on GPU/TPU (a vmapped sweep was slower than sequential scan-fused
    runs on CPU, where XLA makes batched matmuls of them), else process."""
    if mode not in MODES:
        raise ValueError(f"Unknown mode {mode!r}; choose one of {MODES}.")
    if mode == "auto":
        return "vmap" if jax.default_backend() != "cpu" else "process"
    return mode


def run_sweep(
    base: ml_collections.ConfigDict,
    sweep: Sequence[Mapping[str, Any]],
    workdir,
    *,
    mode: str = "auto",
    max_workers: int = 1,
    index: int | None = None,
) -> list[dict]:
    """Trains each unfinished config of ``sweep`` (override dicts on ``base``) in
    ``<workdir>/<name>``, then writes the results (``write_results``, returned).

    mode: "vmap" (one program; ValueError if configs differ outside
    ``sweep_spec.VMAPPABLE``), "process" (``train_processes`` with ``max_workers``) or
    "auto" (vmap per group of ``vmap_groups`` on GPU/TPU, process on CPU). ``index``:
    only that config (an array-job task), in this process.
    """
    workdir = pathlib.Path(workdir)
    runs = make_runs(base, sweep)
    mode = resolve_mode(mode)
    if mode == "vmap" and index is None:
        check_vmappable(runs)
    todo = runs if index is None else [runs[sweep_index(index, len(runs), {})]]
    pending = [run for run in todo if not is_finished(run, workdir)]
    logging.info(
        "sweep of %d configs in %s: %d to train (%s), %d finished",
        len(runs),
        workdir,
        len(pending),
        mode,
        len(todo) - len(pending),
    )
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
                    failures.update(vmapped.train_vmapped(group, workdir))
                except _FAILURES as err:
                    failures.update({r.name: f"failed: {err}" for r in group})
    return write_results(runs, workdir, failures)


def final_state(run: Run, workdir, dataset=None) -> tuple[build.Experiment, Any]:
    """(experiment, last checkpointed TrainState) of ``run`` in ``<workdir>/<name>``
    (``load_run``; FileNotFoundError if it has no checkpoint)."""
    loaded = load_run(pathlib.Path(workdir) / run.name, dataset=dataset)
    return loaded.experiment, loaded.state


def fit_sweep(
    base: ml_collections.ConfigDict,
    sweep: Sequence[Mapping[str, Any]],
    workdir,
    *,
    mode: str = "vmap",
    dataset=None,
) -> list[tuple[Run, build.Experiment, Any]]:
    """``run_sweep`` for notebooks: trains (or resumes) every config, raises if one
    failed, and returns (run, experiment, final params) per config, in sweep order."""
    rows = run_sweep(base, sweep, workdir, mode=mode)
    failed = {r["name"]: r["status"] for r in rows if r["status"] != "done"}
    if failed:
        raise RuntimeError(f"Sweep configs did not finish: {failed}")
    out = []
    for run in make_runs(base, sweep):
        exp, state = final_state(run, workdir, dataset)
        out.append((run, exp, state.params))
    return out
