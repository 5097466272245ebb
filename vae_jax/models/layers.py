"""Layers shared by the model families: MLP and conv trunks/heads, activations and
kernel initialisers by name, gated dense layers (Dauphin et al. 2017).

Every module takes any leading dims (``[D]`` under ``vmap`` or ``[B, D]``) and works on
flat data; conv modules reshape to ``image_shape`` inside.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
from flax import traverse_util

ACTIVATIONS: dict[str, Callable[[Any], Any]] = {
    "relu": nn.relu,
    "tanh": jnp.tanh,
    "elu": nn.elu,
    "gelu": nn.gelu,
    "softplus": nn.softplus,
    "sigmoid": nn.sigmoid,
    "linear": lambda x: x,
}

# ``MLP``'s activation that is a layer, not an elementwise function: each hidden layer
# a ``GatedDense``. MLP trunks only (architecture "mlp"); the conv trunks reject it.
GATED = "gated"
MLP_ACTIVATIONS = (*ACTIVATIONS, GATED)


# Dense-layer kernel initialisers by name; biases start at zero unless
# ``model.bias_init = "torch_default"`` (``with_torch_default_biases``).
KERNEL_INITS: dict[str, Callable[..., Any]] = {
    "lecun_normal": nn.initializers.lecun_normal(),  # Flax's default
    "glorot_uniform": nn.initializers.glorot_uniform(),  # Keras's default
    # U(+-1/sqrt(fan_in)) = VarianceScaling(1/3, fan_in, uniform): PyTorch's nn.Linear
    # default and XifengGuo/DEC-keras's autoencoder init.
    "torch_default": nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform"),
    # N(0, 2 / fan_in), untruncated: torch's ``he_init`` in jmtomczak/vae_vampprior
    # (``utils/nn.py``), He et al. 2015. Flax's ``he_normal`` is truncated to +-2 std.
    "he_normal_untruncated": nn.initializers.variance_scaling(2.0, "fan_in", "normal"),
}


def get_kernel_init(name: str) -> Callable[..., Any]:
    """Looks up a Dense kernel initialiser by name; unknown names raise with the choices."""
    if name not in KERNEL_INITS:
        raise ValueError(
            f"Unknown kernel_init {name!r}; choose one of {sorted(KERNEL_INITS)}."
        )
    return KERNEL_INITS[name]


def get_activation(name: str) -> Callable[[Any], Any]:
    """Looks up an elementwise activation by name; unknown names raise with the
    choices, and "gated" (a layer, ``GatedDense``: MLP trunks only) explains itself."""
    if name == GATED:
        raise ValueError(
            f"activation {GATED!r} is a gated dense layer, h = (W x + b) * "
            "sigmoid(V x + c), not an elementwise function: only MLP trunks "
            "(model.architecture='mlp') take it; choose one of "
            f"{sorted(ACTIVATIONS)} here."
        )
    if name not in ACTIVATIONS:
        raise ValueError(
            f"Unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}."
        )
    return ACTIVATIONS[name]


class GatedDense(nn.Module):
    """h = (W x + b) * sigmoid(V x + c): a gated linear unit (Dauphin et al. 2017,
    eq. 1), jmtomczak/vae_vampprior's ``GatedDense`` (``utils/nn.py``) without an
    activation on W x + b. Sub-layers ``h`` (W, b) and ``g`` (V, c).

    [..., D_in] -> [..., features].
    """

    features: int
    dtype: Any = jnp.float32
    kernel_init: str = "lecun_normal"

    @nn.compact
    def __call__(self, x):
        dense = functools.partial(
            nn.Dense,
            self.features,
            dtype=self.dtype,
            kernel_init=get_kernel_init(self.kernel_init),
        )
        return dense(name="h")(x) * nn.sigmoid(dense(name="g")(x))


class MLP(nn.Module):
    """Dense layers with an activation after each, then an optional linear output layer.

    ``activation="gated"``: each hidden layer a ``GatedDense`` instead (two kernels).
    [..., D_in] -> [..., output_dim] (or [..., widths[-1]] when ``output_dim`` is None).
    """

    widths: Sequence[int]
    activation: str = "relu"
    output_dim: int | None = None
    dtype: Any = jnp.float32
    kernel_init: str = "lecun_normal"

    @nn.compact
    def __call__(self, x):
        dense = functools.partial(
            nn.Dense, dtype=self.dtype, kernel_init=get_kernel_init(self.kernel_init)
        )
        if self.activation == GATED:
            for width in self.widths:
                x = GatedDense(width, self.dtype, self.kernel_init)(x)
        else:
            act = get_activation(self.activation)
            for width in self.widths:
                x = act(dense(width)(x))
        if self.output_dim is not None:
            x = dense(self.output_dim, name="output")(x)
        return x


def conv_cells(image_shape: Sequence[int]) -> tuple[int, ...]:
    """The feature map's size after two stride-2 convolutions: ceil(side / 4) each."""
    return tuple(-(-side // 4) for side in image_shape)


class ConvTrunk(nn.Module):
    """Two stride-2 convolutions (3 wide along each axis), flattened, for images
    (H, W) or series (T,): [..., prod(shape)] -> [..., prod(ceil(shape / 4)) * 2F]."""

    image_shape: Sequence[int]
    features: int = 32
    activation: str = "relu"
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x):
        act = get_activation(self.activation)
        lead, ndim = x.shape[:-1], len(self.image_shape)
        h = x.reshape(*lead, *self.image_shape, 1)
        for mult in (1, 2):
            conv = nn.Conv(
                self.features * mult, (3,) * ndim, strides=(2,) * ndim, dtype=self.dtype
            )
            h = act(conv(h))
        return h.reshape(*lead, -1)


class ConvHead(nn.Module):
    """Dense to a (ceil(shape / 4), 2F) map, two stride-2 transposed convolutions,
    cropped to the data's shape: [..., K] -> [..., prod(shape)]."""

    image_shape: Sequence[int]
    features: int = 32
    activation: str = "relu"
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, z):
        act = get_activation(self.activation)
        cells, ndim = conv_cells(self.image_shape), len(self.image_shape)
        lead = z.shape[:-1]
        size = math.prod(cells) * 2 * self.features
        h = act(nn.Dense(size, dtype=self.dtype)(z))
        h = h.reshape(*lead, *cells, 2 * self.features)
        kernel, strides = (3,) * ndim, (2,) * ndim
        h = act(nn.ConvTranspose(self.features, kernel, strides, dtype=self.dtype)(h))
        h = nn.ConvTranspose(1, kernel, strides, dtype=self.dtype)(h)
        crop = tuple(slice(0, side) for side in self.image_shape)
        h = h[(..., *crop, 0)]  # 4 * ceil(side / 4) >= side
        return h.reshape(*lead, math.prod(self.image_shape))


