"""Reproduces Burda, Grosse & Salakhutdinov 2015 (IWAE), Table 1, on MNIST.

Trains VAE and IWAE with k in {1, 5, 50} and 1 or 2 stochastic layers
(``experiments/configs/iwae_mnist.py``), and IWAE with DReG encoder gradients (Tucker et
al. 2019) at k = 5, 50, through the 8-stage schedule, one after another here, or
``--max_parallel`` at once in spawned processes (logs in ``<NAME>/log.txt``;
``vae_jax.sweep.launch.train_processes``); ``--one=NAME`` trains just that one here.
IWAE k = 1 is the VAE k = 1 (L_1 is the ELBO) and is trained once. Every configuration
trains in ``<workdir>/<NAME>`` with ``loop.train_and_evaluate`` and resumes from there:
rerun the same command. After each evaluated stage it writes ``<NAME>/stage<i>.json``
(``evaluate.evaluate_model``: test NLL = -L_5000 in nats per image, its standard error
over the test set, active units) and ``stage<i>_ll.npy`` (L_5000 per test image);
``<workdir>/results.md`` puts them beside the paper's values and checks the paper's
orderings at ``--compare_stage`` with paired differences over the test images.

  python scripts/reproduce_iwae.py --workdir=~/runs/iwae --configs=vae1_k1 --stages=5
  python scripts/reproduce_iwae.py --workdir=~/runs/iwae --stages=3   # all 12, in turn
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import pathlib
import sys

from absl import app, flags, logging

NAMES = [f"{m}{l}_k{k}" for l in (1, 2) for m in ("vae", "iwae") for k in (1, 5, 50)]
NAMES += ["dreg1_k5", "dreg1_k50"]  # IWAE with DReG encoder gradients (Tucker et al.)
OBJECTIVES = {"vae": "elbo", "iwae": "iwae", "dreg": "iwae_dreg"}
# L_1 is the ELBO: IWAE k = 1 is the VAE k = 1, trained once.
SAME_AS = {"iwae1_k1": "vae1_k1", "iwae2_k1": "vae2_k1"}
# Distinct configurations, cheapest first (a k = 50 step costs about 10x a k = 1 step),
# the DReG rows last.
DEFAULT_CONFIGS = sorted(
    (n for n in NAMES if n not in SAME_AS),
    key=lambda n: (n.startswith("dreg"), int(n.split("_k")[1]), n[-4:], n),
)
# Test NLL (nats), Table 1 as quoted by nbip/IWAE's README (see shared REFERENCES.md A1);
# binarized_mnist: Appendix D (1 layer IWAE only).
PAPER_NLL = {
    "mnist": {
        "vae1": (86.76, 86.47, 86.35),
        "iwae1": (86.76, 85.54, 84.78),
        "vae2": (85.33, 85.01, 84.78),
        "iwae2": (85.33, 83.89, 82.90),
    },
    "binarized_mnist": {"iwae1": (88.71, 87.63, 87.10)},
}
# nbip/IWAE's TF2 reproduction (its README; shared REFERENCES.md A1): dynamic MNIST, full
# schedule, k_eval = 5000; DReG = IWAE trained with DReG gradients.
NBIP_NLL = {
    "vae1": (86.35, 86.10, 86.06),
    "iwae1": (86.35, 85.18, 84.59),
    "vae2": (84.83, 84.08, 83.89),
    "iwae2": (84.83, 83.48, 82.82),
    "dreg1": (86.08, 84.90, 84.32),
}
# Active units of 50, 1 layer: from memory, UNVERIFIED (REFERENCES.md A1).
PAPER_AU = {"vae1": (19, 20, 20), "iwae1": (19, 22, 25)}
KS = (1, 5, 50)

_WORKDIR = flags.DEFINE_string(
    "workdir", None, "Root directory; one subdirectory per config."
)
_DATA = flags.DEFINE_enum(
    "data",
    "mnist",
    ["mnist", "binarized_mnist"],
    "mnist: dynamic binarization, 400 held out (the paper's Table 1); "
    "binarized_mnist: Larochelle's fixed binarization (App. D).",
)
_CONFIGS = flags.DEFINE_list(
    "configs",
    DEFAULT_CONFIGS,
    f"Which of {NAMES} (default: the distinct ones, cheapest first).",
)
_STAGES = flags.DEFINE_integer(
    "stages", 7, "Stop after stage i (0..7; 3^i epochs each)."
)
_EVAL_STAGES = flags.DEFINE_list(
    "eval_stages",
    ["last"],
    "Stages to evaluate (NLL, active units): 'last', 'all' or a list of indices.",
)
_EVAL_SAMPLES = flags.DEFINE_integer(
    "eval_samples", 5000, "k of the test NLL estimate L_k."
)
_EVAL_EXAMPLES = flags.DEFINE_integer(
    "eval_examples", 0, "Test images to use; 0 = all."
)
_CHUNK = flags.DEFINE_integer("chunk_size", 500, "Importance samples per chunk.")
_AU_EXAMPLES = flags.DEFINE_integer(
    "active_examples", 500, "Training images for active units."
)
_ONE = flags.DEFINE_string("one", None, "Run only this config, in this process.")
_MAX_PARALLEL = flags.DEFINE_integer("max_parallel", 1, "Configs trained at once.")
_SINGLE_THREAD = flags.DEFINE_bool(
    "single_thread",
    True,
    "Limit each child to one XLA CPU thread when max_parallel > 1.",
)
_SEED = flags.DEFINE_integer("seed", 0, "config.seed.")
_COMPARE_STAGE = flags.DEFINE_integer(
    "compare_stage", 3, "Stage at which results.md checks the paper's orderings."
)


def parse_name(name: str) -> tuple[str, int, int]:
    """'iwae2_k50' -> ('iwae', 2, 50); model in ``OBJECTIVES``."""
    if name not in NAMES:
        raise app.UsageError(f"Unknown config {name!r}; choose from {NAMES}.")
    model, k = name.split("_k")
    return model[:-1], int(model[-1]), int(k)


def make_config(name: str, data: str, seed: int):
    """iwae_mnist's config for ``name`` on ``data``."""
    from vae_jax.configs import iwae_mnist

    objective, layers, k = parse_name(name)
    config = iwae_mnist.get_config()
    config.seed = seed
    config.objective.name = OBJECTIVES[objective]
    config.objective.num_samples = k
    config.model.stochastic_layers = layers
    config.model.latent_dim = 50 if layers == 1 else 100
    if data == "binarized_mnist":
        config.data.name, config.data.binarize, config.data.valid_size = (
            data,
            "none",
            -1,
        )
    return config


