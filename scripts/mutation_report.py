"""Summarises the cosmic-ray sessions of ``scripts/mutation_test.sh``.

  python scripts/mutation_report.py ~/runs/mutation [COPY_TO]

Reads ``WORKDIR/sessions/<module>.jsonl`` (``cosmic-ray dump``) and the outcomes of
``mutation_recheck.py`` (survivors rerun against newer tests) and writes
``WORKDIR/report.md``: per module the mutants run, killed (by the session or on
recheck), timed out, judged equivalent (``EQUIVALENT``), survived, filtered out and
still pending; the score (killed + timed out) / (run - equivalent); every equivalent
mutant with the reason, and every survivor with its operator, line and diff; the
minutes pytest spent on each module's mutants. COPY_TO: a second path for the report.
"""

from __future__ import annotations

import json
import pathlib
import re
import sys

# Surviving mutants judged equivalent: (module, line removed, line added, why). A
# mutant matches when its diff removes and adds exactly these lines (stripped).
EQUIVALENT = [
    (
        "distributions",
        "sigmoid = jnp.where(x >= 0, 1.0, e) / (1.0 + e)",
        "sigmoid = jnp.where(x > 0, 1.0, e) / (1.0 + e)",
        "at x = 0, e = 1 and both branches give 1 / 2",
    ),
    (
        "distributions",
        "k = log_diag.shape[0]",
        "k = log_diag.shape[ -1]",
        "log_diag is [K] (one axis): shape[0] is shape[-1]",
    ),
    (
        "objectives",
        "ramp = jnp.minimum(1.0, step.astype(jnp.float32) / jnp.maximum(warmup, 1))",
        "ramp = jnp.minimum(1.0, step.astype(jnp.float32) / jnp.maximum(warmup, 0))",
        (
            "differs only at warmup = 0, where jnp.where(warmup > 0, ramp, 1.0) discards "
            "the ramp"
        ),
    ),
]


