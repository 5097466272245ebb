"""One Pythae row of ``zoo_benchmark.py``, run in an interpreter with torch and pythae
(0.1.2): trains ``--model`` with Pythae's own ``TrainingPipeline`` on vae_jax's split
of the data, with the benchmark's MLP (D-400-K, ReLU; sigmoid outputs and BCE for
likelihood models, linear outputs and squared error for autoencoders), Adam 1e-3,
batch 128, ``--epochs``; then writes into ``--out``:

  arrays.npz   reconstructions of the first test images (the decoder at the encoder's
               embedding, ``reconstruct``), ``display_samples``, prior samples (where
               the model has a prior) and GMM ex-post samples (fitted to the encoder's
               embeddings, ``gmm_samples``), [n, D]
  weights.npz  the trained model's ``state_dict`` as numpy arrays (torch's layout),
               which vae_jax loads to score Pythae's model with its own L_k
  timing.json  the process's wall time to the end of training, Pythae's NLL
               (``model.get_nll``, where it has one) over the first
               ``--get_nll_examples`` test images

vae_jax's evaluator scores the arrays (``zoo_benchmark.evaluate_pythae``). pythae and
torch are optional: never vae_jax dependencies. ``--rewrite_arrays`` reloads the
trained model from ``--out`` and rewrites the reconstructions and GMM samples alone.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import time

START = time.perf_counter()

AUTOENCODERS = ("AE", "WAE_MMD", "RAE_L2", "RAE_GP", "VQVAE")  # squared error
NO_PRIOR = ("AE", "RAE_L2", "RAE_GP", "VQVAE")


def networks(model_name: str, data_dim: int, hidden: int, latent: int):
    """Pythae encoder and decoder of the benchmark's MLP."""
    import torch
    from pythae.models.base.base_utils import ModelOutput
    from pythae.models.nn import BaseDecoder, BaseEncoder
    from torch import nn

    class Encoder(BaseEncoder):
        def __init__(self):
            super().__init__()
            self.hidden, self.mean = (
                nn.Linear(data_dim, hidden),
                nn.Linear(hidden, latent),
            )
            self.logvar = nn.Linear(hidden, latent)

        def forward(self, x):
            h = torch.relu(self.hidden(x.reshape(x.shape[0], -1)))
            # a VQVAE quantises each of the K entries of a [B, K] embedding
            return ModelOutput(embedding=self.mean(h), log_covariance=self.logvar(h))

    class Decoder(BaseDecoder):
        def __init__(self):
            super().__init__()
            self.hidden, self.out = (
                nn.Linear(latent, hidden),
                nn.Linear(hidden, data_dim),
            )

        def forward(self, z):
            h = torch.relu(self.hidden(z.reshape(z.shape[0], -1)))
            out = self.out(h)
            if model_name not in AUTOENCODERS:
                out = torch.sigmoid(out)
            return ModelOutput(reconstruction=out)

    return Encoder(), Decoder()


def build(model_name: str, fields: dict, data_dim: int, hidden: int, latent: int):
    import pythae.models as pm

    config_class = getattr(pm, f"{model_name}Config", None) or getattr(
        pm, f"{model_name}_Config"
    )
    loss = "mse" if model_name in AUTOENCODERS else "bce"
    config = config_class(
        input_dim=(data_dim,), latent_dim=latent, reconstruction_loss=loss, **fields
    )
    encoder, decoder = networks(model_name, data_dim, hidden, latent)
    return getattr(pm, model_name)(config, encoder=encoder, decoder=decoder)