@dataclasses.dataclass(frozen=True)
class Settings:
    """The flags that training and evaluating a config read (spawned training
    processes parse no flags: they get this)."""

    data: str
    seed: int
    stages: int
    eval_stages: tuple[str, ...]
    eval_samples: int
    eval_examples: int
    chunk_size: int
    active_examples: int

    @classmethod
    def from_flags(cls) -> Settings:
        return cls(
            _DATA.value,
            _SEED.value,
            _STAGES.value,
            tuple(_EVAL_STAGES.value),
            _EVAL_SAMPLES.value,
            _EVAL_EXAMPLES.value,
            _CHUNK.value,
            _AU_EXAMPLES.value,
        )


def evaluate_stage(workdir: pathlib.Path, stage: int, settings: Settings) -> dict:
    """Test NLL (-L_k) and active units of the latest checkpoint in ``workdir``
    (``evaluate.evaluate_model``), as ``stage<i>.json`` records them."""
    import numpy as np

    from vae_jax import evaluate, runs

    run = runs.load_run(workdir)
    test = run.eval_split("test")
    if settings.eval_examples:
        test = test[: settings.eval_examples]
    out = evaluate.evaluate_model(
        run.experiment,
        run.params,
        test,
        settings.eval_samples,
        chunk_size=settings.chunk_size,
        batch_size=20,
        active_examples=settings.active_examples,
        log_every=50,
        per_example=True,
    )
    np.save(workdir / f"stage{stage}_ll.npy", out.pop("log_likelihoods"))
    units, variances = out.pop("active_units"), out.pop("unit_variances")
    seconds = out.pop("seconds")
    return {
        "stage": stage,
        "step": run.step,
        "epochs": run.step / run.experiment.steps_per_epoch,
        **out,
        "estimator": f"-L_k, k={settings.eval_samples}, nats per image",
        "active_units": units,
        "active_examples": settings.active_examples,
        "unit_variances": [np.round(v, 5).tolist() for v in variances],
        "eval_seconds": seconds,
    }


def eval_stage_set(last: int, values) -> set[int]:
    """Stage indices of ``--eval_stages`` values ('last', 'all' or indices)."""
    if list(values) == ["all"]:
        return set(range(last + 1))
    return {last if v == "last" else int(v) for v in values}