ARCHITECTURES = ("mlp", "conv", "conv1d", "linear")


def encoder_decoder(
    config: ml_collections.ConfigDict, image_shape: Sequence[int], dtype
):
    """Encoder trunk [..., D] -> [..., F] and full decoder [..., K] -> [..., D]."""
    arch = config.architecture
    data_dim = math.prod(image_shape)
    init = config.kernel_init
    if arch == "mlp":
        hidden = tuple(config.hidden)
        return (
            MLP(hidden, config.activation, dtype=dtype, kernel_init=init),
            MLP(hidden[::-1], config.activation, data_dim, dtype, init),
        )
    if arch == "linear":
        return (
            MLP((), dtype=dtype, kernel_init=init),
            MLP((), output_dim=data_dim, dtype=dtype, kernel_init=init),
        )
    if arch == "conv1d" and len(image_shape) != 1:
        raise ValueError(
            f"architecture='conv1d' needs series (image_shape (T,)), got "
            f"image_shape={tuple(image_shape)}; use 'conv' for images."
        )
    if arch == "conv" and (
        len(image_shape) != 2 or image_shape[0] % 4 or image_shape[1] % 4
    ):
        raise ValueError(
            f"architecture='conv' needs 2-D images with sides divisible by 4, "
            f"got image_shape={tuple(image_shape)}."
        )
    if arch in ("conv", "conv1d"):
        shape = tuple(image_shape)
        feats = config.conv_features
        return (
            ConvTrunk(shape, feats, config.activation, dtype),
            ConvHead(shape, feats, config.activation, dtype),
        )
    raise ValueError(f"Unknown architecture {arch!r}; choose one of {ARCHITECTURES}.")


def output_bias_from_data(train_x, clip: float = 1e-3) -> jnp.ndarray:
    """logit of the clipped training-set mean, the Bernoulli decoder's initial output
    bias (Burda et al. 2015; yburda/iwae ``get_train_bias_np``). train_x: [N, D] -> [D]."""
    mean = jnp.clip(
        jnp.mean(jnp.asarray(train_x, jnp.float32), axis=0), clip, 1.0 - clip
    )
    return jnp.log(mean) - jnp.log1p(-mean)


def with_output_bias(params, bias):
    """``params`` with the decoder's output bias (``decoder/output/bias``) set to ``bias`` [D]."""
    decoder = dict(params["params"]["decoder"])
    decoder["output"] = {**decoder["output"], "bias": jnp.asarray(bias, jnp.float32)}
    return {**params, "params": {**params["params"], "decoder": decoder}}


# ``model.bias_init``: "zeros" (Flax's default) or PyTorch's default for its layers
BIAS_INITS = ("zeros", "torch_default")


def with_torch_default_biases(params, key: jax.Array):
    """``params`` with every bias that sits beside a kernel drawn as PyTorch's
    ``nn.Linear`` / ``nn.Conv2d`` default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)),
    fan_in = prod(kernel.shape[:-1]) (input features, times the window for a
    convolution). Other parameters (pseudo-inputs, codebooks) are kept."""
    flat = traverse_util.flatten_dict(params)
    out = {}
    for i, (path, value) in enumerate(sorted(flat.items())):
        kernel = flat.get((*path[:-1], "kernel"))
        if path[-1] == "bias" and kernel is not None:
            bound = 1.0 / math.sqrt(math.prod(kernel.shape[:-1]))
            value = jax.random.uniform(
                jax.random.fold_in(key, i), value.shape, value.dtype, -bound, bound
            )
        out[path] = value
    return traverse_util.unflatten_dict(out)
