"""A finished run loaded back from its workdir: its config, experiment, model, the
state of one checkpoint, its data splits, and jitted functions bound to its params.

  run = runs.load_run("~/runs/quickstart")     # newest checkpoint; step= picks another
  z = run.encode(run.test)                     # [N, K] posterior means
  x = run.sample(16, jax.random.key(0))        # [16, D] E[x|z], z ~ p(z)
  ll = run.log_likelihood(run.eval_split("test"), 5000)  # [N] L_5000, nats

Every function reaches the model through the protocol of ``vae_jax.models``, so it
works for every registered family; a latent-variable method called on an autoencoder
raises ``NotImplementedError`` saying so. Outputs are NumPy arrays on the host.
"""

from __future__ import annotations

import dataclasses
import pathlib
from collections.abc import Callable, Iterator
from typing import Any

import jax
import ml_collections
import numpy as np

from vae_jax import (
    batching,
    build,
    checkpoint,
    early_stopping,
    evaluate,
    models,
    objectives,
    train,
    writer,
)
from vae_jax import data as data_lib
from vae_jax.configs import default

TRAIN_BINARIZATION_FOLD = 100  # eval_split("train") of a dynamically binarized run
LOG_LIKELIHOOD_FOLD = 5000  # fold_in(keys["eval"], 5000): evaluate_model's L_k key
_NO_LIKELIHOOD = "has no likelihood (it is not a latent-variable model)"


