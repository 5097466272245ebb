"""Tests for vae_jax.figures: every figure of a run says what it shows (unit, split,
decoder means rather than samples)."""

import json

import pytest

from vae_jax import build, figures, objectives, plots

from helpers import make_config, short_run_config

VAE_RECORDS = [
    {"step": 10, "train/objective": 60.0, "train/elbo": -61.0, "train/kl": 2.0},
    {"step": 10, "valid/elbo": -62.0, "valid/kl": 2.1},
    {"step": 20, "train/objective": 50.0, "train/elbo": -51.0, "train/kl": 2.0},
    {"step": 20, "valid/elbo": -52.0, "test/elbo": -53.0, "test/kl": 2.2},
]
AE_RECORDS = [
    {"step": 10, "train/objective": 40.0, "train/mse": 0.05},
    {"step": 20, "train/objective": 30.0, "train/mse": 0.04},
    {"step": 20, "valid/mse": 0.06, "test/mse": 0.07},
]
WAE_RECORDS = [{**r, "train/mmd2": 0.1} if "train/mse" in r else r for r in AE_RECORDS]


@pytest.fixture
def drawn(tmp_path, monkeypatch):
    """draw(config, records) -> {file name: its matplotlib figure} of
    ``write_run_figures`` on ``records`` (figures kept open to be inspected, closed after the test)."""
    kept = []
    monkeypatch.setattr(plots.plt, "close", kept.append)

    def draw(config, records=VAE_RECORDS):
        (tmp_path / "metrics.jsonl").write_text(
            "".join(json.dumps(r) + "\n" for r in records)
        )
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
    fig = drawn(config, AE_RECORDS)
    assert "samples.png" not in fig  # an autoencoder has no p(z)
    (mse,) = fig["curves.png"].axes  # the objective is the MSE itself: one panel
    assert mse.get_title() == "mean squared error"
    assert mse.get_ylabel() == "squared error per pixel"
    assert len(_legend(mse)) == 3
    (recon_ax,) = fig["reconstructions.png"].axes
    assert recon_ax.get_title() == "test split: image | reconstruction g(f(x))"


def test_wae_curves_give_the_objective_per_image_and_the_mmd(drawn):
    """A generative autoencoder (WAE): no ELBO panels, the MSE per pixel, and the
    objective (a squared error summed over pixels + lambda MMD^2) in its own unit."""
    config = make_config(
        "quickstart",
        model={"kind": "wae", "hidden": (16,)},
        objective={"name": "wae_mmd", "mmd_weight": 10.0},
        train={"num_steps": 20},
    )
    fig = drawn(config, WAE_RECORDS)
    panels = {ax.get_title(): ax for ax in fig["curves.png"].axes}
    assert not any("ELBO" in title or "KL" in title for title in panels)
    assert panels["mean squared error"].get_ylabel() == "squared error per pixel"
    objective = next(ax for t, ax in panels.items() if t.startswith("training obj"))
    assert "||x - g(f(x))||^2 + 10 MMD^2(q(z), p(z))" in objective.get_title()
    assert objective.get_ylabel() == "squared error per image (+ penalty)"
    assert "MMD^2(q(z), p(z)), unbiased" in panels
    assert "samples.png" in fig  # a WAE samples z ~ p(z)


@pytest.mark.parametrize("name", sorted(objectives.OBJECTIVES))
def test_every_registered_objective_is_described_with_a_unit(name):
    config = make_config("quickstart", objective={"name": name})
    text, unit = figures.objective_text_and_unit(config)
    units = (figures.NATS, figures.SQUARED_ERROR, figures.SQUARED_ERROR_IMAGE)
    assert text != name and unit.startswith(units)
