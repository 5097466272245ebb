"""The conditional VAE: q(z|x, y), p(x|z, y), p(z) = N(0, I); Sohn et al. 2015, §3-4.

The label y is observed. It reaches the model as C one-hot columns after the D
pixels of every input (``data.with_one_hot_labels``): x_in = [x, onehot(y)], [D + C].
The encoder reads x_in whole; the decoder reads [z, onehot(y)], [K + C], and models
the D pixels only. The conditional ELBO (Sohn et al. 2015, eq. 4, with the prior
p(z|y) = p(z) of their CVAE baseline):

  log p(x|y) >= E_q(z|x,y)[log p(x|z,y)] - KL(q(z|x,y) || N(0, I)).

``code`` returns the decoder's input [E_q[z|x,y], onehot(y)], so ``decode_mean`` of a
code or of ``sample_latents`` (z ~ N(0, I), y uniform over the C classes) gives
images [D]; ``conditional_latents`` fixes y. Posterior statistics (``posterior_means``,
``kl_per_dimension``, ``posterior_logvar``) concern z alone.
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from vae_jax.models import vae


class CVAE(vae.VAE):
    """``VAE`` whose inputs end in ``num_classes`` one-hot label columns.

    ``encode``: [..., D + C] -> (mean [..., K], logvar [..., K]); ``decode``:
    [..., K + C] -> likelihood parameters [..., D].
    """

    num_classes: int = 10

    @nn.nowrap
    def split(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        """x_in [..., D + C] -> (pixels [..., D], onehot(y) [..., C])."""
        return x[..., : -self.num_classes], x[..., -self.num_classes :]

    def __call__(self, x):
        mean = self.encode(x)[0]
        return self.decode(jnp.concatenate([mean, self.split(x)[1]], axis=-1))

    # ------------------------------------------------------------ model protocol
    @nn.nowrap
    def code(self, params, x: jax.Array) -> jax.Array:
        """[E_q[z|x, y], onehot(y)]: [..., D + C] -> [..., K + C]."""
        mean = self.apply(params, x, method="encode")[0]
        return jnp.concatenate([mean, self.split(x)[1]], axis=-1)

    @nn.nowrap
    def posterior_means(self, params, x: jax.Array, key: jax.Array) -> tuple:
        """(E_q[z|x, y] [K],); the label columns are not latent. x: [D + C]."""
        del key
        return (self.apply(params, x, method="encode")[0],)

    @nn.nowrap
    def sample_latents(self, params, key: jax.Array, num_samples: int) -> jax.Array:
        """[z, onehot(y)], z ~ N(0, I), y ~ Uniform{0..C-1}: [S, K + C]."""
        key_z, key_y = jax.random.split(key)
        labels = jax.random.randint(key_y, (num_samples,), 0, self.num_classes)
        return self.conditional_latents(params, key_z, labels)

    @nn.nowrap
    def conditional_latents(
        self, params, key: jax.Array, labels: jax.Array
    ) -> jax.Array:
        """[z, onehot(y_s)], z ~ N(0, I), one per label: labels [S] -> [S, K + C]."""
        del params
        z = jax.random.normal(key, (labels.shape[0], self.latent_dim))
        onehot = jax.nn.one_hot(labels, self.num_classes, dtype=z.dtype)
        return jnp.concatenate([z, onehot], axis=-1)

    @nn.nowrap
    def log_px(self, params, x: jax.Array, z: jax.Array) -> jax.Array:
        """log p(x|z_s, y) for each of S codes. x: [D + C]; z: [S, K] -> [S]."""
        pixels, onehot = self.split(x)
        zy = jnp.concatenate(
            [z, jnp.broadcast_to(onehot, (z.shape[0], self.num_classes))], axis=-1
        )
        return super().log_px(params, pixels, zy)


def build(
    model_config: ml_collections.ConfigDict,
    *,
    image_shape,
    likelihood: str = "bernoulli",
    sigma: float | None = None,
) -> CVAE:
    """A CVAE of ``config.model`` (MLP or linear layers; C = model.num_classes)."""
    if model_config.architecture == "conv":
        raise ValueError(
            "model.kind='cvae' takes architecture='mlp' or 'linear': its inputs are "
            "pixels followed by label columns, not images."
        )
    return vae.build(
        model_config,
        image_shape=image_shape,
        likelihood=likelihood,
        sigma=sigma,
        vae_class=functools.partial(CVAE, num_classes=model_config.num_classes),
    )
