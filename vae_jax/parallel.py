"""Data parallelism with ``jax.sharding``: a 1-D mesh over devices, batch split along it.

Params, optimizer state and the training set are replicated; each step's batch is
constrained to ``P("data")`` so XLA's SPMD partitioner splits the per-example work
across devices and all-reduces the gradients. The program is the single-device one.
Across hosts (``initialize_distributed``) the mesh spans every process's devices:
each process loads the dataset, its devices compute their slice of every global
batch, and the gradient all-reduce crosses hosts.
"""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

DATA_AXIS = "data"
CONFIG_AXIS = "configs"  # a vmapped sweep's stacked configs


def initialize_distributed(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
) -> None:
    """``jax.distributed.initialize`` before any device is touched; None arguments are
    detected from the environment (TPU pods, Slurm, Open MPI). CPU processes talk
    through gloo collectives (a multi-process CPU run, e.g. to test on one machine)."""
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        coordinator_address=coordinator_address,
        num_processes=num_processes,
        process_id=process_id,
    )


def is_primary() -> bool:
    """Whether this process writes the run's files (process 0; always on one host)."""
    return jax.process_index() == 0


def any_process(flag: bool) -> bool:
    """True if ``flag`` is True on any process: one small all-gather across hosts, so
    every process takes the same branch (e.g. stop on a signal one host received)."""
    if jax.process_count() == 1:
        return bool(flag)
    from jax.experimental import multihost_utils

    return bool(np.any(multihost_utils.process_allgather(np.asarray(flag))))


def data_mesh(devices=None) -> Mesh:
    """A 1-D mesh named ``"data"`` over ``devices`` (default: all devices)."""
    devices = jax.devices() if devices is None else devices
    return Mesh(np.asarray(devices), (DATA_AXIS,))


def use_data_parallel(mode: str, batch_size: int) -> bool:
    """Whether to shard: ``"auto"`` does when more than one device is present."""
    count = jax.device_count()
    if mode not in ("auto", "on", "off"):
        raise ValueError(f"train.data_parallel={mode!r}; choose auto, on or off.")
    wanted = mode == "on" or (mode == "auto" and count > 1)
    if wanted and batch_size % count:
        raise ValueError(
            f"train.batch_size={batch_size} must be divisible by the {count} devices "
            "for data-parallel training."
        )
    return wanted


def replicated(mesh: Mesh) -> NamedSharding:
    """Every device holds the whole array (params, optimizer state, dataset)."""
    return NamedSharding(mesh, PartitionSpec())


def batch_sharded(mesh: Mesh) -> NamedSharding:
    """Leading (batch) axis split over the ``"data"`` axis: [B, ...] -> [B / n, ...] each."""
    return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def config_mesh(mode: str, num_configs: int, devices=None) -> Mesh | None:
    """A 1-D mesh ``"configs"`` splitting a vmapped sweep's C configs over devices.

    ``"auto"`` / ``"on"``: the largest n <= the device count that divides C, so each
    device trains C / n whole configs and no data moves between them; None when n = 1
    or ``mode="off"``.
    """
    if mode not in ("auto", "on", "off"):
        raise ValueError(f"train.data_parallel={mode!r}; choose auto, on or off.")
    devices = jax.devices() if devices is None else devices
    if mode == "off":
        return None
    n = max(d for d in range(1, len(devices) + 1) if num_configs % d == 0)
    return None if n == 1 else Mesh(np.asarray(devices[:n]), (CONFIG_AXIS,))


def config_sharded(mesh: Mesh) -> NamedSharding:
    """Leading (config) axis split over ``"configs"``: [C, ...] -> [C / n, ...] each."""
    return NamedSharding(mesh, PartitionSpec(CONFIG_AXIS))
