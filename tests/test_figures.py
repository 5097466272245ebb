"""Tests for vae_jax.figures: every figure of a run says what it shows (unit, split,
decoder means rather than samples)."""

import json

import pytest

from vae_jax import build, figures, plots

from helpers import make_config, short_run_config

RECORDS = [
    {"step": 10, "train/objective": 60.0, "train/elbo": -61.0, "train/kl": 2.0},
    {"step": 10, "valid/elbo": -62.0, "valid/kl": 2.1},
    {"step": 20, "train/objective": 50.0, "train/elbo": -51.0, "train/kl": 2.0},
    {"step": 20, "valid/elbo": -52.0, "test/elbo": -53.0, "test/kl": 2.2},
    {"step": 20, "train/mse": 0.05, "valid/mse": 0.06, "test/mse": 0.07},
]


@pytest.fixture
def drawn(tmp_path, monkeypatch):
    """draw(config) -> {file name: its matplotlib figure} of ``write_run_figures`` on
    ``RECORDS`` (figures kept open to be inspected, closed after the test)."""
    kept = []
    monkeypatch.setattr(plots.plt, "close", kept.append)
    (tmp_path / "metrics.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in RECORDS)
    )

    def draw(config):
        exp = build.build_experiment(config)
        kept.clear()
        figures.write_run_figures(exp, exp.init_state().params, tmp_path)
        names = ["curves.png", "reconstructions.png", "samples.png"]
        return dict(zip(names, list(kept)))

    yield draw
    monkeypatch.undo()
    plots.plt.close("all")


def _legend(ax):
    return [t.get_text() for t in ax.get_legend().get_texts()]


def test_vae_figures_name_units_splits_and_decoder_means(drawn):
    config = short_run_config(20, eval_every=10)
    config.objective.beta = 0.5
    fig = drawn(config)
    panels = {ax.get_title(): ax for ax in fig["curves.png"].axes}
    elbo = panels["ELBO (higher is better)"]
    assert elbo.get_ylabel() == "nats per image"
    assert _legend(elbo) == [
        "train (minibatch means)",
        "valid (whole split)",
        "test (whole split)",
    ]
    objective = next(ax for t, ax in panels.items() if t.startswith("training obj"))
    assert "recon + 0.5 KL" in objective.get_title()
    assert objective.get_ylabel() == "nats per image"
    assert panels["KL(q(z | x) || p(z))"].get_ylabel() == "nats per image"
    suptitle = fig["curves.png"].get_suptitle()
    assert "valid: every 10 steps and at the end; test: at the end" in suptitle
    (recon_ax,) = fig["reconstructions.png"].axes
    assert recon_ax.get_title().startswith("test split: image | reconstruction")
    (samples_ax,) = fig["samples.png"].axes
    assert "decoder means E[x | z] of z ~ p(z)" in samples_ax.get_title()
    assert "not samples of x" in samples_ax.get_title()


def test_autoencoder_curves_are_squared_error_per_pixel(drawn):
    config = make_config(
        "quickstart",
        model={"kind": "ae", "hidden": (16,)},
        objective={"name": "mse"},
        train={"num_steps": 20},
    )
    fig = drawn(config)
    assert "samples.png" not in fig  # an autoencoder has no p(z)
    (mse,) = fig["curves.png"].axes  # the objective is the MSE itself: one panel
    assert mse.get_title() == "mean squared error"
    assert mse.get_ylabel() == "squared error per pixel"
    assert len(_legend(mse)) == 3
    (recon_ax,) = fig["reconstructions.png"].axes
    assert recon_ax.get_title() == "test split: image | reconstruction g(f(x))"