# evaluate.py: defaults that size a Monte-Carlo estimate or its memory, PRNG stream
# constants, progress-log lines and timings; none changes what is estimated. Any
# mutant of these lines that survives is equivalent, for the reason given.
_KNOBS = "a default that sizes the computation, not the estimand (chunks and batches are masked, so L_k and the means are the same sums)"
_UNITS = "the number of training examples the active-unit variance is estimated on"
_STREAM = "another PRNG stream for the same estimator: the same distribution of results"
_LOG = (
    "only the progress line printed while L_k runs; the returned values are unchanged"
)
EQUIVALENT_LINES = {
    (
        "theory",
        'eval_fn = evaluate.make_eval_fn(objectives.negative_elbo_for(model), {"beta": 1.0})',
    ): (
        "beta enters only the evaluator's 'loss'; rate_distortion reads recon, kl and "
        "elbo, which are the beta = 1 quantities whatever beta is"
    ),
    (
        "theory",
        "model: nn.Module, params, x: np.ndarray, key: jax.Array, batch_size: int = 500",
    ): _KNOBS,
    ("evaluate", "chunk_size: int = 500,"): _KNOBS,
    (
        "evaluate",
        "log_weights: Callable, num_samples: int = 5000, chunk_size: int = 500",
    ): _KNOBS,
    ("evaluate", "batch_size: int = 20,"): _KNOBS,
    ("evaluate", "num_examples: int = 500,"): _UNITS,
    ("evaluate", "active_examples: int = 500,"): _UNITS,
    (
        "evaluate",
        "exp, params, key: jax.Array | None = None, active_examples: int = 500",
    ): _UNITS,
    ("evaluate", 'key = jax.random.fold_in(exp.keys["eval"], 5000)'): _STREAM,
    (
        "evaluate",
        "train_x = fixed_binarization(train_x, jax.random.fold_in(key, 1))",
    ): _STREAM,
    ("evaluate", "jax.random.fold_in(key, 2),"): _STREAM,
    ("evaluate", "if log_every > 0:"): _LOG,
    ("evaluate", "so_far = np.concatenate(parts)[mask[:done] > 0]"): _LOG,
    ("evaluate", "eta = (time.time() - start) * (len(xb) - done) / done"): _LOG,
    ("evaluate", "-so_far.mean(),"): _LOG,
    ("evaluate", "log_every: int = 0,"): _LOG,
    ("evaluate", "group = log_every if log_every > 0 else len(xb)"): (
        "how many batches go into one call: consecutive groups give the same numbers "
        "(per-example keys are folded from the batch index)"
    ),
    ("evaluate", "seconds = time.time() - start"): (
        "the wall time reported beside the estimate, not the estimate"
    ),
    ("evaluate", "template = jax.eval_shape(lifted, params, xb[0], key, hparams)"): (
        "eval_shape reads only the row's shape and dtype, the same for every row"
    ),
}
_RESHAPE = "numpy reads any negative size in reshape as 'infer this axis', as -1"
_MASKED = "return {k: np.asarray(v).reshape(-1)[mask.reshape(-1) > 0] for k, v in out.items()}"
EQUIVALENT += [
    ("evaluate", _MASKED, _MASKED.replace("reshape(-1)", "reshape(- 2)", 1), _RESHAPE),
    (
        "evaluate",
        _MASKED,
        _MASKED.replace("mask.reshape(-1)", "mask.reshape(- 2)"),
        _RESHAPE,
    ),
    (
        "evaluate",
        "counts = [int(np.sum(v >= threshold)) for v in variances]",
        "counts = [int(np.sum(v > threshold)) for v in variances]",
        (
            "differs only for a variance exactly equal to the threshold 0.01, which a "
            "float32 variance estimate never is in practice"
        ),
    ),
    (
        "vae",
        "eps_live = (z - mean_q[None]) * jnp.exp(-0.5 * logvar_q)[None]  # [S, K]",
        "eps_live = (z + mean_q[None]) * jnp.exp(-0.5 * logvar_q)[None]  # [S, K]",
        (
            "only eps_live's derivative in z is used (its value is replaced by eps), "
            "and with mean_q under stop_gradient it is 1 / sigma either way"
        ),
    ),
    (
        "hierarchical",
        "return mean1 + jnp.exp(0.5 * logvar1) * eps",
        "return mean1 - jnp.exp(0.5 * logvar1) * eps",
        "eps ~ N(0, I) is symmetric: z1 = mean1 -+ sigma1 eps have one distribution",
    ),
    *(
        (
            "clustering",
            "safe_p = jnp.where(p > 0, p, 1.0)",
            f"safe_p = jnp.where({after})",
            (
                "only entries with p = 0 change, and the sum masks them out with "
                "where(p > 0, ..., 0): the placeholder just keeps log finite there"
            ),
        )
        for after in (
            "p >= 0, p, 1.0",
            "p > -1, p, 1.0",
            "p > 0, p, 0.0",
            "p > 0, p, 2.0",
        )
    ),
    *(
        (
            "clustering",
            "return jnp.sum(jnp.where(p > 0, p * (jnp.log(safe_p) - log_q), 0.0))",
            f"return jnp.sum(jnp.where({cond}, p * (jnp.log(safe_p) - log_q), 0.0))",
            (
                "p >= 0 always; where p = 0 the term is 0 * (log 1 - log q) = 0 "
                "(safe_p = 1, log q finite), the value the mask gives"
            ),
        )
        for cond in ("p > -1", "p >= 0")
    ),
    (
        "pca",
        "_, variances, vt = jnp.linalg.svd(cov, hermitian=True)  # [D], [D, D]",
        "_, variances, vt = jnp.linalg.svd(cov, hermitian=False)  # [D], [D, D]",
        (
            "cov is symmetric positive semi-definite: both SVDs give its eigenvalues "
            "and eigenvectors (up to sign); hermitian=True only picks the faster path"
        ),
    ),
    (
        "pca",
        "if x.shape[0] > x.shape[1]:",
        "if x.shape[0] >= x.shape[1]:",
        "at N = D both routes return D components and the same eigenvalues",
    ),
    (
        "pca",
        "return jnp.arccos(jnp.clip(jnp.max(jnp.abs(an.T @ bn), axis=1), 0.0, 1.0))",
        "return jnp.arccos(jnp.clip(jnp.max(jnp.abs(an.T @ bn), axis=1), -1.0, 1.0))",
        "the clipped values are absolute values, never below 0",
    ),
    (
        "gradient_estimators",
        "return vjp(estimator(log_px, mean, logvar, key, num_samples))[0]",
        "return vjp(estimator(log_px, mean, logvar, key, num_samples))[ -1]",
        "the VJP of a one-argument function returns a 1-tuple: [0] is [-1]",
    ),
    (
        "theory",
        "d = x.shape[0]",
        "d = x.shape[ -1]",
        "x is [D] (one axis): shape[0] is shape[-1]",
    ),
    *(
        (
            "pca",
            "if x.shape[0] > x.shape[1]:",
            f"if {cond}:",
            (
                "never true: every fit takes the direct SVD, the other of two routes "
                "to the same PCA (the covariance route is only faster for N > D)"
            ),
        )
        for cond in (
            "x.shape[ -1] > x.shape[1]",
            "x.shape[ 1] > x.shape[1]",
            "x.shape[0] > x.shape[ 0]",
        )
    ),
    *(  # a sum over the last of two axes: axis 1 (or +1) is axis -1
        (module, line, line.replace("axis=-1", axis), f"{shape} has two axes: 1 is -1")
        for module, line, shape in (
            (
                "clustering",
                "sq_dist = jnp.sum(jnp.square(z[None, :] - centroids), axis=-1)  # [C]",
                "the difference [C, K]",
            ),
            (
                "theory",
                "sse = jnp.mean(jnp.sum(jnp.square(x[None] - recon), axis=-1))",
                "the residual [S, D]",
            ),
        )
        for axis in ("axis=1", "axis=+1")
    ),
    *(
        (
            "theory",
            "if model.kl_per_dimension(params, x[:1]) is not None:  # q factorises over dims",
            f"if model.kl_per_dimension(params, x[: {rows}]) is not None:  # q factorises over dims",
            "a probe of whether the family defines per-dimension KLs: any rows answer it",
        )
        for rows in (0, 2)
    ),
    (
        "linear_gaussian",
        "d = x.shape[0]",
        "d = x.shape[ -1]",
        "x is [D] (one axis): shape[0] is shape[-1]",
    ),
]


