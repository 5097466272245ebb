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


def test_readme_finished_run_snippet_runs_on_a_finished_run(straight_run):
    """The "A finished run" snippet on a finished run (k = 5000 cut to 20 for time)."""
    code = _snippet("A finished run: load, evaluate, share")
    code = code.replace('"/tmp/vae_jax/quickstart"', repr(str(straight_run)))
    code = code.replace("run.log_likelihood(x, 5000)", "run.log_likelihood(x, 20)")
    namespace = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102
    x, ll, elbo = namespace["x"], namespace["ll"], namespace["elbo"]
    assert namespace["samples"].shape == (16, x.shape[1])
    assert ll.shape == elbo.shape == (x.shape[0],)
    assert ll.mean() > elbo.mean()  # L_20 >= L_1 on average