def map_batches(fn: Callable, params, x, batch_size: int) -> np.ndarray:
    """``fn(params, xb [B, ...])`` over the rows of ``x: [N, ...]`` in batches of
    B = ``batch_size``, the last one zero-padded: any N works, and one compile serves
    every N. Returns the rows' outputs [N, ...] on the host."""
    x = np.asarray(x, np.float32)
    if len(x) == 0:
        raise ValueError(f"Got no rows: x has shape {x.shape}.")
    xb, _ = batching.pad_to_batches(x, batch_size)
    outputs = jax.device_get([fn(params, batch) for batch in xb])  # one sync
    return np.concatenate(outputs)[: len(x)]


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class Run:
    """A run as ``loop.train_and_evaluate`` left it in ``workdir``, at one checkpoint.

    ``experiment`` is ``build.build_experiment`` of the run's ``config.json`` (same
    data, model, objective and PRNG keys), ``state`` the restored ``TrainState``.
    ``train`` / ``valid`` / ``test`` are the splits as loaded ([N, D] in [0, 1]);
    ``eval_split(name)`` is a split as the run scores it (one fixed Bernoulli sample
    when ``data.binarize = "dynamic"``: the likelihood functions want that one).

    Shapes: N examples, D pixels, K latent dims (z1 for two stochastic layers).
    ``batch_size`` arguments default to ``config.train.eval_batch_size`` (20 for
    ``log_likelihood``, as ``evaluate.evaluate_model``). ``exp, state = run`` still
    unpacks as the (experiment, state) pair ``load_run`` used to return.
    """

    workdir: pathlib.Path
    experiment: build.Experiment
    state: train.TrainState
    _cache: dict = dataclasses.field(default_factory=dict, init=False)  # fns, splits

    # ------------------------------------------------------------------ what it is
    @property
    def config(self) -> ml_collections.ConfigDict:
        return self.experiment.config

    @property
    def model(self):
        """The Flax module (``vae_jax.models`` protocol)."""
        return self.experiment.model

    @property
    def params(self):
        return self.state.params

    @property
    def step(self) -> int:
        """The checkpoint's global step."""
        return int(self.state.step)

    @property
    def family(self) -> str:
        """The registry name of the model (``models.family_name``), e.g. "vae"."""
        return models.family_name(self.config.model)

    @property
    def keys(self) -> dict[str, jax.Array]:
        """The run's PRNG keys (``train.split_root_key(config.seed)``)."""
        return self.experiment.keys

    @property
    def dataset(self) -> data_lib.Dataset:
        return self.experiment.dataset

    @property
    def train(self) -> np.ndarray:
        """Training images [N, D], as loaded."""
        return self.dataset.train

    @property
    def valid(self) -> np.ndarray:
        """Validation images [Nv, D] (may be empty)."""
        return self.dataset.valid

    @property
    def test(self) -> np.ndarray:
        """Test images [Nt, D]."""
        return self.dataset.test

    @property
    def train_labels(self) -> np.ndarray | None:
        return self.dataset.train_labels

    @property
    def valid_labels(self) -> np.ndarray | None:
        return self.dataset.valid_labels

    @property
    def test_labels(self) -> np.ndarray | None:
        return self.dataset.test_labels

    @property
    def latent(self) -> bool:
        """True for latent-variable families (``elbo_terms`` and ``log_weights``)."""
        return all(_has(self.model, m) for m in ("elbo_terms", "log_weights"))

    @property
    def generative(self) -> bool:
        """True if p(z) can be sampled (the protocol's ``generative``)."""
        return bool(getattr(self.model, "generative", False))

    @property
    def conditional(self) -> bool:
        """True for families conditioned on labels (``conditional_latents``)."""
        return _has(self.model, "conditional_latents")

    def labels(self, split: str) -> np.ndarray | None:
        """Labels [N] int32 of split "train", "valid" or "test", or None."""
        _check_split(split)
        return getattr(self.dataset, f"{split}_labels")

    def eval_split(self, split: str) -> np.ndarray:
        """Split "train", "valid" or "test" as the run scores it: [N, D], the images as
        loaded, or with ``data.binarize = "dynamic"`` one fixed Bernoulli sample of
        them (valid / test: the sample of ``experiment.eval_sets()``, which the run's
        recorded metrics use; train: keyed ``fold_in(keys["eval"], 100)``)."""
        _check_split(split)
        if ("split", split) not in self._cache:
            x = getattr(self.dataset, split)
            if self.experiment.binarize and len(x):
                if split == "train":
                    key = jax.random.fold_in(self.keys["eval"], TRAIN_BINARIZATION_FOLD)
                    x = evaluate.fixed_binarization(x, key)
                else:
                    x = self.experiment.eval_sets()[split]
            self._cache["split", split] = x
        return self._cache["split", split]

    # ------------------------------------------------------------------ all families
    def encode(self, x, batch_size: int | None = None) -> np.ndarray:
        """Posterior means E_q[z|x] (an autoencoder's code f(x)): x [N, D] -> [N, K]
        (the protocol's ``code``)."""
        return self._map("code", self._rows(x), batch_size)

    def decode(self, z, batch_size: int | None = None) -> np.ndarray:
        """Decoder means E[x|z] (an autoencoder's g(z)): z [N, K] -> [N, D]
        (``decode_mean``)."""
        return self._map("decode_mean", np.asarray(z, np.float32), batch_size)

    def reconstruct(self, x, batch_size: int | None = None) -> np.ndarray:
        """E[x | z = E_q[z|x]] (an autoencoder's g(f(x))): x [N, D] -> [N, D]."""
        return self._map("reconstruct", self._rows(x), batch_size)

    # --------------------------------------------------------- latent-variable families
    def posterior_logvar(self, x, batch_size: int | None = None) -> np.ndarray:
        """log Var_q[z_k|x] (marginal variances of a Gaussian q): x [N, D] -> [N, K].
        Families without the optional protocol method ``posterior_logvar`` raise."""
        has = _has(self.model, "posterior_logvar")
        self._require(has, "posterior_logvar", "has no Gaussian q(z|x)")
        return self._map("posterior_logvar", self._rows(x), batch_size)

    def sample(self, n: int, key: jax.Array) -> np.ndarray:
        """Decoder means E[x|z] of n draws z ~ p(z): [n, D] (``sample_latents``, then
        ``decode_mean``)."""
        self._require(self.generative, "sample", "has no prior p(z) to sample")
        fn = self._cached(
            "sample_latents",
            lambda: jax.jit(self.model.sample_latents, static_argnums=2),
        )
        return self.decode(fn(self.params, key, int(n)))

    def sample_given(self, labels, key: jax.Array) -> np.ndarray:
        """A conditional family's decoder means E[x|z, y_s], z ~ p(z), one per label:
        labels [n] ints -> [n, D] (``conditional_latents``, then ``decode_mean``)."""
        self._require(self.conditional, "sample_given", "is not conditioned on labels")
        fn = self._cached(
            "conditional_latents", lambda: jax.jit(self.model.conditional_latents)
        )
        return self.decode(fn(self.params, key, np.asarray(labels, np.int32)))

    def elbo_terms(
        self,
        x,
        key: jax.Array | None = None,
        num_samples: int = 1,
        batch_size: int | None = None,
    ) -> dict[str, np.ndarray]:
        """Per-example ELBO and its parts, nats: {"elbo", "recon", "kl"}, each [N].

        elbo = -(recon + kl), recon = -(1/S) sum_s log p(x|z_s) with S = ``num_samples``
        draws z_s ~ q(z|x), kl = KL(q(z|x) || p(z)) in closed form where the family has
        one (the protocol's ``elbo_terms``). x: [N, D], batched as ``make_eval_fn``
        batches: batch b uses ``fold_in(key, b)`` split B ways. With the defaults (key =
        ``keys["eval"]``, ``config.train.eval_batch_size``) and S =
        ``objective.num_samples`` the mean over ``eval_split(s)`` is the run's recorded
        ``s/elbo`` for an "elbo" objective (to float32 rounding of the mean).
        """
        self._require(self.latent, "elbo_terms", _NO_LIKELIHOOD)
        fn = self._cached(
            ("elbo", int(num_samples)),
            lambda: evaluate.make_per_example_fn(
                objectives.negative_elbo_for(self.model, int(num_samples)),
                {"beta": 1.0},
            ),
        )
        key = self.keys["eval"] if key is None else key
        values = evaluate.per_example_values(
            fn, self.params, self._rows(x), self._batch(batch_size), key
        )
        return {k: values[k] for k in ("elbo", "recon", "kl")}

    def elbo(
        self,
        x,
        key: jax.Array | None = None,
        num_samples: int = 1,
        batch_size: int | None = None,
    ) -> np.ndarray:
        """Per-example ELBO estimate [N] in nats (``elbo_terms(...)["elbo"]``)."""
        return self.elbo_terms(x, key, num_samples, batch_size)["elbo"]

    def log_likelihood(
        self,
        x,
        k: int,
        key: jax.Array | None = None,
        *,
        chunk_size: int = 500,
        batch_size: int = 20,
        log_every: int = 0,
    ) -> np.ndarray:
        """Per-example importance-weighted bound L_k(x) <= log p(x), nats: x [N, D] ->
        [N] float64 (Burda et al. 2015, eq. 8; ``evaluate.log_likelihoods`` over the
        protocol's ``log_weights``). The key (default ``fold_in(keys["eval"], 5000)``),
        ``batch_size`` and ``chunk_size`` defaults are ``evaluate.evaluate_model``'s:
        -mean is its (and ``scripts/reproduce_iwae.py``'s) ``nll`` for the same x, k.
        ``log_every`` > 0 logs progress every that many batches.
        """
        self._require(self.latent, "log_likelihood", _NO_LIKELIHOOD)
        fn = self._cached(
            ("log_likelihood", int(k), int(chunk_size)),
            lambda: evaluate.make_log_likelihood_fn(
                self.model.log_weights, int(k), int(chunk_size)
            ),
        )
        if key is None:
            key = jax.random.fold_in(self.keys["eval"], LOG_LIKELIHOOD_FOLD)
        return evaluate.log_likelihoods(
            fn, self.params, self._rows(x), batch_size, key, log_every
        )

    # ------------------------------------------------------------------ plumbing
    def __iter__(self) -> Iterator[Any]:
        """``exp, state = load_run(...)``: the (experiment, state) pair ``load_run``
        returned before it returned a ``Run``, for callers not yet updated."""
        return iter((self.experiment, self.state))

    def __repr__(self) -> str:
        return (
            f"Run({str(self.workdir)!r}, step={self.step}, model={self.family!r}, "
            f"objective={self.config.objective.name!r}, "
            f"dataset={self.dataset.name!r})"
        )

    def _batch(self, batch_size: int | None) -> int:
        return int(batch_size or self.config.train.eval_batch_size)

    def _rows(self, x) -> np.ndarray:
        x = np.asarray(x, np.float32)
        width = self.dataset.input_dim
        if x.ndim != 2 or x.shape[1] != width:
            labels = self.dataset.condition_dim
            what = f"images and {labels} one-hot label columns" if labels else "images"
            raise ValueError(f"Expected {what} x: [N, {width}], got shape {x.shape}.")
        return x

    def _cached(self, name, make: Callable) -> Callable:
        if name not in self._cache:
            self._cache[name] = make()
        return self._cache[name]

    def _map(self, method: str, x: np.ndarray, batch_size: int | None) -> np.ndarray:
        fn = self._cached(method, lambda: jax.jit(getattr(self.model, method)))
        return map_batches(fn, self.params, x, self._batch(batch_size))

    def _require(self, supported: bool, method: str, why: str) -> None:
        if not supported:
            raise NotImplementedError(
                f"Run.{method}: the {self.family!r} model of {self.workdir} {why}."
            )


