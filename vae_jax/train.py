"""Training state, jitted steps, scan-fused multi-step chunks and evaluation.

PRNG: ``jax.random.key(seed)`` -> (init, train, data, eval) keys. Step ``s`` uses
``fold_in(train_key, s)`` and batch ``s % (N // B)`` of epoch ``s // (N // B)``'s
permutation (``data.epoch_batches(data_key, epoch, ...)``),
so a run resumed from a checkpoint at step ``s`` repeats an uninterrupted run.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax.training import train_state

from vae_jax import data as data_lib
from vae_jax import objectives


class TrainState(train_state.TrainState):
    """flax TrainState (step, params, opt_state) plus ``key``: the train PRNG key."""

    key: jax.Array


def split_root_key(seed: int) -> dict[str, jax.Array]:
    """The four independent key streams of a run, derived from ``seed`` alone."""
    names = ("init", "train", "data", "eval")
    return dict(zip(names, jax.random.split(jax.random.PRNGKey(seed), len(names))))


def create_train_state(
    model: nn.Module,
    tx,
    example_x: jax.Array,
    init_key: jax.Array,
    train_key: jax.Array,
) -> TrainState:
    """Initial state; ``example_x: [D]`` fixes the input size."""
    params = model.init(init_key, example_x)
    return TrainState(
        step=jnp.asarray(0, jnp.int32),
        apply_fn=model.apply,
        params=params,
        tx=tx,
        opt_state=tx.init(params),
        key=jnp.copy(train_key),  # donated with the state: keep the caller's key alive
    )


def make_step_fn(
    loss_one: objectives.LossOne,
    hparams_fn: Callable[[jax.Array], Mapping[str, jax.Array]],
    binarize: bool = False,
) -> Callable:
    """Pure step(state, batch [B, D]) -> (state, metrics); un-jitted, for composition.

    A step whose loss or gradients are not finite leaves params and optimizer state
    unchanged and reports ``nonfinite = 1``: the check costs no host sync.
    """
    batch_loss = objectives.batch_mean(loss_one)

    def step(state: TrainState, batch):
        binarize_key, loss_key = jax.random.split(
            jax.random.fold_in(state.key, state.step)
        )
        if binarize:
            batch = data_lib.dynamic_binarize(binarize_key, batch)
        hparams = hparams_fn(state.step)
        grad_fn = jax.value_and_grad(batch_loss, has_aux=True)
        (loss, aux), grads = grad_fn(state.params, batch, loss_key, hparams)
        grad_norm = optax.tree_utils.tree_norm(grads)
        # Any inf/nan in the gradients makes their norm non-finite: one reduction.
        finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
        state = jax.lax.cond(
            finite,
            lambda s: s.apply_gradients(grads=grads),
            lambda s: s.replace(step=s.step + 1),
            state,
        )
        metrics = {"loss": loss, **aux, "grad_norm": grad_norm}
        return state, {**metrics, "nonfinite": 1 - finite.astype(jnp.int32)}

    return step


def make_train_step(loss_one, hparams_fn, binarize: bool = False) -> Callable:
    """Jitted step(state, batch [B, D]) -> (state, metrics) with the state donated."""
    return jax.jit(make_step_fn(loss_one, hparams_fn, binarize), donate_argnums=0)


def make_train_chunk(
    step_fn: Callable,
    *,
    num_steps: int,
    batch_sharding: jax.sharding.Sharding | None = None,
) -> Callable:
    """Jitted chunk(state, train_x [N, D], batches [N // B, B]) -> (state, metrics [T]).

    Runs T = ``num_steps`` steps in one XLA call with ``lax.scan``; step ``s`` trains
    on ``train_x[batches[s % (N // B)]]``, gathered on device, where ``batches`` is
    the epoch's order (``EpochBatches``). The chunk must not cross the epoch's end.
    With ``batch_sharding`` (see ``parallel.py``) each batch is split across devices.
    """

    def batch_at(train_x, idx):
        batch = train_x[idx]
        if batch_sharding is not None:
            batch = jax.lax.with_sharding_constraint(batch, batch_sharding)
        return batch

    def chunk(state, train_x, batches):
        start = state.step % batches.shape[0]
        indices = jax.lax.dynamic_slice_in_dim(batches, start, num_steps)  # [T, B]
        return jax.lax.scan(
            lambda s, idx: step_fn(s, batch_at(train_x, idx)), state, indices
        )

    return jax.jit(chunk, donate_argnums=0)


class EpochBatches:
    """step -> the batch order [N // B, B] of the epoch holding ``step``, on device.

    ``data.epoch_batches(data_key, epoch, N, B)``, computed once per epoch (not per
    chunk): the order depends only on (data_key, step), so resumed runs repeat.
    ``order_fn(data_key, epoch)``, if given, replaces it (e.g. vmapped over keys [C]
    -> orders [C, N // B, B]); ``sharding`` applies to the default only.
    """

    def __init__(
        self,
        data_key,
        num_examples: int,
        batch_size: int,
        sharding=None,
        *,
        order_fn: Callable[[jax.Array, int], jax.Array] | None = None,
    ):
        self.steps_per_epoch = num_examples // batch_size
        if order_fn is None:
            order = functools.partial(
                data_lib.epoch_batches, num_examples=num_examples, batch_size=batch_size
            )
            order_fn = jax.jit(order, out_shardings=sharding)
        elif sharding is not None:
            raise ValueError("EpochBatches: pass sharding or order_fn, not both.")
        self._order = order_fn
        self._key, self._epoch, self._batches = data_key, None, None

    def steps_left(self, step: int) -> int:
        """Steps from ``step`` to the end of its epoch."""
        return self.steps_per_epoch - step % self.steps_per_epoch

    def __call__(self, step: int) -> jax.Array:
        epoch = step // self.steps_per_epoch
        if epoch != self._epoch:
            self._epoch, self._batches = epoch, self._order(self._key, epoch)
        return self._batches


class ChunkRunner:
    """Trains in scan-fused chunks over a device-resident ``train_x [N, D]``.

    ``runner(state, step, n) -> (state, metrics [n] each)`` runs n steps from global
    ``step`` in one XLA call (n <= ``max_steps(step)``: chunks stop at epoch ends);
    ``runner.run(state, n)`` trains n steps in chunks of at most ``steps_per_dispatch``.
    One compile per distinct n; each epoch's order is computed once.
    """

    def __init__(
        self,
        step_fn: Callable,
        train_x: jax.Array,
        batch_size: int,
        data_key: jax.Array,
        *,
        steps_per_dispatch: int = 100,
        batch_sharding: jax.sharding.Sharding | None = None,
        order_sharding: jax.sharding.Sharding | None = None,
    ):
        self.train_x, self.steps_per_dispatch = train_x, steps_per_dispatch
        self._step_fn, self._batch_sharding = step_fn, batch_sharding
        self._order = EpochBatches(
            data_key, train_x.shape[0], batch_size, order_sharding
        )
        self._chunks: dict[int, Callable] = {}

    def max_steps(self, step: int) -> int:
        """Most steps one chunk may run from ``step``: to the end of its epoch."""
        return self._order.steps_left(step)

    def __call__(self, state: TrainState, step: int, num_steps: int):
        if not 1 <= num_steps <= self.max_steps(step):
            raise ValueError(f"{num_steps} steps from step {step} cross an epoch end.")
        if num_steps not in self._chunks:
            self._chunks[num_steps] = make_train_chunk(
                self._step_fn, num_steps=num_steps, batch_sharding=self._batch_sharding
            )
        return self._chunks[num_steps](state, self.train_x, self._order(step))

    def run(self, state: TrainState, num_steps: int):
        """``num_steps`` steps from ``state.step``; returns (state, last chunk's metrics)."""
        step, end, metrics = int(state.step), int(state.step) + num_steps, None
        while step < end:
            n = min(self.steps_per_dispatch, self.max_steps(step), end - step)
            state, metrics = self(state, step, n)
            step += n
        return state, metrics


def median_epoch_seconds(seconds: Sequence[float]) -> float | None:
    """Median wall time of an epoch from per-epoch ``seconds`` [E], leaving out the
    first of a process (it compiles) when there are others; None if none ran."""
    return float(np.median(seconds[1:] or seconds)) if seconds else None
