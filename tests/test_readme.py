"""The README's Python snippets run as written, from any directory."""

import re

import jax
import numpy as np

from vae_jax import models
from vae_jax.configs import quickstart

from helpers import REPO


def _snippet(section: str) -> str:
    text = (REPO / "README.md").read_text()
    pattern = rf"## {section}\n.*?```python\n(.*?)```"
    return re.search(pattern, text, re.DOTALL).group(1)


def test_readme_python_snippet_runs(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # the installed package, not the repository root
    namespace = {}
    exec(compile(_snippet("From Python"), "README.md", "exec"), namespace)  # noqa: S102
    assert namespace["samples"].shape == (16, 64)


def test_readme_adding_a_model_snippet_registers_a_working_family(monkeypatch):
    monkeypatch.setattr(models, "MODELS", dict(models.MODELS))  # undone after the test
    namespace = {}
    exec(compile(_snippet("Adding a model"), "README.md", "exec"), namespace)  # noqa: S102
    config = quickstart.get_config()
    config.model.kind = "laplace_vae"
    model = models.build_model(config.model, likelihood="bernoulli", image_shape=(8, 8))
    assert isinstance(model, namespace["LaplacePriorVAE"])
    x = jax.random.uniform(jax.random.key(0), (64,))
    params = model.init(jax.random.key(1), x)
    recon, kl = model.elbo_terms(params, x, jax.random.key(2), 1000)
    assert np.isfinite(recon) and kl > 0  # sampled KL of a non-degenerate q
