"""vae_jax vs PyTorch on ``vae_mnist``: test negative ELBO after the same training.

Acceptance check: after 10 epochs, vae_jax's test negative ELBO (nats per image,
single-sample estimate averaged over the 10,000 test images) is within 1 nat of the
same model trained the same way in PyTorch (``scripts/_torch_vae.py``).

  python scripts/torch_reference.py --workdir=~/runs/torch_reference
  python scripts/torch_reference.py --workdir=/tmp/ref --epochs=1 --skip_torch

Both sides: MLP 784-400-20 VAE, Bernoulli likelihood, analytic KL, one z per example,
Adam(1e-3), batch 128, the 60,000 MNIST training images dynamically binarized
(a fresh Bernoulli sample every step), reshuffled every epoch, ragged last batch
dropped; evaluated on ONE fixed binarization of the test set, computed by vae_jax
(``Experiment.eval_sets``) and handed to both. vae_jax trains through its library
path (``loop.train_and_evaluate``); initialisation follows each framework's
defaults (flax: lecun_normal weights, zero biases; torch: Kaiming-uniform weights
and uniform biases), so the two runs differ by init and random streams only.

Wall times: vae_jax's include compilation, checkpoints and evaluation; torch's its
training and evaluation. torch uses all cores (--torch_threads=0); on a machine whose
load exceeds its cores pass --torch_threads=1, as OpenMP's spin-waiting can then make
each multi-threaded step ~50x slower. Writes ``torch_reference.json`` (overwritten)
and appends one Markdown table row to ``torch_reference.md`` in --workdir. Needs
torch (``pip install torch``; not a vae_jax dependency).
"""

from __future__ import annotations

import datetime
import json
import os
import pathlib
import tempfile
import time

from absl import app, flags, logging

_EPOCHS = flags.DEFINE_integer("epochs", 10, "Training epochs for both frameworks.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 128, "Training batch size B.")
_LEARNING_RATE = flags.DEFINE_float("learning_rate", 1e-3, "Adam learning rate.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of both runs (and of the test bits).")
_WORKDIR = flags.DEFINE_string("workdir", None, "Results directory (outside the repo).")
_DATA_DIR = flags.DEFINE_string(
    "data_dir", "", "MNIST directory; '' = vae_jax's search."
)
_SKIP_JAX = flags.DEFINE_bool("skip_jax", False, "Do not train the vae_jax model.")
_SKIP_TORCH = flags.DEFINE_bool("skip_torch", False, "Do not train the torch model.")
_THREADS = flags.DEFINE_integer("torch_threads", 0, "torch threads; 0 = all cores.")
flags.mark_flags_as_required(["workdir"])

TOLERANCE = 1.0  # nats per image


def make_config():
    """experiments/configs/vae_mnist.py with this script's flags applied."""
    from vae_jax.configs import vae_mnist

    config = vae_mnist.get_config()
    config.seed = _SEED.value
    config.data.data_dir = _DATA_DIR.value
    config.train.num_epochs = _EPOCHS.value
    config.train.batch_size = _BATCH_SIZE.value
    config.optim.learning_rate = _LEARNING_RATE.value
    config.train.write_figures = False
    return config


def run_jax(config, workdir: pathlib.Path) -> dict:
    """Trains and evaluates with ``loop.train_and_evaluate`` in a fresh subdirectory."""
    from vae_jax import loop

    run_dir = tempfile.mkdtemp(prefix="vae_jax_", dir=workdir)  # never resume
    start = time.perf_counter()
    final = loop.train_and_evaluate(config, run_dir)
    return _row("vae_jax", final, time.perf_counter() - start)


def run_torch(config, exp) -> dict:
    """Trains the torch twin on the same train split, evaluates on the same test bits."""
    import _torch_vae

    threads = _torch_vae.set_threads(_THREADS.value)
    logging.info("torch %s, %d threads", _torch_vae.torch.__version__, threads)
    final, seconds = _torch_vae.train_and_evaluate(
        exp.dataset.train,
        exp.eval_sets()["test"],
        epochs=config.train.num_epochs,
        batch_size=config.train.batch_size,
        learning_rate=config.optim.learning_rate,
        seed=config.seed,
        log=logging.info,
    )
    return _row("pytorch", final, seconds)


def _row(framework: str, final: dict, seconds: float) -> dict:
    """ "loss": the test -ELBO (nats per image), "recon", "kl"."""
    return {
        "framework": framework,
        "loss": -float(final["test/elbo"]),
        **{k: float(final[f"test/{k}"]) for k in ("recon", "kl")},
        "seconds": seconds,
    }


def print_table(rows: list[dict]) -> None:
    print(
        f"\n{'framework':<10} {'test -ELBO':>11} {'recon':>9} {'KL':>8} {'wall s':>8}"
    )
    for r in rows:
        print(
            f"{r['framework']:<10} {r['loss']:>11.3f} {r['recon']:>9.3f} "
            f"{r['kl']:>8.3f} {r['seconds']:>8.1f}"
        )


def compare(rows: list[dict]) -> dict:
    """{"diff": jax - torch nats, "within_tolerance": |diff| <= 1} if both ran."""
    if len(rows) < 2:
        return {}
    diff = rows[0]["loss"] - rows[1]["loss"]
    return {"diff": diff, "within_tolerance": abs(diff) <= TOLERANCE}


def write_results(
    workdir: pathlib.Path, config, rows: list[dict], result: dict
) -> None:
    """torch_reference.json (this run) and a Markdown row appended to .md."""
    from vae_jax import writer

    stamp = datetime.datetime.now().isoformat(timespec="seconds")
    record = {
        "time": stamp,
        "epochs": config.train.num_epochs,
        "seed": config.seed,
        "batch_size": config.train.batch_size,
        "torch_threads": _THREADS.value or os.cpu_count(),
        "rows": rows,
        **result,
    }
    (workdir / "torch_reference.json").write_text(json.dumps(record, indent=2) + "\n")
    md = workdir / "torch_reference.md"
    if not md.exists():
        header = ["time", "epochs", "seed", "vae_jax", "pytorch", "diff", "ok"]
        md.write_text(writer.markdown_table(header, []) + "\n")
    losses = {r["framework"]: f"{r['loss']:.3f}" for r in rows}
    cells = [
        stamp,
        config.train.num_epochs,
        config.seed,
        losses.get("vae_jax", "-"),
        losses.get("pytorch", "-"),
        f"{result['diff']:+.3f}" if result else "-",
        result.get("within_tolerance", "-"),
    ]
    with md.open("a") as f:
        f.write(writer.markdown_row(cells) + "\n")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if not _SKIP_TORCH.value:
        import _torch_vae  # noqa: F401  fail early if torch is missing
    from vae_jax import build, runtime

    runtime.configure()
    workdir = pathlib.Path(_WORKDIR.value).expanduser()
    workdir.mkdir(parents=True, exist_ok=True)
    config = make_config()
    exp = build.build_experiment(config)  # data + test bits, shared by both
    rows = [] if _SKIP_JAX.value else [run_jax(config, workdir)]
    rows += [] if _SKIP_TORCH.value else [run_torch(config, exp)]
    result = compare(rows)
    print_table(rows)
    if result:
        ok = "yes" if result["within_tolerance"] else "NO"
        print(
            f"difference vae_jax - pytorch: {result['diff']:+.3f} nats; "
            f"|diff| <= {TOLERANCE:g}: {ok}"
        )
    write_results(workdir, config, rows, result)
    print(
        f"results: {workdir / 'torch_reference.json'}, {workdir / 'torch_reference.md'}"
    )


if __name__ == "__main__":
    app.run(main)