INTRO = (
    "cosmic-ray mutants of the maths modules (`scripts/mutation_test.sh`), each run "
    "against its module's tests; survivors rerun against the tests written since "
    "(`scripts/mutation_recheck.py`). score = (killed + timed out) / (run - "
    "equivalent); equivalent mutants are listed below with the reason. filtered: "
    "operators outside the compact set, or lines outside a study module's maths "
    "functions. test minutes: pytest's time summed over the module's mutants."
)


def load_session(path: pathlib.Path) -> list[tuple[dict, dict | None]]:
    """(work item, result or None) pairs of one ``cosmic-ray dump``."""
    pairs = []
    for line in path.read_text().splitlines():
        if line.strip():
            item, result = json.loads(line)
            pairs.append((item, result))
    return pairs


def outcome(result: dict | None) -> str:
    """killed | timeout | survived | filtered | incompetent | pending."""
    if result is None:
        return "pending"
    if result.get("worker_outcome") == "skipped":
        return "filtered"
    if result.get("worker_outcome") not in (None, "normal"):
        return "incompetent"  # the mutant did not even import or run
    if result.get("test_outcome") == "killed":
        return "timeout" if result.get("output") == "timeout" else "killed"
    return "survived" if result.get("test_outcome") == "survived" else "incompetent"


def pytest_seconds(result: dict | None) -> float:
    """Seconds pytest reported for one mutant's run ("... in 12.34s"), 0 if none."""
    found = re.findall(r" in ([0-9.]+)s", (result or {}).get("output") or "")
    return float(found[-1]) if found else 0.0


def silent_kill(result: dict | None) -> bool:
    """A kill with no pytest output: the test process died (a crash, a signal, a
    missing interpreter) rather than a test failing; ``mutation_recheck.py`` reruns
    these as it reruns survivors."""
    return outcome(result) == "killed" and not (result or {}).get("output")


# A silent kill's outcome by its rerun: a timeout is no detection, a syntax error no
# mutant a test could judge; a rerun kill (or none) keeps the kill.
_SILENT_KILL_RERUN = {
    "survived": "survived",
    "timeout": "survived",
    "incompetent": "incompetent",
}


def changed_lines(diff: str) -> tuple[str, str]:
    """(removed, added) lines of a one-line mutation's diff, stripped."""
    lines = diff.splitlines()
    removed = [x[1:].strip() for x in lines if x[:1] == "-" and x[:3] != "---"]
    added = [x[1:].strip() for x in lines if x[:1] == "+" and x[:3] != "+++"]
    return " ".join(removed), " ".join(added)