def run_one(name: str, root: pathlib.Path, settings: Settings) -> None:
    """Trains ``name`` stage by stage (resuming), evaluating the chosen stages."""
    from vae_jax import loop, optim

    workdir = root / name
    to_eval = eval_stage_set(settings.stages, settings.eval_stages)
    # The learning rate is a function of the step, so training straight to a later
    # stage's end passes through the stages in between: only evaluated ones stop.
    last = settings.stages
    for stage in sorted({s for s in to_eval if s <= last} | {last}):
        result_path = workdir / f"stage{stage}.json"
        if result_path.exists():
            continue
        config = make_config(name, settings.data, settings.seed)
        steps_per_epoch = 59_600 // config.train.batch_size
        if config.data.name == "binarized_mnist":
            steps_per_epoch = 50_000 // config.train.batch_size
        config.train.num_steps = optim.burda_stage_end(stage, steps_per_epoch)
        logging.info("%s: stage %d, to step %d", name, stage, config.train.num_steps)
        loop.train_and_evaluate(config, str(workdir))
        if stage in to_eval:
            result = evaluate_stage(workdir, stage, settings)
            result_path.write_text(json.dumps(result, indent=1))
            logging.info(
                "%s stage %d: test NLL %.2f +- %.2f nats, active units %s",
                name,
                stage,
                result["nll"],
                result["nll_stderr"],
                result["active_units"],
            )


def _train_config(run, workdir, settings: Settings) -> None:
    """``train_processes``'s train_fn: ``run_one`` of the config ``run.name``."""
    run_one(run.name, pathlib.Path(workdir), settings)


def launch_all(names: list[str], root: pathlib.Path, settings: Settings) -> dict:
    """Trains ``names`` by ``launch.train_processes``, ``--max_parallel`` at once;
    returns {name: "failed: ..."} for failures."""
    from vae_jax.sweep import launch, spec

    env = {}
    if _MAX_PARALLEL.value > 1 and _SINGLE_THREAD.value:
        env["XLA_FLAGS"] = (
            os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false"
            " intra_op_parallelism_threads=1"
        ).strip()
    runs = [
        spec.Run(n, {}, make_config(n, settings.data, settings.seed)) for n in names
    ]
    train_fn = functools.partial(_train_config, settings=settings)
    return launch.train_processes(
        runs, root, _MAX_PARALLEL.value, train_fn=train_fn, env=env
    )


def trained_dir(root: pathlib.Path, name: str) -> pathlib.Path:
    """Where config ``name`` was trained (that of the config it equals, SAME_AS)."""
    return root / SAME_AS.get(name, name)


def stage_results(root: pathlib.Path, name: str) -> dict[int, dict]:
    """{stage: stage<i>.json} of config ``name`` (or of the config it equals, SAME_AS)."""
    workdir = trained_dir(root, name)
    return {
        int(p.stem[5:]): json.loads(p.read_text()) for p in workdir.glob("stage*.json")
    }


def per_image(root: pathlib.Path, name: str, stage: int):
    """L_k of every test image (``stage<i>_ll.npy``, [N] float64), or None."""
    import numpy as np

    path = trained_dir(root, name) / f"stage{stage}_ll.npy"
    return np.load(path) if path.exists() else None


def train_seconds(root: pathlib.Path, name: str) -> float | None:
    """The wall time the config's run spent training, over its resumes
    (``vae_jax.train_clock``)."""
    from vae_jax import train_clock

    return train_clock.recorded_seconds(trained_dir(root, name))


def nll_claims() -> list[tuple[str, str]]:
    """The paper's NLL orderings as (better, worse) pairs: IWAE k = 50 < IWAE k = 5 <
    VAE k = 5 per depth; 2 layers < 1 layer per objective and k; and, beyond the
    paper, DReG's IWAE against the plain IWAE gradient."""
    pairs = []
    for layers in (1, 2):
        pairs += [(f"iwae{layers}_k50", f"iwae{layers}_k5")]
        pairs += [(f"iwae{layers}_k5", f"vae{layers}_k5")]
    for model, k in (("vae", 1), ("vae", 5), ("vae", 50), ("iwae", 5), ("iwae", 50)):
        pairs.append((f"{model}2_k{k}", f"{model}1_k{k}"))
    pairs += [("dreg1_k5", "iwae1_k5"), ("dreg1_k50", "iwae1_k50")]
    return pairs


def paired_nll_difference(ll_better, ll_worse) -> tuple[float, float]:
    """NLL(better) - NLL(worse) = mean_x [L(worse) - L(better)] over one test set, and
    its paired standard error std_x(.) / sqrt(N): the models see the same images, so
    the per-image spread cancels (far tighter than the two NLLs' own errors)."""
    from vae_jax import evaluate

    return evaluate.mean_and_stderr(ll_worse - ll_better)


