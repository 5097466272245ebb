"""The zoo benchmark: every family on MNIST and Fashion-MNIST with one shared MLP and
one training budget, scored by one evaluator; Pythae's models beside them.

  nice -n 19 python scripts/zoo_benchmark.py --workdir ~/runs/zoo [--epochs 10]
      [--pythae_python ~/venvs/torch/bin/python]       # + Pythae's versions
  python scripts/zoo_benchmark.py --workdir /tmp/zoo --quick   # digits, minutes

Setup (every row): MLP D-400-K with ReLU, K = 16 (VQ-VAE: 16 scalar codes, each one of
256 codebook entries, as Pythae quantises a flat code), Adam 1e-3, batch 128, ``--epochs`` passes over all
60,000 training images, grey levels in [0, 1] as Pythae's benchmark feeds them; the
VAE-type rows use a Bernoulli likelihood on them (BCE, so their NLL is a score of the
same model in both libraries, not a normalised density), the autoencoders squared
error. Metrics (``experiments.evaluate``'s code): test reconstruction MSE per pixel,
Frechet distance and inception-style score of 10,000 prior samples and of samples
from a 10-component Gaussian mixture fitted to the training codes (the encoder's
mean, a VAE's E_q[z|x], for both libraries; classifier features, not Inception),
-L_k over the first ``--nll_examples`` test images, active units, and the process's
wall time to the end of training.

Each (dataset, model, seed) is one process (``--dataset D --model M --seed S``; usable
as an array job) writing ``<workdir>/<dataset>/<model>[_seed<S>]/result.json``, its run
in ``run/`` beside it: finished ones are skipped and a stopped run resumes from its
checkpoint. The rows in ``--seeded`` (default ``SEEDED``: VAE, VampPrior, IWAE,
beta-VAE) train with ``--seeds`` seeds (default 3) and the tables give their mean ±
standard deviation over seeds. Pythae rows (``scripts/_pythae_zoo.py`` in the
interpreter ``--pythae_python`` names, with torch and pythae) write their
reconstructions and samples as arrays, scored here by the same functions; arrays
written before the shared protocol are rewritten from the saved Pythae model without
retraining. At the end: ``results.json``, ``results.md``, ``samples.png`` (a grid per
model) and ``scatter.png`` in the workdir.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import pathlib
import statistics
import subprocess
import sys
import time

START = time.perf_counter()  # the process's start, for the whole-process time

HERE = pathlib.Path(__file__).resolve()
PYTHAE_HELPER = HERE.with_name("_pythae_zoo.py")  # one Pythae row, in its interpreter
DATASETS = ("mnist", "fashion_mnist")
HIDDEN, LATENT = (400,), 16
SEEDED = ("vae", "vamp_vae", "iwae", "beta_vae")  # rows trained with --seeds seeds


@dataclasses.dataclass(frozen=True)
class Row:
    """A benchmark row: the bundled config it starts from, what it changes, and the
    Pythae model (``pythae.models`` class name and config fields) of the same method."""

    config: str
    changes: dict
    pythae: tuple[str, dict] | None = None


ROWS = {
    "ae": Row("ae_mnist", {}, ("AE", {})),
    "dae": Row("dae_mnist", {}),
    "vae": Row("vae_mnist", {}, ("VAE", {})),
    "beta_vae": Row("vae_mnist", {"objective.beta": 4.0}, ("BetaVAE", {"beta": 4.0})),
    "full_cov_vae": Row("vae_mnist", {"model.posterior": "full"}),
    "iwae": Row(
        "vae_mnist",
        {"objective.name": "iwae", "objective.num_samples": 5},
        ("IWAE", {"number_samples": 5}),
    ),
    "miwae": Row(
        "vae_mnist",
        {
            "objective.name": "miwae",
            "objective.num_samples": 5,
            "objective.num_groups": 2,
        },
        ("MIWAE", {"number_samples": 5, "number_gradient_estimates": 2}),
    ),
    "piwae": Row(
        "vae_mnist",
        {
            "objective.name": "piwae",
            "objective.num_samples": 5,
            "objective.num_groups": 2,
        },
        ("PIWAE", {"number_samples": 5, "number_gradient_estimates": 2}),
    ),
    "vamp_vae": Row("vamp_mnist", {}, ("VAMP", {"number_components": 500})),
    "flow_vae": Row("flow_vae_mnist", {}),
    # Pythae's MMD rows at vae_jax's settings: one IMQ scale C = 2K (Pythae's default
    # sums seven), lambda = 100; InfoVAE's RBF kernel, alpha = 0, lambda = 1000 (Pythae's
    # default lambda = 1e-3 weights MMD^2 by alpha + lambda - 1 < 0)
    "wae": Row(
        "wae_mnist",
        {},
        ("WAE_MMD", {"kernel_choice": "imq", "reg_weight": 100.0, "scales": [1.0]}),
    ),
    "info_vae": Row(
        "infovae_mnist",
        {},
        ("INFOVAE_MMD", {"kernel_choice": "rbf", "alpha": 0.0, "lbd": 1000.0}),
    ),
    "rae_l2": Row("rae_mnist", {}, ("RAE_L2", {})),
    # one Hutchinson probe of ||dg/dz||_F^2: one decoder product per example, as
    # Pythae's penalty costs one gradient (the exact norm takes K = 16)
    "rae_gp": Row(
        "rae_mnist",
        {"objective.name": "rae_gp", "objective.gradient_penalty_probes": 1},
        ("RAE_GP", {}),
    ),
    "vqvae": Row(
        "vqvae_fashion",
        {"model.architecture": "mlp", "model.num_latents": 16, "model.code_dim": 1},
        ("VQVAE", {"num_embeddings": 256}),
    ),
    # minibatch-weighted sampling in both (Pythae's default is stratified)
    "beta_tcvae": Row(
        "tcvae_mnist", {}, ("BetaTCVAE", {"beta": 6.0, "use_mss": False})
    ),
    "cvae": Row("cvae_mnist", {}),
}


def row_config(
    name: str,
    dataset: str,
    epochs: int,
    quick: bool,
    seed: int = 0,
    kernel_init: str = "",
    bias_init: str = "",
):
    """The config of row ``name``: its bundled config, its changes, then the shared
    setup of the module docstring (``--quick``: digits), with ``config.seed = seed``
    and, if given, ``config.model.kernel_init = kernel_init`` and
    ``config.model.bias_init = bias_init``."""
    import importlib

    row = ROWS[name]
    config = importlib.import_module(f"vae_jax.configs.{row.config}").get_config()
    for field, value in row.changes.items():
        section, key = field.split(".")
        config[section][key] = value
    config.model.update(hidden=HIDDEN, latent_dim=LATENT)
    config.data.update(name=dataset, binarize="none", valid_size=0)
    config.optim.update(name="adam", learning_rate=1e-3, schedule="constant")
    config.train.update(batch_size=128, num_epochs=epochs, num_steps=0)
    config.train.update(log_every=500, checkpoint_every=2000, write_figures=False)
    # every row is an MLP: the conv configs' one step per call and mid-run
    # evaluations are not wanted here
    config.train.update(steps_per_dispatch=100, eval_every=0)
    config.seed = seed
    if kernel_init:
        config.model.kernel_init = kernel_init
    if bias_init:
        config.model.bias_init = bias_init
    if quick:
        config.data.name = "digits"
        config.model.num_pseudo_inputs = min(config.model.num_pseudo_inputs, 50)
    return config


# ------------------------------------------------------------ one configuration
def evaluate_vae_jax(name: str, args, out: pathlib.Path) -> dict:
    """Trains row ``name`` (the runner's loop, resumable) and scores it."""
    from vae_jax import evaluate_run, loop, runs

    config = row_config(
        name,
        args.dataset,
        args.epochs,
        args.quick,
        args.seed,
        args.kernel_init,
        args.bias_init,
    )
    final = loop.train_and_evaluate(config, str(out / "run"))
    train_wall = time.perf_counter() - START
    run = runs.load_run(out / "run")
    scores = score_run(run, args)
    scores["samples"] = sample_images(run, scores.pop("_gmm")).tolist()
    return {
        "library": "vae_jax",
        "model": name,
        "seed": args.seed,
        "dataset": run.dataset.name,
        "train_wall_seconds": train_wall,
        "final": {k: float(v) for k, v in final.items()},
        "steps": run.step,
        **scores,
        "evaluation": evaluate_run.summary(scores.pop("_result")),
    }


def score_run(run, args) -> dict:
    """MSE, NLL, AU and prior-sample quality by ``evaluate_run``; GMM ex-post samples
    by ``studies.expost`` (not for conditional rows, whose codes carry the label)."""
    from vae_jax import evaluate_run
    from vae_jax.studies import expost

    result = evaluate_run.evaluate_run(
        run,
        nll_samples=args.nll_samples if run.latent else 0,
        max_examples=args.nll_examples,
        quality_samples=args.quality_samples,
        classifier_cache=args.workdir / "classifiers",
        classifier_steps=args.classifier_steps,
    )
    out = {
        "mse": result["reconstruction"]["mse_per_pixel"],
        "elbo": result.get("elbo", {}).get("elbo"),  # same images as the NLL
        "nll": result.get("log_likelihood", {}).get("nll"),
        "nll_stderr": result.get("log_likelihood", {}).get("nll_stderr"),
        "active_units": (result.get("active_units") or {}).get("counts"),
        "prior": _quality(result.get("sample_quality")),
        "_result": result,
        "_gmm": None,
    }
    if not run.conditional:
        sampler = expost.fit_sampler(run, "gmm", max_examples=args.gmm_examples)
        out["_gmm"] = sampler
        out["gmm"] = _quality(
            expost.sample_quality(
                run,
                sampler,
                num_samples=args.quality_samples,
                cache_dir=args.workdir / "classifiers",
                classifier_steps=args.classifier_steps,
            )
        )
    return out


def sample_images(run, gmm, n: int = 16):
    """``n`` decoder means of z ~ p(z), or of the fitted ``gmm`` where the model has
    no prior."""
    import jax
    import numpy as np

    from vae_jax.studies import expost

    key = jax.random.key(0)
    if run.generative:
        return np.clip(run.sample(n, key), 0.0, 1.0)
    return expost.decode_samples(run, gmm, n, key)


def _quality(section):
    if not section:
        return None
    keys = ("frechet_distance", "frechet_distance_data", "inception_score")
    return {k: section.get(k) for k in keys}


def _pythae_helper():
    """``_pythae_zoo.py`` as a module (its top level imports neither torch nor pythae),
    for the constants both processes share."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("_pythae_zoo", PYTHAE_HELPER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# Pythae's names of the benchmark MLP's layers (``_pythae_zoo.networks``) -> the path
# of the same layer in vae_jax's VAE parameters
PYTHAE_LAYERS = {
    "encoder.hidden": ("encoder", "Dense_0"),
    "encoder.mean": ("to_mean",),
    "encoder.logvar": ("to_logvar",),
    "decoder.hidden": ("decoder", "Dense_0"),
    "decoder.out": ("decoder", "output"),
}


def params_from_pythae(weights: dict, template: dict) -> dict | None:
    """vae_jax parameters holding a Pythae model's ``weights`` (its ``state_dict`` as
    numpy: ``<layer>.weight`` [out, in], ``<layer>.bias`` [out], y = x W^T + b), for
    the tree of ``template`` (``{"params": ...}``); None where they do not fill it
    exactly (another architecture, or parameters of its own such as a VampPrior's
    pseudo-inputs). Kernels are W^T [in, out]; Pythae's decoder applies the sigmoid
    after ``decoder.out``, so its output layer gives vae_jax's Bernoulli logits."""
    import jax
    import numpy as np

    tree: dict = {}
    for name, value in weights.items():
        layer, kind = name.rsplit(".", 1)
        if layer not in PYTHAE_LAYERS or kind not in ("weight", "bias"):
            return None
        node = tree
        for part in PYTHAE_LAYERS[layer]:
            node = node.setdefault(part, {})
        value = np.asarray(value, np.float32)
        node["kernel" if kind == "weight" else "bias"] = (
            value.T if kind == "weight" else value
        )
    params = {"params": tree}
    shapes = jax.tree_util.tree_map(np.shape, params)
    if shapes != jax.tree_util.tree_map(np.shape, template):
        return None
    return jax.tree_util.tree_map(jax.numpy.asarray, params)


