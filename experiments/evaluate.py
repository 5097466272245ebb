"""Evaluates a finished run: ELBO, test NLL = -L_k, active units, reconstruction
error, sample quality (``vae_jax.evaluate_run``); writes <workdir>/eval/<split>.json.

  python -m experiments.evaluate --workdir=~/runs/quickstart
  python -m experiments.evaluate --workdir=~/runs/vae2d --nll_samples=500 --export_latents
"""

import os

from absl import app, flags

from experiments import common_flags

_WORKDIR, _CACHE = common_flags.define_workdir_and_cache(
    "Workdir of a run experiments.run trained."
)
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step; default the newest.")
_SPLIT = flags.DEFINE_enum("split", "test", ["train", "valid", "test"], "Split.")
_NLL = flags.DEFINE_integer(
    "nll_samples", 5000, "k of L_k (0 = no NLL).", lower_bound=0
)
_ELBO = flags.DEFINE_integer("elbo_samples", 1, "S of the ELBO.", lower_bound=1)
_BATCH = flags.DEFINE_integer(
    "batch_size",
    None,
    "Images per batch; default the run's eval_batch_size (ELBO) and 20 (L_k, as "
    "scripts/reproduce_iwae.py: its keys depend on it).",
    lower_bound=1,
)
_LATENTS = flags.DEFINE_bool(
    "export_latents", False, "Write eval/latents.npz (means, logvars, labels)."
)
_NO_QUALITY = flags.DEFINE_bool(
    "no_sample_quality", False, "Skip the Frechet distance / IS of the samples."
)
_CLASSIFIER_CACHE = flags.DEFINE_string(
    "classifier_cache",
    None,
    "Feature classifiers; default ~/.cache/vae_jax/classifiers.",
)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    from vae_jax import checkpoint, evaluate_run, runs, runtime  # after flags

    if _CACHE.value is not None:
        os.environ[runtime.CACHE_ENV] = _CACHE.value
    runtime.configure()
    with common_flags.one_line_errors(ValueError, OSError, checkpoint.CheckpointError):
        run = runs.load_run(os.path.expanduser(_WORKDIR.value), _STEP.value)
        result = evaluate_run.evaluate_run(
            run,
            _SPLIT.value,
            nll_samples=_NLL.value,
            elbo_samples=_ELBO.value,
            batch_size=_BATCH.value,
            sample_quality=not _NO_QUALITY.value,
            classifier_cache=_CLASSIFIER_CACHE.value,
        )
        path = evaluate_run.result_path(run, _SPLIT.value, _STEP.value)
        written = [path, *evaluate_run.write_figures(run, _SPLIT.value, path.parent)]
        if _LATENTS.value:
            written.append(path.parent / "latents.npz")
            evaluate_run.export_latents(run, written[-1], _BATCH.value)
        evaluate_run.write_json(result, path)
    print(evaluate_run.summary(result))
    print("  written        " + ", ".join(str(p) for p in written))


if __name__ == "__main__":
    common_flags.run(main)
