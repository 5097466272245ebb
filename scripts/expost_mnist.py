"""Ex-post sampling on MNIST (Ghosh et al. 2020, §4-5): a K = 20 plain autoencoder and
an RAE-L2, decoded from z ~ N(0, I) and from a 10-component Gaussian mixture fitted
to their training codes, scored by the Frechet distance in the feature space of
``studies.sample_quality``'s MNIST classifier (NOT Inception FID; lower is better).

  nice -n 19 python scripts/expost_mnist.py --workdir /tmp/expost_mnist [--epochs 2]

Trains both models with ``loop.train_and_evaluate`` in ``<workdir>/{ae,rae}``
(resumable; a finished run is reused), then writes ``results.json`` there and prints
one line per (model, sampler). ``--two_stage`` adds Dai & Wipf's second-stage VAE.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import time

import numpy as np

from vae_jax import loop, runs, runtime
from vae_jax.configs import ae_mnist, rae_mnist
from vae_jax.studies import expost


def configs(epochs: int) -> dict:
    """The two models: MLP 784-512-256-20, batch 100, ``epochs`` passes, no figures."""
    out = {"ae": ae_mnist.get_config(), "rae": rae_mnist.get_config()}
    for config in out.values():
        config.model.update(hidden=(512, 256), latent_dim=20)
        config.train.update(batch_size=100, num_epochs=epochs, write_figures=False)
        config.train.update(log_every=500, checkpoint_every=100_000)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", required=True, type=pathlib.Path)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--num_samples", type=int, default=5000)
    parser.add_argument("--two_stage", action="store_true")
    args = parser.parse_args()
    runtime.configure()
    results = {}
    for name, config in configs(args.epochs).items():
        start = time.time()
        final = loop.train_and_evaluate(config, str(args.workdir / name))
        run = runs.load_run(args.workdir / name)
        codes = expost.training_codes(run)
        samplers = {"normal": expost.fit_normal(codes), "gmm": expost.fit_gmm(codes)}
        if args.two_stage:
            samplers["two_stage"] = expost.fit_two_stage(
                codes, expost.two_stage_config(20, hidden=(256, 256), num_steps=3000)
            )
        results[name] = {
            "test_mse": final["test/mse"],
            "code_std_mean": float(np.mean(codes.std(0))),
            "code_norm_mean": float(np.mean(np.linalg.norm(codes, axis=1))),
            "seconds": time.time() - start,
        }
        for kind, sampler in samplers.items():
            scores = expost.sample_quality(run, sampler, num_samples=args.num_samples)
            results[name][kind] = scores
            print(
                f"{name:4s} {kind:9s} FD {scores['frechet_distance']:9.2f} "
                f"(real-vs-real {scores['frechet_distance_data']:.2f}) "
                f"IS {scores['inception_score']:.2f} | test mse {final['test/mse']:.4f}"
            )
    (args.workdir / "results.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
