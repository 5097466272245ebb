"""Trains an autoencoder or VAE from a config file; resumes from --workdir.

  python -m experiments.run --config=experiments/configs/quickstart.py \
      --workdir=~/runs/quickstart --config.model.latent_dim=2
  python -m experiments.run --config=experiments/configs/vae_mnist.py --list_fields
  python -m experiments.run --list_models

Runs on whatever XLA backend JAX finds (CPU, GPU or TPU) with no code change.
"""

import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from experiments import common_flags

_CONFIGS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs")
_LIST_FIELDS = flags.DEFINE_bool(
    "list_fields",
    False,
    "Print every config field (after the --config.* overrides) with its value, type "
    "and comment, and exit without training (no --workdir needed).",
)
_LIST_MODELS = flags.DEFINE_bool(
    "list_models",
    False,
    "Print every registered model family (config.model.kind) with the objectives "
    "it trains with, and exit (no --workdir needed).",
)
_WORKDIR, _CACHE = common_flags.define_workdir_and_cache(
    "Directory for checkpoints, metrics, figures.",
    not_required_with=("list_fields", "list_models"),
)
config_flags.DEFINE_config_file(
    "config", os.path.join(_CONFIGS, "quickstart.py"), "Config file.", lock_config=True
)
_DISTRIBUTED = flags.DEFINE_bool(
    "distributed",
    False,
    "Multi-host: call jax.distributed.initialize() first (TPU pods, Slurm, Open MPI "
    "detect the rest; elsewhere give the three flags below). Every process runs this "
    "same command; process 0 writes metrics and figures.",
)
_COORDINATOR = flags.DEFINE_string(
    "coordinator_address", None, "host:port of process 0 (with --distributed)."
)
_NUM_PROCESSES = flags.DEFINE_integer(
    "num_processes", None, "Processes in all (with --distributed)."
)
_ALLOW_CHANGE = flags.DEFINE_bool(
    "allow_config_change",
    False,
    "Resume a run whose config differs from its config.json in fields other than "
    "seed, data and model (those never change mid-run); the change is recorded in "
    "<workdir>/config_history.jsonl.",
)
_PROCESS_ID = flags.DEFINE_integer(
    "process_id", None, "This process's index, 0-based (with --distributed)."
)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if _LIST_FIELDS.value:
        from vae_jax import config_fields

        config_file = config_flags.get_config_filename(flags.FLAGS["config"])
        print("\n".join(config_fields.describe_fields(flags.FLAGS.config, config_file)))
        return
    if _LIST_MODELS.value:
        from vae_jax import models

        print("\n".join(models.describe_families()))
        return
    from vae_jax import (  # after flags
        checkpoint,
        loop,
        parallel,
        preemption,
        runtime,
        workdir_lock,
    )

    if _DISTRIBUTED.value:
        parallel.initialize_distributed(
            _COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value
        )
    if _CACHE.value is not None:  # children of a process-mode sweep inherit it
        os.environ[runtime.CACHE_ENV] = _CACHE.value
    runtime.configure()  # INFO logs, no orbax per-save records, Agg, compile cache
    clean = (
        ValueError,
        OSError,
        checkpoint.CheckpointError,
        loop.NonFiniteLossError,
        workdir_lock.WorkdirLockedError,
    )
    try:
        with common_flags.one_line_errors(*clean):  # bad input: one line
            loop.train_and_evaluate(
                flags.FLAGS.config,
                os.path.expanduser(_WORKDIR.value),
                allow_config_change=_ALLOW_CHANGE.value,
            )
    except preemption.Preempted as stop:
        logging.warning("%s", stop)
        sys.exit(0)


if __name__ == "__main__":
    common_flags.run(main)