def trainer_config(model_name: str, args):
    from pythae.trainers import BaseTrainerConfig, CoupledOptimizerTrainerConfig

    common = {
        "output_dir": str(args.out / "pythae"),
        "num_epochs": args.epochs,
        "learning_rate": 1e-3,
        "per_device_train_batch_size": 128,
        "per_device_eval_batch_size": 500,
        "no_cuda": True,
        "seed": args.seed,
        "steps_saving": None,
    }
    # RAE-L2 (the decoder's weight decay is its regulariser) and PIWAE (separate
    # encoder and decoder objectives) need Pythae's two-optimizer trainer, whose
    # learning rates are fields of their own (default 1e-4).
    if model_name in ("RAE_L2", "PIWAE"):
        decay = {"weight_decay": 1e-7} if model_name == "RAE_L2" else None
        return CoupledOptimizerTrainerConfig(
            **common,
            encoder_optimizer_cls="Adam",
            encoder_learning_rate=common["learning_rate"],
            decoder_optimizer_cls="Adam",
            decoder_learning_rate=common["learning_rate"],
            decoder_optimizer_params=decay,
        )
    return BaseTrainerConfig(**common, optimizer_cls="Adam")


def embeddings(model, model_name: str, x, batch_size: int = 500):
    """The codes vae_jax's ex-post samplers fit (``expost.training_codes``): the
    encoder's embedding, a VAE's posterior mean, of x [n, D] -> [n, K]. Pythae's
    ``GaussianMixtureSampler`` fits ``model(x).z`` instead, a draw of q(z|x) for a
    VAE. A VQ-VAE's code is its quantised embedding, ``model(x).z``, as vae_jax's."""
    import torch

    chunks = []
    for start in range(0, len(x), batch_size):
        batch = x[start : start + batch_size]
        if model_name == "VQVAE":
            chunks.append(model({"data": batch}).z.reshape(len(batch), -1))
        else:
            chunks.append(model.encoder(batch).embedding)
    return torch.cat(chunks).cpu().numpy()


def gmm_samples(model, model_name: str, n: int, train, seed: int):
    """Decoder outputs of n draws of a 10-component full-covariance Gaussian mixture
    fitted to the ``embeddings`` of the first 10,000 training images (scikit-learn
    ``GaussianMixture`` with the settings of Pythae's ``GaussianMixtureSampler``)."""
    import numpy as np
    import torch
    from sklearn import mixture

    codes = embeddings(model, model_name, train[:10_000])
    gmm = mixture.GaussianMixture(
        n_components=10,
        covariance_type="full",
        max_iter=2000,
        tol=1e-3,
        random_state=seed,
    ).fit(codes.astype(np.float64))
    z = torch.tensor(gmm.sample(n)[0], dtype=torch.float32)
    z = z[torch.randperm(n, generator=torch.Generator().manual_seed(seed))]
    out = [model.decoder(z[i : i + 500]).reconstruction for i in range(0, n, 500)]
    return torch.cat(out).cpu().numpy().reshape(n, -1)


def prior_samples(model, model_name: str, n: int):
    """Decoder outputs of n draws of the model's prior (Pythae's samplers)."""
    import pythae.samplers as ps

    if model_name == "VAMP":
        sampler = ps.VAMPSampler(model)
    else:
        sampler = ps.NormalSampler(model)
    out = sampler.sample(num_samples=n, batch_size=500, return_gen=True)
    return out.detach().cpu().numpy().reshape(n, -1)


# arrays.npz keys marking arrays made by vae_jax's protocol: reconstructions by
# ``reconstruct``, GMM samples fitted to ``embeddings``
PROTOCOL_MARKERS = ("reconstructions_at_embedding", "gmm_fitted_to_embeddings")


def reconstruct(model, model_name: str, x):
    """The decoder's output at the encoder's embedding, the posterior mean of a VAE,
    as vae_jax's ``reconstruct``; Pythae's own ``model.reconstruct`` decodes a z drawn
    from q(z|x), whose noise adds to the error. A VQ-VAE quantises the embedding in
    its forward pass (no sampling): its ``reconstruct`` is kept."""
    if model_name == "VQVAE":
        return model.reconstruct(x)
    return model.decoder(model.encoder(x).embedding).reconstruction