def equivalence(name: str, diff: str) -> str | None:
    """The reason a mutant of module ``name`` is equivalent, or None."""
    removed, added = changed_lines(diff)
    for module, before, after, why in EQUIVALENT:
        if (module, before, after) == (name, removed, added):
            return why
    if (name, removed) in EQUIVALENT_LINES:
        return EQUIVALENT_LINES[(name, removed)]
    if (removed, added) == ("*,", "/,") or (
        ", *," in removed and removed.replace(", *,", ", /,") == added
    ):
        return (
            "keyword-only marker -> positional-only: every caller passes the "
            "arguments after it by keyword, which both signatures accept"
        )
    return None


def summarise(
    sessions: dict[str, list], rechecks: dict[str, dict] | None = None
) -> tuple[list[str], list[str], list[str]]:
    """(table rows, equivalent-mutant lines, survivor sections) of the report."""
    rows, equivalents, survivors = [], [], []
    totals = dict.fromkeys(
        (
            "killed",
            "timeout",
            "equivalent",
            "survived",
            "filtered",
            "incompetent",
            "pending",
            "seconds",
        ),
        0,
    )
    for name, pairs in sessions.items():
        counts = dict.fromkeys(totals, 0)
        recheck = (rechecks or {}).get(name, {})
        for item, result in pairs:
            kind = outcome(result)
            (mutation,) = item["mutations"]
            key = f"{mutation['operator_name']}:{mutation['occurrence']}"
            if silent_kill(result):  # the rerun says what the dead process hid
                kind = _SILENT_KILL_RERUN.get(recheck.get(key), kind)
            if kind == "survived":
                line = mutation["start_pos"][0]
                diff = (result or {}).get("diff", "").strip()
                why = equivalence(name, diff)
                if why:  # judged first: a loaded machine's timeout is no kill
                    kind = "equivalent"
                    removed, added = changed_lines(diff)
                    equivalents.append(
                        f"- {name}:{line} `{removed}` -> `{added}`: {why}"
                    )
                elif recheck.get(key) == "killed":
                    kind = "killed"
                else:
                    survivors.append(
                        f"### {name}:{line} `{mutation['operator_name']}` "
                        f"(occurrence {mutation['occurrence']})\n\n```diff\n{diff}\n```\n"
                    )
            counts[kind] += 1
            counts["seconds"] += pytest_seconds(result)
        for key in totals:
            totals[key] += counts[key]
        rows.append(_row(name, counts))
    rows.append(_row("**all**", totals))
    return rows, equivalents, survivors


def _row(name: str, c: dict[str, int]) -> str:
    run = c["killed"] + c["timeout"] + c["equivalent"] + c["survived"]
    judged = run - c["equivalent"]
    score = f"{100 * (c['killed'] + c['timeout']) / judged:.1f}%" if judged else "-"
    cells = [name, run, c["killed"], c["timeout"], c["equivalent"], c["survived"]]
    cells.append(score)
    cells += [c["incompetent"], c["filtered"], c["pending"], f"{c['seconds'] / 60:.0f}"]
    return "| " + " | ".join(str(x) for x in cells) + " |"


def main(workdir: str, copy_to: str | None = None) -> None:
    root = pathlib.Path(workdir).expanduser()
    sessions = {
        path.stem: load_session(path)
        for path in sorted((root / "sessions").glob("*.jsonl"))
    }
    rechecks = {
        path.name.removesuffix(".recheck.json"): json.loads(path.read_text())
        for path in (root / "sessions").glob("*.recheck.json")
    }
    rows, equivalents, survivors = summarise(sessions, rechecks)
    header = (
        "| module | run | killed | timed out | equivalent | survived | score "
        "| incompetent | filtered | pending | test minutes |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|"
    )
    text = "\n".join(["# Mutation testing", "", INTRO, "", header, *rows, ""])
    text += "\n## Equivalent mutants\n\n" + ("\n".join(equivalents) or "None.") + "\n"
    text += "\n## Survivors\n\n" + ("\n".join(survivors) if survivors else "None.\n")
    (root / "report.md").write_text(text)
    if copy_to:
        pathlib.Path(copy_to).parent.mkdir(parents=True, exist_ok=True)
        pathlib.Path(copy_to).write_text(text)
    print("\n".join([header, *rows]))
    print(f"{len(survivors)} survivors; report: {root / 'report.md'}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "~/runs/mutation", *sys.argv[2:3])
