"""Float64 references (NumPy / SciPy) for the models' log importance weights.

log w = log p(x, z) - log q(z|x) (Burda et al. 2015, eq. 8), each term built on its
own with ``scipy.stats`` in float64 from the draws the model makes for the same key:
z = mu + sigma eps, sigma = exp(logvar / 2), eps ~ N(0, I) (Kingma & Welling 2013,
§2.4), computed here in float64 from the model's float32 eps. Only the networks (encoder
means and log-variances, the prior p(z1|z2), decoder logits) run in the model, in
float32, on the float64 draws rounded to float32. No ``vae_jax.distributions`` code is
used, so a dropped term, a lost constant or float32 cancellation in the model shows up
as a difference.

Key convention (the models' ``log_weights``): one layer draws eps = normal(key, [S, K]);
two layers split ``key1, key2 = split(key)`` and draw eps1 = normal(key1, [S, K1]),
eps2 = normal(key2, [S, K2]).
"""

import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats
from scipy.special import logsumexp


def f64(a) -> np.ndarray:
    """A float64 NumPy copy."""
    return np.asarray(a, np.float64)


def normal_logpdf(z, mean=0.0, logvar=0.0) -> np.ndarray:
    """sum_k log N(z_k; mean_k, exp(logvar_k)), float64: [..., K] -> [...]."""
    return stats.norm.logpdf(z, mean, np.exp(0.5 * f64(logvar))).sum(-1)


def bernoulli_logpmf(x, logits) -> np.ndarray:
    """sum_d x_d log sigmoid(l_d) + (1 - x_d) log(1 - sigmoid(l_d)), float64, with
    log sigmoid(l) = -log(1 + e^-l): x: [D], logits: [..., D] -> [...]."""
    x, logits = f64(x), f64(logits)
    return np.sum(
        -x * np.logaddexp(0.0, -logits) - (1.0 - x) * np.logaddexp(0.0, logits), -1
    )


def log_likelihood(x, decoded) -> np.ndarray:
    """log p(x|z) of a decoder output (Bernoulli logits or Gaussian mean, log sigma)."""
    if "logits" in decoded:
        return bernoulli_logpmf(x, decoded["logits"])
    sigma = np.exp(f64(decoded["log_sigma"]))
    return stats.norm.logpdf(f64(x), f64(decoded["mean"]), sigma).sum(-1)


def _draw(key, mean, logvar, num_samples):
    """(eps [S, K], z [S, K]) in float64: eps as the model draws it, z = mu + sigma eps."""
    eps = f64(jax.random.normal(key, (num_samples, mean.shape[-1]), jnp.float32))
    return eps, f64(mean) + np.exp(0.5 * f64(logvar)) * eps


def vae_terms(model, params, x, key, num_samples: int) -> dict[str, np.ndarray]:
    """One-layer VAE: {"log_px", "log_pz", "log_qz", "log_w"} [S] and "z" [S, K]."""
    mean, logvar = model.apply(params, x, method="encode")  # [K], [K]
    _, z = _draw(key, mean, logvar, num_samples)
    decoded = model.apply(params, jnp.asarray(z, jnp.float32), method="decode")
    terms = {
        "log_px": log_likelihood(x, decoded),
        "log_pz": normal_logpdf(z),
        "log_qz": normal_logpdf(z, f64(mean), logvar),
        "z": z,
    }
    terms["log_w"] = terms["log_px"] + terms["log_pz"] - terms["log_qz"]
    return terms


def two_layer_terms(model, params, x, key, num_samples: int) -> dict[str, np.ndarray]:
    """Two layers (Burda et al. 2015, §5): {"log_px", "log_pz1", "log_pz2", "log_qz1",
    "log_qz2", "log_w"} [S] and "z1" [S, K1], "z2" [S, K2], with
    log w = log p(x|z1) + log p(z1|z2) + log p(z2) - log q(z1|x) - log q(z2|z1)."""
    key1, key2 = jax.random.split(key)
    as32 = lambda a: jnp.asarray(a, jnp.float32)
    mean1, logvar1 = model.apply(params, x, method="encode")  # [K1]
    _, z1 = _draw(key1, mean1, logvar1, num_samples)  # [S, K1]
    mean2, logvar2 = model.apply(params, as32(z1), method="encode2")  # [S, K2]
    eps2 = f64(jax.random.normal(key2, mean2.shape, jnp.float32))
    z2 = f64(mean2) + np.exp(0.5 * f64(logvar2)) * eps2  # [S, K2]
    prior_mean1, prior_logvar1 = model.apply(params, as32(z2), method="prior1")
    logits = model.apply(params, as32(z1), method="decode")["logits"]  # [S, D]
    terms = {
        "log_px": bernoulli_logpmf(x, logits),
        "log_pz1": normal_logpdf(z1, f64(prior_mean1), prior_logvar1),
        "log_pz2": normal_logpdf(z2),
        "log_qz1": normal_logpdf(z1, f64(mean1), logvar1),
        "log_qz2": normal_logpdf(z2, f64(mean2), logvar2),
        "z1": z1,
        "z2": z2,
    }
    terms["log_w"] = (
        terms["log_px"]
        + terms["log_pz1"]
        + terms["log_pz2"]
        - terms["log_qz1"]
        - terms["log_qz2"]
    )
    return terms


def log_mean_exp(log_w) -> float:
    """log (1/k) sum_i exp(log_w_i) in float64 (L_k of k log-weights)."""
    log_w = f64(log_w)
    return float(logsumexp(log_w) - np.log(len(log_w)))
