"""Training state, jitted steps and device-side multi-step chunks.

PRNG: ``jax.random.key(seed)`` -> (init, train, data, eval) keys. Step ``s`` uses
``fold_in(train_key, s)`` and batch ``s % (N // B)`` of epoch ``s // (N // B)``'s
permutation (``batching.epoch_batches(data_key, epoch, ...)``),
so a run resumed from a checkpoint at step ``s`` repeats an uninterrupted run.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax.training import train_state

from vae_jax import batching, objectives


class TrainState(train_state.TrainState):
    """flax TrainState (step, params, opt_state) plus ``key``: the train PRNG key."""

    key: jax.Array

    def param_updates(self, grads):
        """(updates, new opt_state) of ``grads``: the optimizer's step, not applied."""
        return self.tx.update(grads, self.opt_state, self.params)

    def apply_gradients(self, *, grads, **kwargs):
        updates, opt_state = self.param_updates(grads)
        params = optax.apply_updates(self.params, updates)
        return self.replace(
            step=self.step + 1, params=params, opt_state=opt_state, **kwargs
        )


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

    Metrics (batch means): ``objective``, the value minimised (beta-weighted for a
    beta-VAE, with any batch penalty), the objective's own terms (``elbo`` at beta = 1,
    ``recon``, ``kl``; ``mse`` for autoencoders; ...), ``grad_norm`` and ``nonfinite``.
    A step whose objective or gradients are not finite leaves params and optimizer
    state unchanged and reports ``nonfinite = 1``: the check costs no host sync.
    """
    batch_loss = objectives.batch_mean(loss_one)

    def step(state: TrainState, batch):
        binarize_key, loss_key = jax.random.split(
            jax.random.fold_in(state.key, state.step)
        )
        if binarize:
            batch = batching.dynamic_binarize(binarize_key, batch)
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
        metrics = {"objective": loss, **aux, "grad_norm": grad_norm}
        return state, {**metrics, "nonfinite": 1 - finite.astype(jnp.int32)}

    return step


def _all_finite(tree) -> jax.Array:
    """True iff every element of every leaf of ``tree`` is finite (no overflow, unlike
    a norm)."""
    leaves = [jnp.isfinite(x).all() for x in jax.tree.leaves(tree)]
    return jnp.stack(leaves).all() if leaves else jnp.asarray(True)


def make_train_step(loss_one, hparams_fn, binarize: bool = False) -> Callable:
    """Jitted step(state, batch [B, D]) -> (state, metrics) with the state donated."""
    return jax.jit(make_step_fn(loss_one, hparams_fn, binarize), donate_argnums=0)


def make_train_chunk(
    step_fn: Callable,
    *,
    max_steps: int,
    batch_sharding: jax.sharding.Sharding | None = None,
) -> Callable:
    """Jitted chunk(state, train_x [N, D], orders [E, N // B, B], first_epoch,
    num_steps) -> (state, metrics [max_steps] each).

    Runs ``num_steps`` (traced, 1..``max_steps``) steps in one XLA while loop, so one
    program serves every chunk length; step ``s`` trains on ``train_x[orders[e, p]]``
    with e = s // (N // B) - first_epoch, p = s % (N // B): chunks may cross epoch
    ends (``EpochOrders`` holds the E epochs a chunk can reach). Metrics rows past
    ``num_steps`` are zeros; ``nonfinite_state`` is 1 at the chunk's last step if the
    parameters or optimizer state then hold NaN or inf. With ``batch_sharding``
    (``parallel.py``) each batch is split across devices. ``max_steps=1`` compiles
    one step and no loop: XLA:CPU runs convolutions about 6x slower inside a loop
    body (jax-ml/jax#12868), so conv configs dispatch one step at a time.
    """

    def chunk(state, train_x, orders, first_epoch, num_steps):
        steps_per_epoch = orders.shape[-2]

        def batch_at(step):
            idx = orders[step // steps_per_epoch - first_epoch, step % steps_per_epoch]
            batch = train_x[idx]  # [B, D], gathered on device
            if batch_sharding is not None:
                batch = jax.lax.with_sharding_constraint(batch, batch_sharding)
            return batch

        def body(i, carry):
            state, rows = carry
            state, metrics = step_fn(state, batch_at(state.step))
            return state, jax.tree.map(lambda r, m: r.at[i].set(m), rows, metrics)

        if max_steps == 1:  # no loop: XLA:CPU runs convolutions ~6x slower inside one
            state, metrics = step_fn(state, batch_at(state.step))
            rows = jax.tree.map(lambda m: m[None], metrics)
        else:
            shapes = jax.eval_shape(step_fn, state, batch_at(state.step))[1]
            zeros = lambda s: jnp.zeros((max_steps, *s.shape), s.dtype)
            rows = jax.tree.map(zeros, shapes)
            state, rows = jax.lax.fori_loop(0, num_steps, body, (state, rows))
        # One reduction per chunk (a per-step one costs a third of a step): an update
        # that overflowed to inf/nan is flagged at the chunk's last step.
        bad = 1 - _all_finite((state.params, state.opt_state)).astype(jnp.int32)
        flags = jnp.zeros(max_steps, jnp.int32).at[num_steps - 1].set(bad)
        return state, {**rows, "nonfinite_state": flags}

    return jax.jit(chunk, donate_argnums=0)


class CompiledOnce:
    """A jitted function compiled ahead of its first call (``lower().compile()``,
    which JAX's persistent cache serves when it is on) and reused after; the time
    spent compiling is ``compile_seconds``, so calls time the work alone."""

    def __init__(self, jitted: Callable):
        self._jitted, self._compiled, self.compile_seconds = jitted, None, 0.0

    def __call__(self, *args):
        if self._compiled is None:
            start = time.perf_counter()
            self._compiled = self._jitted.lower(*args).compile()
            self.compile_seconds += time.perf_counter() - start
        return self._compiled(*args)


class EpochOrders:
    """step -> (first_epoch, orders [..., E, N // B, B]) of the E epochs a chunk of
    at most ``max_steps`` steps from ``step`` can reach, on device.

    Epoch e's order is ``order_fn(data_key, e)`` (default ``batching.epoch_batches``;
    vmapped over keys [C] it gives [C, N // B, B]), computed once per epoch: the
    order depends only on (data_key, step), so resumed runs repeat.
    """

    def __init__(
        self,
        data_key,
        num_examples: int,
        batch_size: int,
        max_steps: int,
        sharding=None,
        *,
        order_fn: Callable[[jax.Array, int], jax.Array] | None = None,
    ):
        self.steps_per_epoch = num_examples // batch_size
        self.span = -(-max_steps // self.steps_per_epoch) + 1  # E
        if order_fn is None:
            order = functools.partial(
                batching.epoch_batches, num_examples=num_examples, batch_size=batch_size
            )
            order_fn = jax.jit(order, out_shardings=sharding)
        elif sharding is not None:
            raise ValueError("EpochOrders: pass sharding or order_fn, not both.")
        stack = lambda *orders: jnp.stack(orders, axis=-3)
        self._stack = CompiledOnce(jax.jit(stack, out_shardings=sharding))
        self._order, self._key = CompiledOnce(order_fn), data_key
        self._epochs: dict[int, jax.Array] = {}
        self._first, self._stacked = None, None

    def __call__(self, step: int) -> tuple[int, jax.Array]:
        first = step // self.steps_per_epoch
        if first != self._first:
            wanted = range(first, first + self.span)
            self._epochs = {e: self._epochs.get(e) for e in wanted}
            for e in wanted:
                if self._epochs[e] is None:
                    self._epochs[e] = self._order(self._key, jnp.int32(e))
            self._first, self._stacked = first, self._stack(*self._epochs.values())
        return first, self._stacked

    @property
    def compile_seconds(self) -> float:
        return self._order.compile_seconds + self._stack.compile_seconds


class ChunkRunner:
    """Trains in scan-fused chunks over a device-resident ``train_x [N, D]``.

    ``runner(state, step, n) -> (state, host metrics [n] each)`` runs n <=
    ``steps_per_dispatch`` steps from global ``step`` in one XLA call, across epoch
    ends; ``runner.run(state, n)`` trains n steps in chunks of at most
    ``steps_per_dispatch`` and returns every step's metrics. One compiled program for
    every n (``compile_seconds``).
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
        orders = EpochOrders(
            data_key, train_x.shape[0], batch_size, steps_per_dispatch, order_sharding
        )
        chunk = make_train_chunk(
            step_fn, max_steps=steps_per_dispatch, batch_sharding=batch_sharding
        )
        self._use(chunk, train_x, orders, steps_per_dispatch)

    def _use(self, chunk, train_x, orders, steps_per_dispatch, place=None) -> None:
        """Runs the jitted ``chunk(state, train_x, place(orders), first_epoch, n)``;
        ``place`` (default none) puts the orders where the chunk wants them."""
        self.train_x, self.steps_per_dispatch = train_x, steps_per_dispatch
        self._orders, self._chunk = orders, CompiledOnce(chunk)
        self._place = place or (lambda orders: orders)

    @property
    def compile_seconds(self) -> float:
        return self._chunk.compile_seconds + self._orders.compile_seconds

    def max_steps(self, step: int) -> int:
        """Most steps one chunk may run from ``step``."""
        del step
        return self.steps_per_dispatch

    def __call__(self, state: TrainState, step: int, num_steps: int):
        if not 1 <= num_steps <= self.steps_per_dispatch:
            raise ValueError(
                f"{num_steps} steps is not in [1, steps_per_dispatch = "
                f"{self.steps_per_dispatch}]."
            )
        first_epoch, orders = self._orders(step)
        state, metrics = self._chunk(
            state,
            self.train_x,
            self._place(orders),
            jnp.int32(first_epoch),
            jnp.int32(num_steps),
        )
        metrics = jax.device_get(metrics)  # the chunk's one host sync
        return state, {k: v[..., :num_steps] for k, v in metrics.items()}

    def run(self, state: TrainState, num_steps: int):
        """``num_steps`` steps from ``state.step`` in chunks of at most
        ``steps_per_dispatch``; returns (state, host metrics of every step: [num_steps]
        each, the chunks' rows concatenated in step order; {} for 0 steps)."""
        step, end, chunks = int(state.step), int(state.step) + num_steps, []
        while step < end:
            n = min(self.steps_per_dispatch, end - step)
            state, metrics = self(state, step, n)
            chunks.append(metrics)
            step += n
        if not chunks:
            return state, {}
        return state, {k: np.concatenate([c[k] for c in chunks], -1) for k in chunks[0]}


def median_epoch_seconds(seconds: Sequence[float]) -> float | None:
    """Median wall time of an epoch from per-epoch ``seconds`` [E], leaving out the
    first of a process (it compiles) when there are others; None if none ran."""
    return float(np.median(seconds[1:] or seconds)) if seconds else None