def pythae_log_likelihood(
    name: str, args, out: pathlib.Path, dataset, examples_checked: int
) -> dict | None:
    """-L_k of the Pythae model trained in ``out`` by vae_jax's estimator
    (``Run.log_likelihood``, the function that scores vae_jax's rows), its weights
    (``weights.npz``) loaded into row ``name``'s vae_jax model: ``{"nll", "nll_stderr"}``
    over the first ``--nll_examples`` test images and ``nll_on_get_nll_examples`` over
    the first ``examples_checked`` (those Pythae's ``get_nll`` scored), with the ELBO
    of the NLL's images (``elbo``), or None where the weights do not map
    (``params_from_pythae``)."""
    import numpy as np

    from vae_jax import build, evaluate, evaluate_run, runs

    if not (out / "weights.npz").is_file():
        return None
    config = row_config(name, args.dataset, args.epochs, args.quick, args.seed)
    experiment = build.build_experiment(config, dataset)
    state = experiment.init_state()
    params = params_from_pythae(dict(np.load(out / "weights.npz")), state.params)
    if params is None:
        return None
    run = runs.Run(out, experiment, state.replace(params=params))
    if not run.latent:
        return None
    x = run.eval_split("test")[: args.nll_examples]
    log_px = run.log_likelihood(x, args.nll_samples)
    nll, stderr = evaluate.mean_and_stderr(-log_px)
    # on the images Pythae's get_nll scored, for the two estimators' comparison
    checked = evaluate.mean_and_stderr(-log_px[:examples_checked])[0]
    # the ELBO as vae_jax's rows report it (``evaluate_run``: S = 1, same images)
    elbo = evaluate_run.elbo_section(run, x, 1, config.train.eval_batch_size)
    return {
        "nll": nll,
        "nll_stderr": stderr,
        "nll_on_get_nll_examples": checked,
        "elbo": elbo["elbo"],
    }


