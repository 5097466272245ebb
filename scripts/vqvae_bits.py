"""Reconstruction at a matched code size: VQ-VAE against a plain autoencoder.

A VQ-VAE code is N indices into a codebook of M entries: N log2 M bits (van den Oord
et al. 2017, §3.1). A plain AE's code is K float32 numbers, 32 K bits; the same size
is K = N log2 M / 32 floats (rounded down, at least 1). Both use the conv trunk and
decoder of ``configs.vqvae_fashion`` and train for the same steps; the AE is also run
at K = N (one float per code vector, 32 / log2 M times the bits) as an upper
reference. Trains each with ``loop.train_and_evaluate`` in ``<workdir>/<name>`` and
prints its test squared error per pixel:

  nice -n 19 python scripts/vqvae_bits.py --workdir=/tmp/vqvae_bits --steps=600
"""

from __future__ import annotations

import argparse
import json
import math
import os

from vae_jax import loop
from vae_jax.configs import vqvae_fashion


def _configs(steps: int):
    """(name, code bits, config) of the VQ-VAE and the two autoencoders."""
    base = vqvae_fashion.get_config()
    base.train.update(num_steps=steps, log_every=max(steps // 4, 1), eval_every=0)
    base.train.update(checkpoint_every=steps, write_figures=False)
    n, m = base.model.num_latents, base.model.codebook_size
    vq_bits = n * math.log2(m)
    runs = [("vqvae", vq_bits, base)]
    for k in (max(int(vq_bits // 32), 1), n):
        ae = base.copy_and_resolve_references()
        ae.model.update(kind="ae", latent_dim=k)
        ae.objective.name = "mse"
        runs.append((f"ae_k{k}", 32 * k, ae))
    return runs


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--steps", type=int, default=1000)
    args = parser.parse_args(argv)
    results = {}
    for name, bits, config in _configs(args.steps):
        final = loop.train_and_evaluate(config, os.path.join(args.workdir, name))
        results[name] = {"bits": bits, "test_mse": float(final["test/mse"])}
        print(json.dumps({name: results[name]}), flush=True)
    return results


if __name__ == "__main__":
    main()
