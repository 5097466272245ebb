"""Test-wide settings: explicit broadcasting only; logging and the plot backend as
the entry points set them. Shared fixtures; shared plain helpers are in ``helpers.py``."""

import os

import jax
import pytest

from vae_jax import data_files, loop, runtime

from helpers import family_config, straight_config

jax.config.update("jax_numpy_rank_promotion", "raise")
# No persistent compilation cache: every test (and the runners it starts) compiles;
# scripts/mutation_test.sh, which reruns the same tests per mutant, names one.
os.environ[runtime.CACHE_ENV] = os.environ.get("VAE_JAX_TEST_COMPILATION_CACHE", "off")
runtime.configure()


@pytest.fixture
def isolated_search(tmp_path, monkeypatch):
    """Every data search location points into tmp_path (no real data can be found):
    ``$VAE_JAX_DATA``, ``$XDG_CACHE_HOME``, the repository fallback and the cwd."""
    monkeypatch.setenv("VAE_JAX_DATA", str(tmp_path / "env"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(
        data_files, "repo_data_dir", lambda: tmp_path / "repo" / "shared" / "data"
    )
    work = tmp_path / "work" / "cwd"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    return tmp_path


@pytest.fixture(scope="session")
def straight_run(tmp_path_factory):
    """Workdir of ``straight_config(40)`` trained uninterrupted: the reference of the
    resume test, the start of the non-finite test, the run ``runs.load_run`` loads."""
    workdir = tmp_path_factory.mktemp("straight")
    loop.train_and_evaluate(straight_config(40), str(workdir))
    return workdir


@pytest.fixture(scope="session")
def family_run(tmp_path_factory):
    """family_run(name) -> (workdir, final metrics) of a finished 10-step run of that
    family (``helpers.FAMILY_CONFIGS``), trained once per session on first use."""
    finished = {}

    def get(family: str):
        if family not in finished:
            workdir = tmp_path_factory.mktemp(family)
            final = loop.train_and_evaluate(family_config(family), str(workdir))
            finished[family] = workdir, final
        return finished[family]

    return get