def evaluate_pythae(name: str, args, out: pathlib.Path) -> dict:
    """Runs row ``name``'s Pythae model in ``--pythae_python`` (``_pythae_zoo.py``
    writes ``arrays.npz`` and ``timing.json``) and scores its arrays here."""
    import numpy as np

    from vae_jax import data, evaluate
    from vae_jax.studies import sample_quality

    class_name, fields = ROWS[name].pythae
    arrays = out / "arrays.npz"
    # arrays from before vae_jax's protocol (reconstructions and GMM codes at the
    # encoder's embedding): rewrite them from the trained model
    markers = set(_pythae_helper().PROTOCOL_MARKERS)
    stale = arrays.is_file() and not markers <= set(np.load(arrays).files)
    if stale or not arrays.is_file():
        command = [
            args.pythae_python,
            str(PYTHAE_HELPER),
            "--model",
            class_name,
            "--fields",
            json.dumps(fields),
            "--dataset",
            args.dataset,
            "--epochs",
            str(args.epochs),
            "--latent_dim",
            str(LATENT),
            "--hidden",
            str(HIDDEN[0]),
            "--nll_samples",
            str(args.nll_samples),
            "--nll_examples",
            str(args.nll_examples),
            "--get_nll_examples",
            str(args.pythae_nll_examples),
            "--num_samples",
            str(args.quality_samples),
            "--seed",
            str(args.seed),
            "--out",
            str(out),
        ] + (["--quick"] if args.quick else [])
        subprocess.run(command + (["--rewrite_arrays"] if stale else []), check=True)
    saved = np.load(arrays)
    timing = json.loads((out / "timing.json").read_text())
    dataset = data.load_dataset("digits" if args.quick else args.dataset, valid_size=0)
    test = dataset.test[: len(saved["reconstructions"])]
    mse = np.mean(np.square(test - saved["reconstructions"]), axis=1)
    net = sample_quality.feature_classifier(
        dataset, args.workdir / "classifiers", num_steps=args.classifier_steps
    )
    real, reference = dataset.test, dataset.train[: len(dataset.test)]

    def score(samples):
        n = min(len(samples), len(real))
        scores = sample_quality.sample_quality(
            net, np.clip(samples[:n], 0, 1), real[:n], reference[:n]
        )
        return _quality(scores)

    result = {
        "library": "pythae",
        "model": name,
        "pythae_model": class_name,
        "seed": args.seed,
        "dataset": dataset.name,
        "train_wall_seconds": timing["train_wall_seconds"],
        "mse": evaluate.mean_and_stderr(mse)[0],
        # Pythae's own estimator (``get_nll``); replaced below by vae_jax's where the
        # weights map, and kept as ``nll_pythae_estimator`` beside it
        "nll": timing.get("nll"),
        "nll_stderr": None,
        "nll_pythae_estimator": timing.get("nll"),
        "prior": score(saved["prior_samples"]) if "prior_samples" in saved else None,
        "gmm": score(saved["gmm_samples"]) if "gmm_samples" in saved else None,
        "samples": np.clip(saved["display_samples"], 0, 1).tolist(),
    }
    checked = timing.get("nll_examples", args.nll_examples)
    result.update(pythae_log_likelihood(name, args, out, dataset, checked) or {})
    if timing.get("nll") is not None:
        result["nll_pythae_estimator_examples"] = checked
    return result


