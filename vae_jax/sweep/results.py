"""What a sweep leaves on disk: ``done.json`` markers and the results table and plot.

Config ``<name>`` gets ``<workdir>/<name>/done.json`` once finished (``write_done``), so
a rerun skips it (``is_finished``); ``write_results`` tabulates every config in
``<workdir>/results.{csv,md,png}``.
"""

from __future__ import annotations

import csv
import io
import json
import pathlib
from collections.abc import Mapping, Sequence

import ml_collections
import numpy as np
from absl import logging

from vae_jax import provenance, writer
from vae_jax.sweep.spec import Run, flatten, format_value


def _config_json(config: ml_collections.ConfigDict) -> dict:
    return json.loads(config.to_json_best_effort())


def write_done(run: Run, run_dir, final: Mapping[str, float]) -> None:
    """``<name>/done.json``: the config (to detect changes), overrides, final metrics."""
    record = {
        "name": run.name,
        "overrides": run.overrides,
        "final": dict(final),
        "config": _config_json(run.config),
    }
    writer.write_text_atomic(
        pathlib.Path(run_dir) / "done.json", json.dumps(record, indent=1)
    )


def config_changes(saved: Mapping, config: ml_collections.ConfigDict) -> list[str]:
    """Fields whose value differs between a finished run's saved config and ``config``.

    Only fields present in both count: a field added to the library later (whose default
    keeps the earlier behaviour) or one since removed does not make a run stale.
    """
    old, new = (
        provenance.flat_fields(saved),
        provenance.flat_fields(_config_json(config)),
    )
    return sorted(k for k in old.keys() & new.keys() if old[k] != new[k])


def is_finished(run: Run, workdir) -> bool:
    """Whether ``<workdir>/<name>`` holds this config's finished run: a ``done.json`` of
    the same config (``config_changes`` empty), or (``train.num_steps`` > 0) the final
    evaluation in metrics.jsonl."""
    run_dir = pathlib.Path(workdir) / run.name
    try:
        done = json.loads((run_dir / "done.json").read_text())
        changed = config_changes(done.get("config") or {}, run.config)
        if changed:
            logging.info(
                "%s: config changed since it finished (%s); training it again",
                run.name,
                ", ".join(changed),
            )
        return bool(done.get("config")) and not changed
    except (OSError, json.JSONDecodeError, AttributeError):
        pass
    steps = run.config.train.num_steps
    records = writer.read_metrics(run_dir / "metrics.jsonl")
    return steps > 0 and any(
        r["step"] == steps and any(k.startswith(("valid/", "test/")) for k in r)
        for r in records
    )


def _final_metrics(run_dir: pathlib.Path) -> dict[str, float]:
    """The last value of every metric in metrics.jsonl: final train window and eval."""
    out = {}
    for record in writer.read_metrics(run_dir / "metrics.jsonl"):
        out.update({k: v for k, v in record.items() if v is not None})
    return out


# Within a split: the headline numbers first, the step diagnostics last.
_FIRST = ("elbo", "iwae_bound", "mse", "objective", "recon", "kl")
_LAST = ("grad_norm", "nonfinite", "nonfinite_state")


def _metric_order(name: str):
    prefixes = ("step", "train/", "valid/", "test/")
    split = next((i for i, p in enumerate(prefixes) if name.startswith(p)), 4)
    short = name.split("/", 1)[-1]
    if short in _FIRST:
        rank = _FIRST.index(short)
    elif short in _LAST:
        rank = len(_FIRST) + 1 + _LAST.index(short)
    else:
        rank = len(_FIRST)
    return split, rank, name


def write_results(
    runs: Sequence[Run], workdir, failures: Mapping[str, str] | None = None
):
    """``results.csv`` and ``results.md`` (a row per config: overrides, status, final
    train metrics (``train/objective``, ``train/elbo``, ...: means of the last log
    window) and final ``valid/`` and ``test/`` metrics (``elbo`` in nats per image,
    ``mse`` in squared error per pixel, ...)) and ``results.png``; returns the rows
    as dicts."""
    workdir, rows = pathlib.Path(workdir), []
    keys = list(dict.fromkeys(k for run in runs for k in run.overrides))
    for run in runs:
        metrics, fields = _final_metrics(workdir / run.name), flatten(run.config)
        status = "done" if is_finished(run, workdir) else (failures or {}).get(run.name)
        status = status or ("incomplete" if metrics else "pending")
        values = {k: fields[k] for k in keys}  # the base value where not overridden
        rows.append({"name": run.name, **values, "status": status, **metrics})
    metric_names = sorted(
        set().union(*rows) - {"name", "status", *keys}, key=_metric_order
    )
    columns = ["name", *keys, "status", *metric_names]
    text = io.StringIO()
    table = csv.DictWriter(text, columns, lineterminator="\n")
    table.writeheader()
    table.writerows(
        {k: format_value(v) if k in keys else v for k, v in r.items()} for r in rows
    )
    writer.write_text_atomic(workdir / "results.csv", text.getvalue())
    cell = lambda c, v: (
        f"{v:.4g}" if isinstance(v, float) and c not in keys else format_value(v)
    )
    cells = [[cell(c, r[c]) if c in r else "" for c in columns] for r in rows]
    table_md = writer.markdown_table(columns, cells)
    writer.write_text_atomic(workdir / "results.md", table_md + "\n")
    plot_results(rows, keys, workdir / "results.png")
    return rows


# What results.png plots, the first present: (metric, its unit).
PLOTTED = (
    ("test/elbo", "nats per image, higher is better"),
    ("valid/elbo", "nats per image, higher is better"),
    ("test/mse", "squared error per pixel"),
    ("valid/mse", "squared error per pixel"),
    ("train/elbo", "nats per image, higher is better"),
    ("train/mse", "squared error per pixel"),
    ("train/objective", "training objective"),
)


def plot_results(rows: Sequence[Mapping], keys: Sequence[str], path) -> None:
    """One panel per swept field: the final test ELBO (else MSE; else valid, train) of
    each finished config against the field's value, drawn above the line of its
    mean over the other fields."""
    from vae_jax.plots import plt

    done = [r for r in rows if r["status"] == "done"]
    metric, unit = next(
        ((m, u) for m, u in PLOTTED if any(m in r for r in done)), (None, None)
    )
    if metric is None or not keys:
        return
    fig, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 3.2), squeeze=False)
    for ax, key in zip(axes[0], keys):
        points = [(r[key], r[metric]) for r in done if key in r and metric in r]
        numeric = all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v, _ in points
        )
        labels = sorted({format_value(v) for v, _ in points}) if not numeric else []
        xs = [v if numeric else labels.index(format_value(v)) for v, _ in points]
        ys = [m for _, m in points]
        values = sorted(set(xs))
        means = [np.mean([y for x, y in zip(xs, ys) if x == u]) for u in values]
        ax.plot(  # below the configs' points (zorder), which stay visible
            values,
            means,
            "-",
            color="C1",
            linewidth=1.5,
            alpha=0.8,
            zorder=2,
            label="mean over other fields",
        )
        ax.scatter(
            xs,
            ys,
            s=28,
            color="C0",
            edgecolors="black",
            linewidths=0.6,
            zorder=3,
            label="configs",
        )
        if numeric and values[0] > 0 and values[-1] >= 10 * values[0]:
            ax.set_xscale("log")
        if not numeric:
            ax.set_xticks(range(len(labels)), labels)
        ax.set(
            xlabel=key,
            ylabel=f"final {metric}\n({unit})",
            title=f"{metric} vs {key.split('.')[-1]}",
        )
        if numeric and all(isinstance(v, int) for v in values):
            ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
