"""One contender of ``benchmark.py --end_to_end``, as a user would run it: a fresh
process that loads MNIST, trains the 784-400-20 VAE (Bernoulli likelihood on
continuous intensities, Adam 1e-3, batch 128) for ``--epochs`` and evaluates the
single-sample test -ELBO. Prints one JSON line: {"contender", "test_loss", "seconds"}.

  python scripts/_end_to_end.py --contender=pythae --epochs=10
  python scripts/_end_to_end.py --contender=torch_eager --epochs=10

pythae and torch are optional (never vae_jax dependencies): ``pip install pythae``.
vae_jax itself is timed through its runner (``python -m experiments.run``) by
``benchmark.py``; this file holds the PyTorch contenders.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import time

START = time.perf_counter()  # the whole process, imports included


def mnist_intensities():
    """vae_jax's MNIST as ``vae_mnist`` splits it (all 60,000 training images, the
    10,000 test images), [N, 784] in [0, 1]: every contender sees the same images."""
    from vae_jax import data

    dataset = data.load_dataset("mnist", valid_size=0)
    return dataset.train, dataset.test


def run_pythae(train_x, test_x, epochs: int, workdir: str) -> float:
    """Pythae 0.1.2's ``TrainingPipeline`` with a custom 784-400-20 MLP encoder and
    decoder (ReLU, sigmoid output, BCE summed over pixels): its VAE loss is the
    single-sample -ELBO. Returns the test -ELBO (nats per image)."""
    import _pythae_zoo
    import torch
    from pythae.models import VAE, VAEConfig
    from pythae.pipelines import TrainingPipeline
    from pythae.trainers import BaseTrainerConfig

    encoder, decoder = _pythae_zoo.networks("VAE", 784, 400, 20)
    config = VAEConfig(input_dim=(784,), latent_dim=20, reconstruction_loss="bce")
    model = VAE(config, encoder=encoder, decoder=decoder)
    training = BaseTrainerConfig(
        output_dir=workdir,
        num_epochs=epochs,
        learning_rate=1e-3,
        per_device_train_batch_size=128,
        per_device_eval_batch_size=500,
        optimizer_cls="Adam",
        no_cuda=True,
        seed=0,
    )
    pipeline = TrainingPipeline(training_config=training, model=model)
    pipeline(train_data=train_x, eval_data=None)
    model.eval()
    losses = []
    with torch.no_grad():
        for start in range(0, len(test_x), 500):
            x = torch.tensor(test_x[start : start + 500])
            losses.append(float(model({"data": x}).loss) * len(x))
    return sum(losses) / len(test_x)


def run_torch_eager(train_x, test_x, epochs: int) -> float:
    """The plain PyTorch eager loop of ``_torch_vae.py``; returns the test -ELBO."""
    import _torch_vae

    _torch_vae.set_threads(0)
    metrics, _ = _torch_vae.train_and_evaluate(
        train_x,
        test_x,
        epochs=epochs,
        batch_size=128,
        learning_rate=1e-3,
        seed=0,
        log=lambda *_: None,
    )
    return -metrics["test/elbo"]


# ------------------------------------------------------------------ the harness
SCRIPT = pathlib.Path(__file__).resolve()


def _vae_jax_command(workdir: pathlib.Path, epochs: int) -> list[str]:
    """The runner exactly as a user types it (``vae_mnist``, continuous MNIST)."""
    from vae_jax import configs

    return [
        sys.executable,
        "-m",
        "experiments.run",
        f"--workdir={workdir}",
        f"--config={configs.config_path('vae_mnist')}",
        "--config.data.binarize=none",
        f"--config.train.num_epochs={epochs}",
    ]


def _timed(command: list[str], env: dict) -> tuple[float, str]:
    """Wall seconds of ``command`` as a fresh process, and its stdout."""
    start = time.perf_counter()
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if out.returncode:
        raise RuntimeError(f"{command[:4]} failed:\n{out.stderr[-3000:]}")
    return seconds, out.stdout


def _final_test_loss(workdir: pathlib.Path) -> float:
    from vae_jax import writer

    records = writer.read_metrics(workdir / "metrics.jsonl")
    return -[r for r in records if "test/elbo" in r][-1]["test/elbo"]  # -ELBO


def end_to_end(
    root: pathlib.Path,
    *,
    rounds: int = 3,
    epochs: int = 10,
    torch_python: str = sys.executable,
) -> dict:
    """Whole-process wall time and test -ELBO of each contender, alternated in
    ``rounds``: vae_jax's runner with a cold compilation cache (emptied before each
    round) and a warm one, Pythae's ``TrainingPipeline`` and the torch eager loop
    (both run by ``torch_python``). Returns per-contender medians and ratios."""
    cold, warm = root / "cache_cold", root / "cache_warm"
    base_env = {**os.environ}
    results: dict[str, list[tuple[float, float]]] = {}
    for i in range(rounds):
        for name in ("vae_jax_cold", "vae_jax_warm", "pythae", "torch_eager"):
            workdir = root / f"{name}_{i}"
            shutil.rmtree(workdir, ignore_errors=True)
            if name.startswith("vae_jax"):
                cache = cold if name == "vae_jax_cold" else warm
                if name == "vae_jax_cold":
                    shutil.rmtree(cold, ignore_errors=True)
                env = {**base_env, "VAE_JAX_COMPILATION_CACHE": str(cache)}
                if name == "vae_jax_warm" and not warm.exists():  # fill it once
                    _timed(_vae_jax_command(root / "warmup", epochs), env)
                seconds, _ = _timed(_vae_jax_command(workdir, epochs), env)
                loss = _final_test_loss(workdir)
            else:
                command = [
                    torch_python,
                    str(SCRIPT),
                    f"--contender={name}",
                    f"--epochs={epochs}",
                    f"--workdir={workdir}",
                ]
                seconds, stdout = _timed(command, base_env)
                loss = json.loads(stdout.strip().splitlines()[-1])["test_loss"]
            results.setdefault(name, []).append((seconds, loss))
            print(
                f"round {i} {name}: {seconds:.1f} s, test -ELBO {loss:.2f}", flush=True
            )
    summary = {
        name: {
            "median_seconds": statistics.median(s for s, _ in runs),
            "test_loss": statistics.median(loss for _, loss in runs),
            "seconds": [s for s, _ in runs],
        }
        for name, runs in results.items()
    }
    for name in ("vae_jax_cold", "vae_jax_warm"):
        for other in ("pythae", "torch_eager"):
            ratio = summary[other]["median_seconds"] / summary[name]["median_seconds"]
            summary[name][f"speedup_vs_{other}"] = ratio
    return summary


def sweep_cold_and_warm(root: pathlib.Path, epochs: int = 2) -> dict:
    """An 8-config process-mode sweep of ``vae_mnist`` (``epochs`` each), run twice
    into fresh workdirs: with an empty compilation cache, then with the cache the
    first run filled. Returns both wall times and their ratio."""
    from vae_jax import configs

    cache = root / "sweep_cache"
    shutil.rmtree(cache, ignore_errors=True)
    env = {**os.environ, "VAE_JAX_COMPILATION_CACHE": str(cache)}
    seconds = {}
    for name in ("cold", "warm"):
        workdir = root / f"sweep_{name}"
        shutil.rmtree(workdir, ignore_errors=True)
        command = [
            sys.executable,
            "-m",
            "experiments.sweep",
            f"--workdir={workdir}",
            f"--config={configs.config_path('vae_mnist')}",
            "--mode=process",
            "--config.data.binarize=none",
            f"--config.train.num_epochs={epochs}",
            "--sweep=objective.beta=0.5,1,2,4;optim.learning_rate=1e-3,3e-4",
            "--max_workers=2",
        ]
        seconds[name], _ = _timed(command, env)
        print(f"sweep {name}: {seconds[name]:.1f} s", flush=True)
    return {**seconds, "speedup": seconds["cold"] / seconds["warm"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--contender", choices=["pythae", "torch_eager"], required=True)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--workdir", default="/tmp/vae_jax_end_to_end")
    args = parser.parse_args()
    train_x, test_x = mnist_intensities()
    if args.contender == "pythae":
        loss = run_pythae(train_x, test_x, args.epochs, args.workdir)
    else:
        loss = run_torch_eager(train_x, test_x, args.epochs)
    seconds = time.perf_counter() - START
    print(
        json.dumps({"contender": args.contender, "test_loss": loss, "seconds": seconds})
    )


if __name__ == "__main__":
    main()
