"""Trains a sweep of configs: a grid from --sweep, or get_sweep() of the config file.

  python -m experiments.sweep --config=experiments/configs/quickstart.py \
      --workdir=~/runs/sweep --sweep='optim.learning_rate=1e-3,3e-4;objective.beta=0.5,1,2'

Config <name> trains in <workdir>/<name>; <workdir>/results.{csv,md,png} tabulate them.
--mode=vmap: one XLA program (configs differing in numeric hyper-parameters only);
--mode=process: one process per config (--max_workers, or --sweep_index /
$SLURM_ARRAY_TASK_ID for array jobs); auto: vmap on GPU/TPU, process on CPU.
Finished configs are skipped, unfinished ones resume from their checkpoints.
"""

import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from experiments import common_flags

_CONFIGS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs")
_WORKDIR, _CACHE = common_flags.define_workdir_and_cache(
    "Sweep root: <workdir>/<name> per config."
)
_SWEEP = flags.DEFINE_string(
    "sweep",
    None,
    "'field=v1,v2;field2=v3,...' (cartesian product); "
    "default: get_sweep() of the config file.",
)
_MODE = flags.DEFINE_enum("mode", "auto", ["auto", "vmap", "process"], "How to train.")
_MAX_WORKERS = flags.DEFINE_integer(
    "max_workers", 1, "Processes at once (process mode); 1: one after another here."
)
_INDEX = flags.DEFINE_integer(
    "sweep_index",
    None,
    "Train only config i (array jobs); default $SLURM_ARRAY_TASK_ID.",
)
_LIST = flags.DEFINE_bool(
    "list", False, "Print the configs with their indices and exit."
)
config_flags.DEFINE_config_file(
    "config", os.path.join(_CONFIGS, "quickstart.py"), "Config file.", lock_config=True
)


def _sweep(spec, config):
    """Override dicts from --sweep, else from the config file's get_sweep()."""
    if _SWEEP.value:
        return spec.parse_sweep(_SWEEP.value, config)
    path = config_flags.get_config_filename(flags.FLAGS["config"])
    overrides = spec.load_get_sweep(path)
    if overrides is None:
        raise ValueError(
            f"No sweep: pass --sweep='field=v1,v2;...' or define get_sweep() in {path}."
        )
    return overrides


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if _MAX_WORKERS.value > 1:  # processes share the GPU: allocate on demand
        os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    # Imported after flag parsing.
    from vae_jax import preemption, runtime, workdir_lock
    from vae_jax.sweep import launch, results, spec

    if _CACHE.value is not None:  # children of a process-mode sweep inherit it
        os.environ[runtime.CACHE_ENV] = _CACHE.value
    runtime.configure()  # INFO logs, no orbax per-save records, Agg, compile cache
    workdir, config = os.path.expanduser(_WORKDIR.value), flags.FLAGS.config
    try:
        with common_flags.one_line_errors(  # bad input: one line
            ValueError, OSError, workdir_lock.WorkdirLockedError
        ):
            overrides = _sweep(spec, config)
            if _LIST.value:
                for i, run in enumerate(spec.make_runs(config, overrides)):
                    done = " (finished)" if results.is_finished(run, workdir) else ""
                    print(f"{i}\t{run.name}{done}")
                return
            index = spec.sweep_index(_INDEX.value, len(overrides))
            rows = launch.run_sweep(
                config,
                overrides,
                workdir,
                mode=_MODE.value,
                max_workers=_MAX_WORKERS.value,
                index=index,
            )
    except preemption.Preempted as stop:
        logging.warning("%s", stop)
        sys.exit(0)
    failed = [
        f"{r['name']}: {r['status']}" for r in rows if r["status"].startswith("failed")
    ]
    if failed:
        logging.error("%d configs failed:\n  %s", len(failed), "\n  ".join(failed))
        sys.exit(1)
    logging.info("results: %s", os.path.join(workdir, "results.md"))


if __name__ == "__main__":
    common_flags.run(main)
