"""Everything a run needs, built from a config: data, model, objective, optimizer."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from vae_jax import (
    config_checks,
    evaluate,
    models,
    objectives,
    optim,
    parallel,
    tc_objectives,
    train,
    vq_objectives,
)
from vae_jax import data as data_lib

BIAS_INIT_FOLD = 7  # fold_in(keys["init"], .) for model.bias_init = "torch_default"


@dataclasses.dataclass(frozen=True)
class Experiment:
    """A run's pieces. ``train_x`` lives on the device; the rest are pure functions."""

    config: ml_collections.ConfigDict
    dataset: data_lib.Dataset
    model: nn.Module
    loss_one: objectives.LossOne
    hparams_fn: Callable
    tx: object
    keys: dict[str, jax.Array]
    total_steps: int
    steps_per_epoch: int
    train_x: jax.Array
    mesh: jax.sharding.Mesh | None = None  # data-parallel mesh, or None on one device

    def init_state(self) -> train.TrainState:
        """A fresh TrainState for this experiment's model and optimizer."""
        example = jnp.zeros((self.dataset.input_dim,), jnp.float32)
        state = train.create_train_state(
            self.model, self.tx, example, self.keys["init"], self.keys["train"]
        )
        if self.config.model.bias_init == "torch_default":
            key = jax.random.fold_in(self.keys["init"], BIAS_INIT_FOLD)
            params = models.with_torch_default_biases(state.params, key)
            state = state.replace(params=params)
        if self.config.model.output_bias == "data_mean":
            images = self.dataset.images(self.dataset.train)
            bias = models.output_bias_from_data(images)  # Burda et al. 2015
            state = state.replace(params=models.with_output_bias(state.params, bias))
        return (
            state
            if self.mesh is None
            else jax.device_put(state, parallel.replicated(self.mesh))
        )

    def chunk_runner(self) -> train.ChunkRunner:
        """Scan-fused training chunks over ``train_x`` (see ``train.ChunkRunner``)."""
        step_fn = train.make_step_fn(self.loss_one, self.hparams_fn, self.binarize)
        return train.ChunkRunner(
            step_fn,
            self.train_x,
            self.config.train.batch_size,
            self.keys["data"],
            steps_per_dispatch=self.config.train.steps_per_dispatch,
            batch_sharding=self.batch_sharding,
            order_sharding=None
            if self.mesh is None
            else parallel.replicated(self.mesh),
        )

    @property
    def batch_sharding(self) -> jax.sharding.Sharding | None:
        return None if self.mesh is None else parallel.batch_sharded(self.mesh)

    @property
    def binarize(self) -> bool:
        return self.config.data.binarize == "dynamic"

    def eval_sets(self) -> dict[str, np.ndarray]:
        """Validation and test arrays; dynamically binarized runs see one fixed sample."""
        sets = {"valid": self.dataset.valid, "test": self.dataset.test}
        sets = {name: x for name, x in sets.items() if len(x)}
        if self.binarize:
            return {
                name: evaluate.fixed_binarization(
                    x, jax.random.fold_in(self.keys["eval"], i)
                )
                for i, (name, x) in enumerate(sets.items())
            }
        return sets


def load_data(config: ml_collections.ConfigDict) -> data_lib.Dataset:
    """The dataset named by ``config.data`` (found, checksummed and split)."""
    valid_size = None if config.data.valid_size < 0 else config.data.valid_size
    dataset = data_lib.load_dataset(
        config.data.name,
        data_dir=config.data.data_dir or None,
        valid_size=valid_size,
        seed=config.seed,
        download=config.data.download,
    )
    if config.data.center:  # linear AE = PCA needs centred data
        dataset, _ = data_lib.center_dataset(dataset)
    return dataset


def build_experiment(
    config: ml_collections.ConfigDict, dataset: data_lib.Dataset | None = None
) -> Experiment:
    """Validates ``config`` (before any compile), loads data and builds the pieces."""
    config_checks.validate_config(config)
    dataset = dataset if dataset is not None else load_data(config)
    if models.is_conditional(config.model) and not dataset.condition_dim:
        dataset = data_lib.with_one_hot_labels(dataset, config.model.num_classes)
    config_checks.validate_against_data(config, dataset.image_shape, dataset.binary)
    batch_size = config.train.batch_size
    num_train = dataset.train.shape[0]
    if num_train < batch_size:
        raise ValueError(
            f"config.train.batch_size={batch_size} exceeds the {num_train} training examples."
        )
    steps_per_epoch = num_train // batch_size
    # beta_tcvae's N (Chen et al. 2018): tc_dataset_size = 0 is this training set's size
    config = tc_objectives.with_dataset_size(config, num_train)
    total = config.train.num_steps or config.train.num_epochs * steps_per_epoch
    sigma = config.objective.sigma or None
    mesh = None
    if parallel.use_data_parallel(config.train.data_parallel, batch_size):
        mesh = parallel.data_mesh()
    model = models.build_model(
        config.model,
        likelihood=config.objective.likelihood,
        image_shape=dataset.image_shape,
        sigma=sigma,
    )
    model = vq_objectives.with_count_probe(config.objective, model)  # EMA codebook
    ema_decay = vq_objectives.codebook_ema_decay(config.objective)
    return Experiment(
        config=config,
        dataset=dataset,
        model=model,
        loss_one=objectives.make_objective(config, model),
        hparams_fn=objectives.make_hparams(config),
        tx=optim.make_optimizer(
            config.optim, total, steps_per_epoch, codebook_ema_decay=ema_decay
        ),
        keys=train.split_root_key(config.seed),
        total_steps=int(total),
        steps_per_epoch=steps_per_epoch,
        train_x=jax.device_put(
            dataset.train, None if mesh is None else parallel.replicated(mesh)
        ),
        mesh=mesh,
    )