def _has(model, method: str) -> bool:
    return callable(getattr(model, method, None))


def _check_split(split: str) -> None:
    if split not in ("train", "valid", "test"):
        raise ValueError(f"Unknown split {split!r}; choose train, valid or test.")


def load_run(
    workdir: str | pathlib.Path,
    step: int | None = None,
    *,
    dataset: data_lib.Dataset | None = None,
) -> Run:
    """The run ``loop.train_and_evaluate`` wrote in ``workdir``, as a ``Run``.

    Its experiment is ``build.build_experiment`` of ``<workdir>/config.json``; its
    state the checkpoint at ``step``, or the newest readable one
    (``checkpoint.restore_latest``), or for a run that stopped early the best one
    (``checkpoints_best/``, ``early_stopping``). ``dataset``: an already loaded
    dataset to use instead of loading it again.

    Raises FileNotFoundError if ``workdir`` has no config.json, no checkpoint, or none
    at ``step``; ``checkpoint.CheckpointError`` if the checkpoint does not match the
    config.
    """
    workdir = pathlib.Path(workdir).expanduser()
    if not (workdir / "config.json").is_file():
        raise FileNotFoundError(
            f"{workdir} holds no run: no config.json (loop.train_and_evaluate writes it "
            "when a run starts)."
        )
    config = writer.read_config(workdir, defaults=default.get_config())
    checkpoints = workdir / "checkpoints"
    if not checkpoints.is_dir():  # checked first: make_manager would create it
        raise FileNotFoundError(f"The run in {workdir} has no checkpoints/ directory.")
    manager = checkpoint.make_manager(
        checkpoints, config.train.keep_checkpoints, move_aside=False
    )
    if not manager.all_steps():
        raise FileNotFoundError(f"The run in {workdir} has no checkpoint yet.")
    exp = build.build_experiment(config, dataset)
    # The state's structure without initialising it (seconds of op-by-op dispatch);
    # a data-parallel run restores onto a concrete, replicated template.
    template = jax.eval_shape(exp.init_state) if exp.mesh is None else exp.init_state()
    best = early_stopping.best_dir(workdir)
    if step is None and best is not None:
        manager = checkpoint.make_manager(best, 1, move_aside=False)
    if step is None:
        state = checkpoint.restore_latest(manager, template)
    else:
        state = checkpoint.restore_step(manager, template, step)
    if state is None:
        raise FileNotFoundError(f"The run in {workdir} has no readable checkpoint.")
    return Run(workdir, exp, state)