def run_one(args) -> None:
    """One (dataset, model[, pythae]) configuration -> its ``result.json``."""
    from vae_jax import runtime, writer

    runtime.configure()
    out = config_dir(args.workdir, args.dataset, args.model, args.library, args.seed)
    out.mkdir(parents=True, exist_ok=True)
    if args.library == "pythae":
        result = evaluate_pythae(args.model, args, out)
    else:
        result = evaluate_vae_jax(args.model, args, out)
    writer.write_text_atomic(out / "result.json", json.dumps(result, indent=1))


def config_dir(workdir, dataset, model, library, seed: int = 0) -> pathlib.Path:
    prefix = "" if library == "vae_jax" else "pythae_"
    suffix = f"_seed{seed}" if seed else ""
    return pathlib.Path(workdir) / dataset / f"{prefix}{model}{suffix}"


def seeds_of(model: str, num_seeds: int, seeded=SEEDED) -> range:
    """Seeds row ``model`` trains with: ``num_seeds`` for the ``seeded`` rows, else 1."""
    return range(num_seeds if model in seeded else 1)


# ------------------------------------------------------------------ the driver
def pending(args) -> list[tuple[str, str, str, int]]:
    """(dataset, model, library, seed) of every configuration without a result.json,
    all first seeds before any second one."""
    todo = []
    for seed in range(args.seeds):
        for dataset in args.datasets:
            for model in args.models:
                if seed not in seeds_of(model, args.seeds, args.seeded):
                    continue
                libraries = ["vae_jax"]
                if args.pythae_python and ROWS[model].pythae:
                    libraries.append("pythae")
                for library in libraries:
                    out = config_dir(args.workdir, dataset, model, library, seed)
                    if not (out / "result.json").is_file():
                        todo.append((dataset, model, library, seed))
    return todo


