"""One contender of ``benchmark.py --end_to_end``, as a user would run it: a fresh
process that loads MNIST, trains the 784-400-20 VAE (Bernoulli likelihood on
continuous intensities, Adam 1e-3, batch 128) for ``--epochs`` and evaluates the
single-sample test -ELBO. Prints one JSON line: {"contender", "test_loss", "seconds"}.

  python scripts/_end_to_end.py --contender=pythae --epochs=10
  python scripts/_end_to_end.py --contender=torch_eager --epochs=10

pythae and torch are optional (never vae_jax dependencies): ``pip install pythae``.
vae_jax itself is timed through its runner (``python -m experiments.run``) by
``benchmark.py``; this file holds the PyTorch contenders.
"""

from __future__ import annotations

import argparse
import json
import time

START = time.perf_counter()  # the whole process, imports included


def mnist_intensities():
    """vae_jax's MNIST split (``vae_mnist``: 50k train, 10k valid, 10k test), [N, 784]
    in [0, 1], so every contender trains and tests on the same images."""
    from vae_jax import data

    dataset = data.load_dataset("mnist")
    return dataset.train, dataset.test


def run_pythae(train_x, test_x, epochs: int, workdir: str) -> float:
    """Pythae 0.1.2's ``TrainingPipeline`` with a custom 784-400-20 MLP encoder and
    decoder (ReLU, sigmoid output, BCE summed over pixels): its VAE loss is the
    single-sample -ELBO. Returns the test -ELBO (nats per image)."""
    import torch
    from pythae.models import VAE, VAEConfig
    from pythae.models.base.base_utils import ModelOutput
    from pythae.models.nn import BaseDecoder, BaseEncoder
    from pythae.pipelines import TrainingPipeline
    from pythae.trainers import BaseTrainerConfig
    from torch import nn

    class Encoder(BaseEncoder):
        def __init__(self):
            super().__init__()
            self.hidden, self.mean = nn.Linear(784, 400), nn.Linear(400, 20)
            self.logvar = nn.Linear(400, 20)

        def forward(self, x):
            h = torch.relu(self.hidden(x.reshape(x.shape[0], -1)))
            return ModelOutput(embedding=self.mean(h), log_covariance=self.logvar(h))

    class Decoder(BaseDecoder):
        def __init__(self):
            super().__init__()
            self.hidden, self.out = nn.Linear(20, 400), nn.Linear(400, 784)

        def forward(self, z):
            h = torch.relu(self.hidden(z))
            return ModelOutput(reconstruction=torch.sigmoid(self.out(h)))

    config = VAEConfig(input_dim=(784,), latent_dim=20, reconstruction_loss="bce")
    model = VAE(config, encoder=Encoder(), decoder=Decoder())
    training = BaseTrainerConfig(
        output_dir=workdir,
        num_epochs=epochs,
        learning_rate=1e-3,
        per_device_train_batch_size=128,
        per_device_eval_batch_size=500,
        optimizer_cls="Adam",
        no_cuda=True,
        seed=0,
    )
    pipeline = TrainingPipeline(training_config=training, model=model)
    pipeline(train_data=train_x, eval_data=None)
    model.eval()
    losses = []
    with torch.no_grad():
        for start in range(0, len(test_x), 500):
            x = torch.tensor(test_x[start : start + 500])
            losses.append(float(model({"data": x}).loss) * len(x))
    return sum(losses) / len(test_x)


def run_torch_eager(train_x, test_x, epochs: int) -> float:
    """The plain PyTorch eager loop of ``_torch_vae.py``; returns the test -ELBO."""
    import _torch_vae

    _torch_vae.set_threads(0)
    metrics, _ = _torch_vae.train_and_evaluate(
        train_x, test_x, epochs=epochs, batch_size=128, learning_rate=1e-3, seed=0,
        log=lambda *_: None,
    )  # fmt: skip
    return metrics["test/loss"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--contender", choices=["pythae", "torch_eager"], required=True)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--workdir", default="/tmp/vae_jax_end_to_end")
    args = parser.parse_args()
    train_x, test_x = mnist_intensities()
    if args.contender == "pythae":
        loss = run_pythae(train_x, test_x, args.epochs, args.workdir)
    else:
        loss = run_torch_eager(train_x, test_x, args.epochs)
    seconds = time.perf_counter() - START
    print(json.dumps({"contender": args.contender, "test_loss": loss,
                      "seconds": seconds}))  # fmt: skip


if __name__ == "__main__":
    main()
