"""PyTorch twin of vae_jax's ``vae_mnist`` model and train step, for ``scripts/`` only.

Shared by ``torch_reference.py`` (accuracy) and ``benchmark.py`` (speed), so both
compare vae_jax against the same code. The model is the MLP VAE 784-400-20 of
Kingma & Welling 2013, §5 with a Bernoulli decoder, trained on the mean over the
batch of the single-sample negative ELBO (analytic KL, App. B) with Adam.

Each framework keeps its own defaults: ``nn.Linear`` initialises weights and biases
from U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (Kaiming-uniform, a = sqrt(5)), whereas
flax's ``nn.Dense`` draws weights from lecun_normal and zeros the biases.
torch's ``Adam`` (betas 0.9, 0.999, eps 1e-8) is optax.adam's update rule.

torch is not a vae_jax dependency: importing this module without it exits with a
message saying how to install it.
"""

from __future__ import annotations

import os
import time

try:
    import torch
    import torch.nn.functional as F
    from torch import nn
except ImportError:  # torch is optional: only these scripts use it
    raise SystemExit(
        "These scripts compare vae_jax with PyTorch, which is not installed (it is "
        "not a vae_jax dependency). Install the CPU wheel: pip install torch"
    ) from None


def set_threads(num_threads: int = 0) -> int:
    """Sets torch's intra-op threads (0 = all CPU cores) and returns the count."""
    num_threads = num_threads or os.cpu_count() or 1
    torch.set_num_threads(num_threads)
    return num_threads


class TorchVAE(nn.Module):
    """q(z|x) = N(mean(x), diag(exp(logvar(x)))), p(x|z) = Bernoulli(sigmoid(logits(z)))."""

    def __init__(self, data_dim: int = 784, hidden: int = 400, latent_dim: int = 20):
        super().__init__()
        self.encoder = nn.Linear(data_dim, hidden)
        self.to_mean = nn.Linear(hidden, latent_dim)
        self.to_logvar = nn.Linear(hidden, latent_dim)
        self.decoder_hidden = nn.Linear(latent_dim, hidden)
        self.decoder_output = nn.Linear(hidden, data_dim)

    def encode(self, x):
        """x: [B, D] -> (mean [B, K], logvar [B, K])."""
        h = F.relu(self.encoder(x))
        return self.to_mean(h), self.to_logvar(h)

    def decode(self, z):
        """z: [B, K] -> logits [B, D]."""
        return self.decoder_output(F.relu(self.decoder_hidden(z)))


def negative_elbo(model: TorchVAE, x):
    """-log p(x|z) + KL(q(z|x) || p(z)), one z ~ q per example; Kingma & Welling 2013.

    x: [B, D] in {0, 1}. Returns (loss [B], recon [B], kl [B]), nats per example.
    """
    mean, logvar = model.encode(x)
    z = mean + torch.exp(0.5 * logvar) * torch.randn_like(mean)
    logits = model.decode(z)
    recon = F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(-1)
    kl = 0.5 * (torch.exp(logvar) + mean.square() - 1.0 - logvar).sum(-1)
    return recon + kl, recon, kl


def batch_loss(model: TorchVAE, x):
    """Mean over the batch of the negative ELBO of x: [B, D] -> scalar tensor."""
    return negative_elbo(model, x)[0].mean()


def make_train_step(model: TorchVAE, optimizer, compile_step: bool = False):
    """step(x [B, D] intensities) -> loss: binarize, forward, backward, Adam update.

    With ``compile_step`` the loss (forward and backward graphs) and the optimizer
    update are each compiled with ``torch.compile``; the Python loop stays eager.
    """
    loss_fn = torch.compile(batch_loss) if compile_step else batch_loss
    update = torch.compile(optimizer.step) if compile_step else optimizer.step

    def step(x):
        x = torch.bernoulli(x)  # dynamic binarization: a fresh sample every step
        loss = loss_fn(model, x)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        update()
        return loss.detach()

    return step


def new_model_and_optimizer(seed: int, learning_rate: float = 1e-3):
    """A freshly initialised TorchVAE (torch defaults, ``torch.manual_seed(seed)``) and
    its Adam optimizer (betas 0.9, 0.999, eps 1e-8: optax.adam's defaults)."""
    torch.manual_seed(seed)
    model = TorchVAE()
    return model, torch.optim.Adam(model.parameters(), lr=learning_rate, eps=1e-8)


def shuffled_batches(train_x, batch_size: int, generator):
    """One epoch of batches [B, D] of train_x: [N, D] in a fresh random order, the
    ragged last batch dropped (as vae_jax does)."""
    perm = torch.randperm(train_x.shape[0], generator=generator)
    for i in range(train_x.shape[0] // batch_size):
        yield train_x[perm[i * batch_size : (i + 1) * batch_size]]


def endless_batches(train_x, batch_size: int, generator):
    """Epoch after epoch of ``shuffled_batches``, without end."""
    while True:
        yield from shuffled_batches(train_x, batch_size, generator)


def train_epoch(step, train_x, batch_size: int, generator) -> float:
    """One pass of ``step`` over ``shuffled_batches``; the mean training loss (one host
    sync, at the end)."""
    losses = [step(x) for x in shuffled_batches(train_x, batch_size, generator)]
    return float(torch.stack(losses).mean())


def to_tensor(x):
    """float32 tensor copy of an array (vae_jax's datasets are read-only numpy)."""
    return torch.tensor(x, dtype=torch.float32)


@torch.no_grad()
def evaluate(model: TorchVAE, x, batch_size: int = 500) -> dict[str, float]:
    """Means over x: [N, D] (fixed {0, 1} bits) of the single-sample ELBO, recon, kl
    (named as vae_jax's evaluation names them)."""
    sums = torch.zeros(3, dtype=torch.float64)
    for start in range(0, x.shape[0], batch_size):
        terms = negative_elbo(model, x[start : start + batch_size])
        sums += torch.stack([t.sum().double() for t in terms])
    loss, recon, kl = (sums / x.shape[0]).tolist()
    return {"elbo": -loss, "recon": recon, "kl": kl}


def train_and_evaluate(
    train_x, test_x, *, epochs, batch_size, learning_rate, seed, log=print
):
    """Trains a TorchVAE on train_x: [N, D] intensities for ``epochs`` and evaluates it
    on test_x: [Nt, D] bits. Returns ({"test/elbo", "test/recon", "test/kl"}, seconds)."""
    model, optimizer = new_model_and_optimizer(seed, learning_rate)
    step = make_train_step(model, optimizer)
    generator = torch.Generator().manual_seed(seed)
    train_x, test_x = to_tensor(train_x), to_tensor(test_x)
    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        loss = train_epoch(step, train_x, batch_size, generator)
        seconds = time.perf_counter() - start
        log(f"torch epoch {epoch}/{epochs}: train loss {loss:.3f} ({seconds:.1f} s)")
    metrics = {f"test/{k}": v for k, v in evaluate(model, test_x).items()}
    return metrics, time.perf_counter() - start
