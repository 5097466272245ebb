"""Disentanglement on a procedural dSprites-like data set, scored by the mutual
information gap (MIG; Chen, Li, Grosse & Duvenaud 2018, §4.1, eq. 6).

``sprites``: binary 32 x 32 images of one white shape on black, rendered analytically
from five independent factors on a grid (like dSprites, Matthey et al. 2017, at half
the resolution): shape {square, ellipse, triangle}, scale (6 values, half-width 0.08
to 0.16 of the image side), rotation (10 values k 2 pi / 10), x- and y-position of
the centre (16 values each, 0.2 to 0.8 of the side). In the shape's own frame (unit
half-width) the square is |x|, |y| <= 0.8, the ellipse has semi-axes 1 and 0.5 and
the equilateral triangle is inscribed in the unit circle; a pixel is on when its
centre, rotated by -theta about the shape's centre and divided by the scale, lies
inside (no anti-aliasing). Each example draws every factor uniformly and
independently; rotation is identifiable only modulo the shape's symmetry (square
pi/2, ellipse pi, triangle 2 pi/3), as in dSprites.

``mig``: for each factor v_k, the gap between the two latents with the largest
mutual information I(z_j; v_k), divided by the factor's entropy H(v_k), averaged over
factors (eq. 6). As in disentanglement_lib's ``mig`` (Locatello et al. 2019), z_j
are the posterior means, discretised into 20 equal-width bins over their range, and
the mutual information is that of the empirical joint histogram (Chen et al.
integrate q(z_j | x) instead).

    python -m vae_jax.studies.disentanglement --steps=5000 --tc_beta 1 6 --seed 0 1 2

trains the plain VAE (tc_beta = 1, objective ``elbo``) and beta-TCVAE (beta = 6) on
20,000 sprites and prints each run's MIG on 2,000 test sprites.
"""

from __future__ import annotations

import numpy as np

from vae_jax import data as data_lib

SHAPES = ("square", "ellipse", "triangle")
FACTOR_NAMES = ("shape", "scale", "rotation", "x", "y")
FACTOR_SIZES = (3, 6, 10, 16, 16)  # values per factor
IMAGE_SIDE = 32
_SCALES = np.linspace(0.5, 1.0, FACTOR_SIZES[1])  # of the shape's half-width 0.16
_HALF_WIDTH = 0.16  # of the largest shape, as a fraction of the image side
_POSITIONS = np.linspace(0.2, 0.8, FACTOR_SIZES[3])  # shape centres (image = [0, 1])


def _inside(shape: int, px: np.ndarray, py: np.ndarray) -> np.ndarray:
    """Whether (px, py), in the shape's own frame (unit size), lies inside it: the
    square |x|, |y| <= 0.8; the ellipse with semi-axes 1 and 0.5; the equilateral
    triangle inscribed in the unit circle, one vertex on +y."""
    if shape == 0:
        return np.maximum(np.abs(px), np.abs(py)) <= 0.8
    if shape == 1:
        return px**2 + (py / 0.5) ** 2 <= 1.0
    inside = np.ones(px.shape, bool)
    for angle in (np.pi / 2, np.pi / 2 + 2 * np.pi / 3, np.pi / 2 + 4 * np.pi / 3):
        # the edge opposite each vertex: inside where the projection on the
        # direction away from that vertex is below the inradius 1/2
        inside &= -(px * np.cos(angle) + py * np.sin(angle)) <= 0.5
    return inside


def render(factors: np.ndarray) -> np.ndarray:
    """Images of factor indices ``factors: [N, 5]`` (shape, scale, rotation, x, y;
    each in range(FACTOR_SIZES[k])) -> float32 [N, 32 * 32] in {0, 1}."""
    factors = np.asarray(factors)
    centres = (np.arange(IMAGE_SIDE) + 0.5) / IMAGE_SIDE
    u, v = np.meshgrid(centres, centres)  # u: column (x), v: row (y, down)
    out = np.zeros((len(factors), IMAGE_SIDE * IMAGE_SIDE), np.float32)
    for i, (shape, scale, rot, x, y) in enumerate(factors):
        size = _HALF_WIDTH * _SCALES[scale]
        theta = 2 * np.pi * rot / FACTOR_SIZES[2]
        dx, dy = u - _POSITIONS[x], v - _POSITIONS[y]
        px = (np.cos(theta) * dx + np.sin(theta) * dy) / size  # rotate by -theta
        py = (-np.sin(theta) * dx + np.cos(theta) * dy) / size
        out[i] = _inside(int(shape), px, py).reshape(-1)
    return out


def sample_factors(rng: np.random.Generator, num: int) -> np.ndarray:
    """``num`` factor-index vectors [num, 5], each factor uniform and independent."""
    return np.stack([rng.integers(0, n, num) for n in FACTOR_SIZES], axis=1)


def sprites(
    num_train: int = 20000, num_test: int = 2000, seed: int = 0
) -> tuple[data_lib.Dataset, np.ndarray, np.ndarray]:
    """(a ``data.Dataset`` of rendered sprites with train / test splits and no
    validation split, train factors [N, 5], test factors [Nt, 5])."""
    rng = np.random.default_rng(seed)
    f_train, f_test = sample_factors(rng, num_train), sample_factors(rng, num_test)
    x_train, x_test = render(f_train), render(f_test)
    dataset = data_lib.Dataset(
        "sprites",
        x_train,
        x_train[:0],
        x_test,
        None,
        None,
        None,
        (IMAGE_SIDE, IMAGE_SIDE),
        binary=True,
    )
    return dataset, f_train, f_test