def protocol_arrays(model, model_name: str, test, train, args) -> dict:
    """Reconstructions of the first ``args.nll_examples`` test images and
    ``args.num_samples`` GMM ex-post samples, numpy [n, D], with the markers."""
    import numpy as np

    x = test[: args.nll_examples]
    out = reconstruct(model, model_name, x).cpu().numpy().reshape(len(x), -1)
    arrays = {"reconstructions": out}
    arrays["gmm_samples"] = gmm_samples(
        model, model_name, args.num_samples, train, args.seed
    )
    arrays.update({marker: np.array(True) for marker in PROTOCOL_MARKERS})
    return arrays


def display_samples(arrays: dict):
    """The 16 samples the figure shows: prior samples, or GMM ones without a prior."""
    return arrays.get("prior_samples", arrays["gmm_samples"])[:16]


def rewrite_arrays(args, train, test) -> None:
    """Rewrites ``arrays.npz``'s ``protocol_arrays`` from the model trained in
    ``--out``; its prior samples are kept."""
    import numpy as np
    import torch
    from pythae.models import AutoModel

    (folder,) = sorted((args.out / "pythae").glob("*/final_model"))[-1:]
    model = AutoModel.load_from_folder(str(folder))
    model.eval()
    arrays = dict(np.load(args.out / "arrays.npz"))
    with torch.no_grad():
        arrays.update(
            protocol_arrays(
                model, args.model, torch.tensor(test), torch.tensor(train), args
            )
        )
    arrays["display_samples"] = display_samples(arrays)
    np.savez_compressed(args.out / "arrays.npz", **arrays)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--fields", default="{}")
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--epochs", type=int, required=True)
    parser.add_argument("--latent_dim", type=int, default=16)
    parser.add_argument("--hidden", type=int, default=400)
    parser.add_argument("--nll_samples", type=int, default=5000)
    parser.add_argument("--nll_examples", type=int, default=2000)
    parser.add_argument(
        "--get_nll_examples",
        type=int,
        default=500,
        help="test images for Pythae's own get_nll, a cross-check (0: skip it)",
    )
    parser.add_argument("--num_samples", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=pathlib.Path, required=True)
    parser.add_argument("--rewrite_arrays", action="store_true")
    args = parser.parse_args()

    import numpy as np
    import torch
    from pythae.pipelines import TrainingPipeline

    from vae_jax import data

    torch.manual_seed(args.seed)
    dataset = data.load_dataset("digits" if args.quick else args.dataset, valid_size=0)
    train, test = dataset.train, dataset.test
    if args.rewrite_arrays:
        rewrite_arrays(args, train, test)
        return
    model = build(
        args.model,
        json.loads(args.fields),
        train.shape[1],
        args.hidden,
        args.latent_dim,
    )
    pipeline = TrainingPipeline(
        training_config=trainer_config(args.model, args), model=model
    )
    pipeline(train_data=train, eval_data=None)
    train_wall = time.perf_counter() - START
    model.eval()
    with torch.no_grad():
        x = torch.tensor(test[: min(args.get_nll_examples, args.nll_examples)])
        arrays = protocol_arrays(
            model, args.model, torch.tensor(test), torch.tensor(train), args
        )
        if args.model not in NO_PRIOR:
            arrays["prior_samples"] = prior_samples(model, args.model, args.num_samples)
        arrays["display_samples"] = display_samples(arrays)
        timing = {"train_wall_seconds": train_wall, "model": args.model}
        if hasattr(model, "get_nll") and args.get_nll_examples > 0:
            start = time.perf_counter()
            # get_nll returns the mean of log p(x) estimates: its negative is the NLL
            timing["nll"] = -float(
                model.get_nll(x, n_samples=args.nll_samples, batch_size=500)
            )
            timing["nll_seconds"] = time.perf_counter() - start
            timing["nll_examples"] = len(x)
    np.savez_compressed(args.out / "arrays.npz", **arrays)
    weights = {name: t.cpu().numpy() for name, t in model.state_dict().items()}
    np.savez_compressed(args.out / "weights.npz", **weights)
    (args.out / "timing.json").write_text(json.dumps(timing, indent=1))


if __name__ == "__main__":
    main()