def shared_flags(args) -> list[str]:
    flags = [
        "--workdir",
        str(args.workdir),
        "--epochs",
        str(args.epochs),
        "--nll_samples",
        str(args.nll_samples),
        "--nll_examples",
        str(args.nll_examples),
        "--pythae_nll_examples",
        str(args.pythae_nll_examples),
        "--quality_samples",
        str(args.quality_samples),
        "--classifier_steps",
        str(args.classifier_steps),
        "--gmm_examples",
        str(args.gmm_examples),
    ]
    if args.pythae_python:
        flags += ["--pythae_python", args.pythae_python]
    if args.kernel_init:
        flags += ["--kernel_init", args.kernel_init]
    if args.bias_init:
        flags += ["--bias_init", args.bias_init]
    return flags + (["--quick"] if args.quick else [])


def drive(args) -> None:
    """Each pending configuration in its own process, ``--jobs`` at a time; then the
    tables and figures."""
    todo = pending(args)
    print(f"{len(todo)} configuration(s) to run in {args.workdir}", flush=True)
    env = dict(os.environ)
    if args.jobs > 1:
        # torch's OpenMP threads spin-wait: two processes that each take every core
        # ran Pythae's training ~20x slower than one at a time
        threads = str(max(1, (os.cpu_count() or 1) // args.jobs))
        env.setdefault("OMP_NUM_THREADS", threads)
    running: list[tuple[subprocess.Popen, tuple]] = []
    failed = []
    while todo or running:
        while todo and len(running) < args.jobs:
            dataset, model, library, seed = item = todo.pop(0)
            command = [
                sys.executable,
                str(HERE),
                "--dataset",
                dataset,
                "--model",
                model,
                "--library",
                library,
                "--seed",
                str(seed),
                *shared_flags(args),
            ]
            print(f"start {library} {model} on {dataset}, seed {seed}", flush=True)
            running.append((subprocess.Popen(command, env=env), item))
        time.sleep(0.5)
        for proc, item in list(running):
            if proc.poll() is not None:
                running.remove((proc, item))
                status = (
                    "done" if proc.returncode == 0 else f"failed ({proc.returncode})"
                )
                print(f"{status}: {' '.join(map(str, item[::-1]))}", flush=True)
                if proc.returncode:
                    failed.append(item)
    report(args)
    if failed:
        raise SystemExit(f"{len(failed)} configuration(s) failed: {failed}")


def load_results(workdir: pathlib.Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(workdir.glob("*/*/result.json"))]


def report(args) -> None:
    """results.json, results.md, samples.png and scatter.png from every result."""
    from vae_jax import writer

    results = load_results(args.workdir)
    slim = [{k: v for k, v in r.items() if k != "samples"} for r in results]
    writer.write_text_atomic(args.workdir / "results.json", json.dumps(slim, indent=1))
    writer.write_text_atomic(args.workdir / "results.md", markdown(results, args))
    if results:
        figures(results, args.workdir)
    print(markdown(results, args))


COLUMNS = ("mse", "nll", "prior FD", "GMM FD", "AU", "train s")


def _negative_elbo(r):
    return None if r.get("elbo") is None else -r["elbo"]


def _inference_gap(r):
    """-ELBO - NLL = KL(q(z|x) || p(z|x)) up to L_k's own gap, nats (>= 0)."""
    if r.get("elbo") is None or r.get("nll") is None:
        return None
    return -r["elbo"] - r["nll"]


# The first four COLUMNS of one result, the ELBO and the inference gap it leaves;
# lower is better for each (for the gap: a tighter posterior approximation).
COMPARED = {
    "mse": lambda r: r["mse"],
    "nll": lambda r: r.get("nll"),
    "prior FD": lambda r: (r.get("prior") or {}).get("frechet_distance"),
    "GMM FD": lambda r: (r.get("gmm") or {}).get("frechet_distance"),
    "-ELBO": _negative_elbo,
    "inference gap": _inference_gap,
}


def mean_and_spread(values, digits: int) -> str:
    """'mean' of one value, 'mean ± sd' (sample standard deviation) of several; None
    values are left out, '' when none is left."""
    values = [v for v in values if v is not None]
    if not values:
        return ""
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return (
        f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"
    )


def _cells(results: list[dict]) -> list[str]:
    """The COLUMNS of one (dataset, library, model) over its seeds."""
    if not results:
        return [""] * len(COLUMNS)

    units = {
        "/".join(map(str, r["active_units"])) for r in results if r.get("active_units")
    }
    return [
        *(
            mean_and_spread(list(map(value, results)), digits)
            for value, digits in zip(COMPARED.values(), (4, 2, 2, 2))
        ),
        ", ".join(sorted(units)),
        mean_and_spread([r["train_wall_seconds"] for r in results], 0),
    ]


def compare_seeds(ours: list[float], theirs: list[float]) -> tuple[str, str] | None:
    """vae_jax - Pythae on one metric over seeds: (difference of means ± its standard
    error sqrt(s_1^2/n_1 + s_2^2/n_2), verdict at 2 standard errors: better / within
    noise / worse, lower being better); None unless both sides have two or more seeds."""
    if len(ours) < 2 or len(theirs) < 2:
        return None
    diff = statistics.mean(ours) - statistics.mean(theirs)
    se = math.sqrt(
        statistics.variance(ours) / len(ours)
        + statistics.variance(theirs) / len(theirs)
    )
    verdict = "within noise"
    if diff < -2 * se:
        verdict = "better"
    elif diff > 2 * se:
        verdict = "worse"
    return f"{diff:+.4g} ± {se:.2g}", verdict


def side_by_side_lines(by_key: dict[tuple, list[dict]], dataset: str) -> list[str]:
    """Every row of ``dataset`` as 'vae_jax / Pythae' per metric (means over seeds,
    '-' where a library has no value) and the ratio of mean training times."""
    digits = dict(zip(COMPARED, (4, 2, 2, 2, 2, 2)))
    head = ["model", "seeds", *COMPARED, "train s", "speed-up"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for model in ROWS:
        ours = by_key.get((dataset, "vae_jax", model), [])
        theirs = by_key.get((dataset, "pythae", model), [])
        if not ours and not theirs:
            continue

        def pair(value, digits, ours=ours, theirs=theirs):
            cells = []
            for results in (ours, theirs):
                values = [v for v in map(value, results) if v is not None]
                cells.append(f"{statistics.mean(values):.{digits}f}" if values else "-")
            return " / ".join(cells) if theirs else cells[0]

        ratio = ""
        if ours and theirs:
            ratio = f"{_mean_time(theirs) / _mean_time(ours):.1f}x"
        seeds = f"{len(ours)} / {len(theirs)}" if theirs else str(len(ours))
        cells = [pair(value, digits[m]) for m, value in COMPARED.items()]
        cells.append(pair(lambda r: r["train_wall_seconds"], 0))
        lines.append("| " + " | ".join([model, seeds, *cells, ratio]) + " |")
    return [
        "",
        f"### {dataset}: side by side",
        "",
        (
            "vae_jax / Pythae (one value: vae_jax alone; Pythae has no such model); "
            "means over the seeds; speed-up: Pythae's mean training time over "
            "vae_jax's."
        ),
        "",
        *lines,
    ]


def comparison_lines(by_key: dict[tuple, list[dict]], dataset: str) -> list[str]:
    """The rows both libraries trained with several seeds: vae_jax against Pythae per
    metric (``compare_seeds``)."""
    lines = []
    for model in ROWS:
        ours = by_key.get((dataset, "vae_jax", model), [])
        theirs = by_key.get((dataset, "pythae", model), [])
        for metric, value in COMPARED.items():
            a = [v for v in map(value, ours) if v is not None]
            b = [v for v in map(value, theirs) if v is not None]
            compared = compare_seeds(a, b)
            if compared:
                lines.append(
                    f"| {model} | {metric} | {len(a)} / {len(b)} | "
                    f"{compared[0]} | {compared[1]} |"
                )
    if not lines:
        return []
    head = "| model | metric | seeds (vae_jax / Pythae) | vae_jax - Pythae ± SE | verdict |"
    return [
        "",
        f"### {dataset}: vae_jax against Pythae over seeds",
        "",
        (
            "Difference of the means over seeds ± its standard error; lower is better "
            "for every metric; the verdict at 2 standard errors."
        ),
        "",
        head,
        "|---|---|---|---|---|",
        *lines,
    ]


def markdown(results: list[dict], args) -> str:
    """One table per dataset: vae_jax's and Pythae's columns per row (mean ± sd over
    seeds where a row has several) and the ratio of their mean training times."""
    by_key: dict[tuple, list[dict]] = {}
    for r in results:
        key = (r["dataset"], r["library"], r["model"])
        by_key.setdefault(key, []).append(r)
    lines = [
        f"# Zoo benchmark ({'quick: digits, ' if args.quick else ''}{args.epochs} epochs)",
        "",
        (
            f"MLP D-{HIDDEN[0]}-{LATENT}, Adam 1e-3, batch 128; MSE per pixel on the test "
            f"split; NLL = -L_{args.nll_samples} over the first {args.nll_examples} test "
            "images (Bernoulli on grey levels) by vae_jax's estimator in both columns "
            "(Pythae's weights loaded into vae_jax's model where the layers map, else "
            "Pythae's get_nll); FD: Frechet distance in the feature space "
            f"of a classifier of the dataset, {args.quality_samples} samples (prior z ~ p(z); GMM: 10 "
            "components fitted to the training codes; not Inception); AU: active units; "
            "train s: the process's wall time to the end of training. Rows with n seeds: "
            "mean ± standard deviation over the seeds."
        ),
    ]
    for dataset in sorted({r["dataset"] for r in results}):
        head = ["model"] + [f"vae_jax {c}" for c in COLUMNS]
        head += [f"Pythae {c}" for c in COLUMNS] + ["speed-up"]
        lines += ["", f"## {dataset}", "", "| " + " | ".join(head) + " |"]
        lines.append("|" + "---|" * len(head))
        for model in ROWS:
            ours = by_key.get((dataset, "vae_jax", model), [])
            theirs = by_key.get((dataset, "pythae", model), [])
            if not ours and not theirs:
                continue
            ratio = ""
            if ours and theirs:
                ratio = f"{_mean_time(theirs) / _mean_time(ours):.1f}x"
            seeds = max(len(ours), len(theirs))
            label = model if seeds == 1 else f"{model} (n = {seeds})"
            lines.append(
                "| " + " | ".join([label, *_cells(ours), *_cells(theirs), ratio]) + " |"
            )
        lines += side_by_side_lines(by_key, dataset)
        lines += comparison_lines(by_key, dataset)
    lines += estimator_lines(results)
    return "\n".join(lines) + "\n"


def estimator_lines(results: list[dict]) -> list[str]:
    """Pythae's models scored twice on the same test images: vae_jax's -L_k on their
    weights (the estimator of the NLL column) and Pythae's own ``get_nll``."""
    rows = [
        r
        for r in results
        if r["library"] == "pythae"
        and r.get("nll_on_get_nll_examples") is not None
        and r.get("nll_pythae_estimator") is not None
    ]
    if not rows:
        return []
    lines = [
        "",
        "## Pythae's models, two NLL estimators on the same weights",
        "",
        (
            "| dataset | model | seed | test images | vae_jax's -L_k "
            "| Pythae's get_nll | difference |"
        ),
        "|---|---|---|---|---|---|---|",
    ]
    for r in sorted(rows, key=lambda r: (r["dataset"], r["model"], r["seed"])):
        ours, theirs = r["nll_on_get_nll_examples"], r["nll_pythae_estimator"]
        lines.append(
            f"| {r['dataset']} | {r['model']} | {r['seed']} | "
            f"{r['nll_pythae_estimator_examples']} | {ours:.2f} | {theirs:.2f} | "
            f"{theirs - ours:+.3f} |"
        )
    return lines


def _mean_time(results: list[dict]) -> float:
    return statistics.mean(r["train_wall_seconds"] for r in results)


def figures(results: list[dict], workdir: pathlib.Path) -> None:
    """samples.png: 16 samples per (library, model, dataset); scatter.png: MSE against
    prior (or GMM) FD, one point per result."""
    import numpy as np

    from vae_jax import plots

    panels = {}
    for r in results:
        images = np.asarray(r["samples"], np.float32)
        side = math.isqrt(images.shape[1])
        panels[f"{r['library']} {r['model']} ({r['dataset']})"] = images.reshape(
            -1, side, side
        )
    plots.image_panels(
        panels,
        workdir / "samples.png",
        num_columns=4,
        panels_per_row=6,
        suptitle="samples: E[x|z], z ~ p(z) (GMM for models without one)",
    )
    points = []
    for r in results:
        quality = r.get("prior") or r.get("gmm")
        if quality:
            points.append(
                (
                    r["mse"],
                    quality["frechet_distance"],
                    f"{r['library'][0]}:{r['model']} {r['dataset'][:5]}",
                )
            )
    plots.labelled_scatter(
        points,
        workdir / "scatter.png",
        xlabel="test MSE per pixel",
        ylabel="Frechet distance (classifier features)",
        title="reconstruction vs sample quality",
    )


def parse(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=pathlib.Path, required=True)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument(
        "--datasets", nargs="+", default=list(DATASETS), choices=DATASETS
    )
    parser.add_argument("--models", nargs="+", default=list(ROWS), choices=list(ROWS))
    parser.add_argument(
        "--pythae_python", default="", help="Python with torch and pythae"
    )
    parser.add_argument("--jobs", type=int, default=1, help="configurations at a time")
    parser.add_argument(
        "--seeds", type=int, default=3, help="seeds of the --seeded rows"
    )
    parser.add_argument(
        "--seeded",
        nargs="+",
        default=list(SEEDED),
        choices=list(ROWS),
        help="rows trained with --seeds seeds (the others once)",
    )
    parser.add_argument(
        "--kernel_init",
        default="",
        help="vae_jax rows' model.kernel_init (default: each config's own, Flax's "
        "lecun_normal; 'torch_default' is PyTorch's nn.Linear init)",
    )
    parser.add_argument(
        "--bias_init",
        default="",
        help="vae_jax rows' model.bias_init (default: zeros; 'torch_default' is "
        "PyTorch's U(+-1/sqrt(fan_in)))",
    )
    parser.add_argument("--nll_samples", type=int, default=5000)
    parser.add_argument("--nll_examples", type=int, default=2000)
    parser.add_argument(
        "--pythae_nll_examples",
        type=int,
        default=500,
        help="test images Pythae's own get_nll scores, beside vae_jax's L_k on its "
        "weights (0: skip; it runs one image at a time)",
    )
    parser.add_argument("--quality_samples", type=int, default=10_000)
    parser.add_argument("--classifier_steps", type=int, default=2000)
    parser.add_argument("--gmm_examples", type=int, default=10_000)
    parser.add_argument(
        "--quick", action="store_true", help="digits, 3 epochs, small scores"
    )
    parser.add_argument("--dataset", choices=DATASETS, help="run one configuration")
    parser.add_argument("--model", choices=list(ROWS))
    parser.add_argument("--library", choices=["vae_jax", "pythae"], default="vae_jax")
    parser.add_argument("--seed", type=int, default=0, help="of one configuration")
    args = parser.parse_args(argv)
    args.workdir = args.workdir.expanduser().resolve()
    if args.quick:
        args.epochs = min(args.epochs, 3)
        args.nll_samples, args.nll_examples = (
            min(args.nll_samples, 20),
            min(args.nll_examples, 200),
        )
        args.pythae_nll_examples = min(args.pythae_nll_examples, 100)
        args.quality_samples = min(args.quality_samples, 300)
        args.classifier_steps = min(args.classifier_steps, 200)
        args.gmm_examples = min(args.gmm_examples, 1000)
        args.seeds = 1
    if args.kernel_init or args.bias_init:
        from vae_jax.models import layers

        for flag, value, names in (
            ("--kernel_init", args.kernel_init, layers.KERNEL_INITS),
            ("--bias_init", args.bias_init, layers.BIAS_INITS),
        ):
            if value and value not in names:
                parser.error(f"{flag} {value!r}: choose one of {sorted(names)}")
    if (args.dataset is None) != (args.model is None):
        parser.error("--dataset and --model go together (one configuration)")
    if (
        args.pythae_python
        and not pathlib.Path(args.pythae_python).expanduser().is_file()
    ):
        parser.error(f"--pythae_python {args.pythae_python}: no such interpreter")
    return args


def main(argv=None) -> None:
    args = parse(argv)
    if args.model is not None:
        run_one(args)
    else:
        drive(args)


if __name__ == "__main__":
    main()