def ordering_rows(root: pathlib.Path, stage: int) -> list[list]:
    """One row per claim whose two configs are evaluated at ``stage``: the NLL claims
    (``nll_claims``; holds if the difference is negative, margin in paired standard
    errors) and IWAE's active units >= the VAE's at the same depth and k."""
    rows = []
    for better, worse in nll_claims():
        a, b = per_image(root, better, stage), per_image(root, worse, stage)
        if a is None or b is None:
            continue
        diff, se = paired_nll_difference(a, b)
        rows.append(
            [
                f"NLL {better} < {worse}",
                f"{diff:+.3f} ± {se:.3f} nats",
                "holds" if diff < 0 else "does not hold",
                f"{abs(diff) / se:.1f} SE" if se > 0 else "n/a",
            ]
        )
    for layers in (1, 2):
        for k in (5, 50):
            iwae = stage_results(root, f"iwae{layers}_k{k}").get(stage)
            vae = stage_results(root, f"vae{layers}_k{k}").get(stage)
            if iwae is None or vae is None:
                continue
            au_iwae, au_vae = sum(iwae["active_units"]), sum(vae["active_units"])
            rows.append(
                [
                    f"active units iwae{layers}_k{k} >= vae{layers}_k{k}",
                    f"{au_iwae} vs {au_vae}",
                    "holds" if au_iwae >= au_vae else "does not hold",
                    f"{au_iwae - au_vae:+d} units",
                ]
            )
    return rows


def write_table(root: pathlib.Path, names: list[str], data: str, stage: int) -> str:
    """``results.md``: every evaluated stage of each config beside the paper, then
    the paper's orderings checked at ``stage`` (``ordering_rows``)."""
    from vae_jax import writer

    header = [
        "config",
        "stage (epochs)",
        "test NLL = -L_5000 (nats)",
        "paper NLL",
        "diff",
        "nbip/IWAE NLL",
        "active units",
        "paper AU (unverified)",
        "train time (h)",
    ]
    rows = []
    for name in names:
        model, layers, k = parse_name(name)
        paper = PAPER_NLL[data].get(f"{model}{layers}")
        paper_nll = paper[KS.index(k)] if paper else None
        au = PAPER_AU.get(f"{model}{layers}") if data == "mnist" else None
        nbip = NBIP_NLL.get(f"{model}{layers}") if data == "mnist" else None
        seconds = train_seconds(root, name)
        label = f"{name} (= {SAME_AS[name]})" if name in SAME_AS else name
        for _, r in sorted(stage_results(root, name).items()):
            diff = f"{r['nll'] - paper_nll:+.2f}" if paper_nll else "n/a"
            rows.append(
                [
                    label,
                    f"{r['stage']} ({r['epochs']:.0f})",
                    (
                        f"{r['nll']:.2f} ± {r['nll_stderr']:.2f} "
                        f"(k={int(r['num_samples'])}, N={int(r['num_examples'])})"
                    ),
                    paper_nll if paper_nll else "n/a",
                    diff,
                    nbip[KS.index(k)] if nbip else "n/a",
                    "/".join(map(str, r["active_units"])),
                    au[KS.index(k)] if au else "n/a",
                    f"{seconds / 3600:.2f}" if seconds is not None else "n/a",
                ]
            )
    text = (
        f"# IWAE reproduction ({data})\n\nTest NLL = -mean_x L_k(x), nats per image, "
        "lower is better; ± is the standard error over test images. Paper: Burda et al. "
        "2015, Table 1 (full 3,280-epoch schedule = stage 7); earlier stages are not "
        "comparable to it. nbip/IWAE: its TF2 reproduction of the full schedule. "
        "Active units: Var_x E_q[z_u|x] >= 0.01 on training images "
        "(per stochastic layer). Train time: wall time of all training runs of the "
        "config (to its last stage), summed over resumes.\n\n"
        + writer.markdown_table(header, rows)
        + "\n"
    )
    orderings = ordering_rows(root, stage)
    if orderings:
        text += (
            f"\n## The paper's orderings at stage {stage} (equal budgets)\n\n"
            "NLL differences are paired over the same test images: mean_x of the "
            "per-image difference ± its standard error; margin = |difference| / SE. "
            "Active units summed over layers.\n\n"
            + writer.markdown_table(
                ["claim", "measured", "verdict", "margin"], orderings
            )
            + "\n"
        )
    (root / "results.md").write_text(text)
    return text


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    from vae_jax import preemption, runtime

    runtime.configure()
    root = pathlib.Path(os.path.expanduser(_WORKDIR.value))
    root.mkdir(parents=True, exist_ok=True)

    settings = Settings.from_flags()
    try:
        if _ONE.value:
            parse_name(_ONE.value)
            run_one(_ONE.value, root, settings)
        else:
            names = [n for n in _CONFIGS.value if parse_name(n)]
            launch_all(names, root, settings)
    except preemption.Preempted as stop:  # SIGTERM: checkpoint saved, rerun resumes
        logging.warning("%s", stop)
        sys.exit(0)
    print(write_table(root, NAMES, _DATA.value, _COMPARE_STAGE.value))


if __name__ == "__main__":
    flags.mark_flags_as_required(["workdir"])
    app.run(main)