# ------------------------------------------------------------------------ MIG
def discretize(codes: np.ndarray, num_bins: int = 20) -> np.ndarray:
    """Each column of ``codes: [N, K]`` into ``num_bins`` equal-width bins over its
    range (disentanglement_lib's ``_histogram_discretize``) -> int [N, K]."""
    codes = np.asarray(codes, np.float64)
    out = np.zeros(codes.shape, np.int64)
    for j in range(codes.shape[1]):
        edges = np.histogram_bin_edges(codes[:, j], num_bins)
        out[:, j] = np.digitize(codes[:, j], edges[1:-1])
    return out


def entropy(labels: np.ndarray) -> float:
    """H(v) = -sum_v p(v) log p(v) of the empirical distribution, nats."""
    p = np.unique(labels, return_counts=True)[1] / len(labels)
    return float(-np.sum(p * np.log(p)))


def mutual_information(a: np.ndarray, b: np.ndarray) -> float:
    """I(a; b) = sum p(a, b) log [p(a, b) / (p(a) p(b))] of the empirical joint of
    two integer label vectors [N], nats."""
    _, ia = np.unique(a, return_inverse=True)
    _, ib = np.unique(b, return_inverse=True)
    joint = np.zeros((ia.max() + 1, ib.max() + 1))
    np.add.at(joint, (ia, ib), 1.0)
    joint /= len(a)
    outer = joint.sum(1, keepdims=True) * joint.sum(0, keepdims=True)
    nz = joint > 0
    return float(np.sum(joint[nz] * np.log(joint[nz] / outer[nz])))


def mig(codes: np.ndarray, factors: np.ndarray, num_bins: int = 20) -> dict:
    """MIG = (1/F) sum_k (I(z_j(k); v_k) - max_{j != j(k)} I(z_j; v_k)) / H(v_k),
    j(k) = argmax_j I(z_j; v_k) (Chen et al. 2018, eq. 6), on codes discretised by
    ``discretize``. codes: [N, K] (K >= 2), factors: [N, F] int ->
    {"mig", "per_factor" [F], "mi" [K, F] nats, "entropy" [F] nats}."""
    codes, factors = np.asarray(codes), np.asarray(factors)
    if codes.ndim != 2 or codes.shape[1] < 2 or len(codes) != len(factors):
        raise ValueError(
            f"mig needs codes [N, K >= 2] and factors [N, F]; got {codes.shape}, "
            f"{factors.shape}"
        )
    binned = discretize(codes, num_bins)
    mi = np.array(
        [
            [
                mutual_information(binned[:, j], factors[:, k])
                for k in range(factors.shape[1])
            ]
            for j in range(codes.shape[1])
        ]
    )  # [K, F]
    h = np.array([entropy(factors[:, k]) for k in range(factors.shape[1])])
    top = np.sort(mi, axis=0)[::-1]  # [K, F], descending per factor
    per_factor = (top[0] - top[1]) / h
    return {
        "mig": float(per_factor.mean()),
        "per_factor": per_factor,
        "mi": mi,
        "entropy": h,
    }


__all__ = [
    "FACTOR_NAMES",
    "FACTOR_SIZES",
    "SHAPES",
    "discretize",
    "entropy",
    "mig",
    "mutual_information",
    "render",
    "sample_factors",
    "sprites",
]


# ------------------------------------------------------------------ training
def sprites_config(tc_beta: float, num_steps: int, seed: int = 0):
    """An MLP VAE 1024-256-256-10 with a Bernoulli likelihood (Chen et al. 2018 use
    1200-1200 on dSprites), Adam 1e-3, batch 256: objective ``elbo`` at tc_beta = 1,
    else ``beta_tcvae`` with that beta (N = the training set)."""
    from vae_jax.configs import default

    config = default.get_config()
    config.seed = seed
    config.model.hidden = (256, 256)
    config.model.latent_dim = 10
    config.objective.name = "elbo" if tc_beta == 1 else "beta_tcvae"
    config.objective.tc_beta = float(tc_beta)
    config.train.batch_size = 256
    config.train.num_steps = num_steps
    config.train.steps_per_dispatch = min(200, num_steps)
    return config


def train_and_score(config, dataset, test_factors) -> dict:
    """Trains ``config`` on ``dataset`` (``train.ChunkRunner``) and returns the MIG of
    the test split's posterior means with the last steps' mean metrics."""
    import jax

    from vae_jax import build

    exp = build.build_experiment(config, dataset)
    state, metrics = exp.chunk_runner().run(exp.init_state(), exp.total_steps)
    codes = np.asarray(jax.jit(exp.model.code)(state.params, dataset.test))
    tail = {k: float(np.mean(np.asarray(v)[-50:])) for k, v in metrics.items()}
    return {**mig(codes, test_factors), "train": tail}


def main(argv=None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--tc_beta", type=float, nargs="+", default=[1.0, 6.0])
    parser.add_argument("--seed", type=int, nargs="+", default=[0])
    parser.add_argument("--num_train", type=int, default=20000)
    args = parser.parse_args(argv)
    dataset, _, test_factors = sprites(args.num_train, 2000, seed=0)
    for seed in args.seed:
        for beta in args.tc_beta:
            out = train_and_score(
                sprites_config(beta, args.steps, seed), dataset, test_factors
            )
            per = " ".join(
                f"{n} {v:.3f}" for n, v in zip(FACTOR_NAMES, out["per_factor"])
            )
            train = " ".join(f"{k} {v:.2f}" for k, v in sorted(out["train"].items()))
            print(
                f"tc_beta {beta:g} seed {seed}: MIG {out['mig']:.3f} ({per}) | {train}"
            )


if __name__ == "__main__":
    main()
