"""One Pythae row of ``zoo_benchmark.py``, run in an interpreter with torch and pythae
(0.1.2): trains ``--model`` with Pythae's own ``TrainingPipeline`` on vae_jax's split
of the data, with the benchmark's MLP (D-400-K, ReLU; sigmoid outputs and BCE for
likelihood models, linear outputs and squared error for autoencoders), Adam 1e-3,
batch 128, ``--epochs``; then writes into ``--out``:

  arrays.npz   reconstructions of the first test images (the decoder at the encoder's
               embedding, ``reconstruct``), ``display_samples``, prior samples (where
               the model has a prior) and GMM ex-post samples, [n, D]
  timing.json  the process's wall time to the end of training, Pythae's NLL
               (``model.get_nll``, where it has one) over the first test images

vae_jax's evaluator scores the arrays (``zoo_benchmark.evaluate_pythae``). pythae and
torch are optional: never vae_jax dependencies. ``--reconstruct_only`` reloads the
trained model from ``--out`` and rewrites the reconstructions alone.
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
    if model_name == "RAE_L2":  # the decoder's weight decay is its regulariser
        return CoupledOptimizerTrainerConfig(
            **common,
            encoder_optimizer_cls="Adam",
            decoder_optimizer_cls="Adam",
            decoder_optimizer_params={"weight_decay": 1e-7},
        )
    return BaseTrainerConfig(**common, optimizer_cls="Adam")


def sample(model, model_name: str, kind: str, n: int, train):
    import pythae.samplers as ps

    if kind == "gmm":
        sampler = ps.GaussianMixtureSampler(
            model, ps.GaussianMixtureSamplerConfig(n_components=10)
        )
        sampler.fit(train[:10_000])
    elif model_name == "VAMP":
        sampler = ps.VAMPSampler(model)
    else:
        sampler = ps.NormalSampler(model)
    out = sampler.sample(num_samples=n, batch_size=500, return_gen=True)
    return out.detach().cpu().numpy().reshape(n, -1)


# arrays.npz key marking reconstructions made by ``reconstruct``
RECONSTRUCTIONS_AT_EMBEDDING = "reconstructions_at_embedding"


def reconstruct(model, model_name: str, x):
    """The decoder's output at the encoder's embedding, the posterior mean of a VAE,
    as vae_jax's ``reconstruct``; Pythae's own ``model.reconstruct`` decodes a z drawn
    from q(z|x), whose noise adds to the error. A VQ-VAE quantises the embedding in
    its forward pass (no sampling): its ``reconstruct`` is kept."""
    if model_name == "VQVAE":
        return model.reconstruct(x)
    return model.decoder(model.encoder(x).embedding).reconstruction


def reconstruction_arrays(model, model_name: str, x) -> dict:
    """``reconstruct`` of x [n, D] as numpy [n, D], with the key marking them."""
    import numpy as np

    out = reconstruct(model, model_name, x).cpu().numpy().reshape(len(x), -1)
    return {"reconstructions": out, RECONSTRUCTIONS_AT_EMBEDDING: np.array(True)}


def reconstruct_only(args, test) -> None:
    """Rewrites ``arrays.npz``'s reconstructions from the model trained in ``--out``."""
    import numpy as np
    import torch
    from pythae.models import AutoModel

    (folder,) = sorted((args.out / "pythae").glob("*/final_model"))[-1:]
    model = AutoModel.load_from_folder(str(folder))
    model.eval()
    arrays = dict(np.load(args.out / "arrays.npz"))
    with torch.no_grad():
        x = torch.tensor(test[: len(arrays["reconstructions"])])
        arrays.update(reconstruction_arrays(model, args.model, x))
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
    parser.add_argument("--num_samples", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=pathlib.Path, required=True)
    parser.add_argument("--reconstruct_only", action="store_true")
    args = parser.parse_args()

    import numpy as np
    import torch
    from pythae.pipelines import TrainingPipeline

    from vae_jax import data

    torch.manual_seed(args.seed)
    dataset = data.load_dataset("digits" if args.quick else args.dataset, valid_size=0)
    train, test = dataset.train, dataset.test
    if args.reconstruct_only:
        reconstruct_only(args, test)
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
    arrays = {}
    with torch.no_grad():
        x = torch.tensor(test[: args.nll_examples])
        arrays.update(reconstruction_arrays(model, args.model, x))
        kinds = ["gmm"] + ([] if args.model in NO_PRIOR else ["prior"])
        for kind in kinds:
            arrays[f"{kind}_samples"] = sample(
                model, args.model, kind, args.num_samples, torch.tensor(train)
            )
        arrays["display_samples"] = arrays[f"{kinds[-1]}_samples"][:16]
        timing = {"train_wall_seconds": train_wall, "model": args.model}
        if hasattr(model, "get_nll"):
            start = time.perf_counter()
            # get_nll returns the mean of log p(x) estimates: its negative is the NLL
            timing["nll"] = -float(
                model.get_nll(x, n_samples=args.nll_samples, batch_size=500)
            )
            timing["nll_seconds"] = time.perf_counter() - start
    np.savez_compressed(args.out / "arrays.npz", **arrays)
    (args.out / "timing.json").write_text(json.dumps(timing, indent=1))


if __name__ == "__main__":
    main()
