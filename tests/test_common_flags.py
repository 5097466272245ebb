"""Tests for experiments.common_flags: the entry points' bad flags and out-of-memory
errors end with one logged line and exit status 1 (processes that stop before
training)."""

import subprocess
import sys

import jax
import pytest

from experiments import common_flags
from vae_jax import config_fields, models
from vae_jax.configs import default

from helpers import REPO

ENTRY_POINTS = ["experiments.run", "experiments.sweep"]


def _entry(module, tmp_path, *flags):
    command = [
        sys.executable,
        "-m",
        module,
        "--config=experiments/configs/quickstart.py",
        f"--workdir={tmp_path}",
        *flags,
    ]
    return subprocess.run(
        command, cwd=REPO, capture_output=True, text=True, timeout=300, check=False
    )


def _one_error_line(result) -> str:
    """The single line of a run that failed on bad input (and nothing else)."""
    assert result.returncode == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("E")]
    assert len(errors) == 1, result.stderr[-2000:]
    return errors[0]


@pytest.mark.parametrize("module", ENTRY_POINTS)
def test_unknown_config_field_is_one_line_with_the_suggestion(module, tmp_path):
    result = _entry(module, tmp_path, "--config.model.latnt_dim=3")
    line = _one_error_line(result)
    assert result.stderr.strip() == line  # no usage text either
    assert "--config.model.latnt_dim: unknown config field 'latnt_dim'" in line
    assert "did you mean --config.model.latent_dim?" in line


@pytest.mark.parametrize("module", ENTRY_POINTS)
def test_unknown_config_section_is_one_line(module, tmp_path):
    line = _one_error_line(_entry(module, tmp_path, "--config.modl.latent_dim=3"))
    assert "unknown config field 'modl'" in line
    assert "did you mean --config.model.latent_dim?" in line


@pytest.mark.parametrize("module", ENTRY_POINTS)
def test_config_value_of_the_wrong_type_is_one_line(module, tmp_path):
    result = _entry(module, tmp_path, "--config.seed=1e20")
    line = _one_error_line(result)
    assert result.stderr.strip() == line  # no "Pass --helpshort" line
    assert "--config.seed=1e20" in line


def _run_without_workdir(*flags):
    command = [sys.executable, "-m", "experiments.run", *flags]
    return subprocess.run(
        command, cwd=REPO, capture_output=True, text=True, timeout=300, check=False
    )


def test_list_fields_prints_every_field_without_a_workdir_and_exits_0():
    result = _run_without_workdir(
        "--config=experiments/configs/vae_fashion_conv.py",
        "--list_fields",
        "--config.model.latent_dim=3",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert len(lines) == len(config_fields.flat_fields(default.get_config()))
    (latent,) = [line for line in lines if line.startswith("model.latent_dim = ")]
    assert latent.startswith("model.latent_dim = 3 ") and latent.endswith("# K")
    assert any(line.startswith("model.architecture = 'conv' ") for line in lines)
    assert "Traceback" not in result.stderr and "Starting" not in result.stderr


def test_list_models_prints_every_registered_family_and_exits_0():
    result = _run_without_workdir("--list_models")
    assert result.returncode == 0, result.stderr[-2000:]
    names = [line.split()[0] for line in result.stdout.splitlines()]
    assert names == list(models.MODELS)
    for line, family in zip(result.stdout.splitlines(), models.MODELS.values()):
        assert f"objectives: {', '.join(family.objectives)}. " in line


def test_missing_workdir_is_one_line():
    result = _run_without_workdir("--config=experiments/configs/quickstart.py")
    line = _one_error_line(result)
    assert "--workdir is required (except with --list_fields or --list_models)" in line


def test_seed_out_of_range_is_one_line(tmp_path):
    line = _one_error_line(_entry("experiments.run", tmp_path, "--config.seed=-1"))
    assert "config.seed=-1 must be an integer in [0, 2**32 - 1" in line


def test_non_finite_hyperparameter_is_one_line(tmp_path):
    flag = "--config.optim.learning_rate=inf"
    line = _one_error_line(_entry("experiments.run", tmp_path, flag))
    assert "config.optim.learning_rate=inf must be finite" in line


def test_runner_out_of_memory_is_one_line(tmp_path):
    """XLA's RESOURCE_EXHAUSTED, raised here where training would start."""
    script = (
        "import sys, jax\n"
        "from vae_jax import loop\n"
        "from experiments import common_flags, run\n"
        "def oom(config, workdir, **kwargs):\n"
        "    raise jax.errors.JaxRuntimeError(\n"
        "        'RESOURCE_EXHAUSTED: Out of memory while trying to allocate 7.00GiB.'\n"
        "        '\\nBufferAssignment OOM Debugging.')\n"
        "loop.train_and_evaluate = oom\n"
        "sys.argv = ['run', '--workdir=' + sys.argv[1]]\n"
        "common_flags.run(run.main)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    line = _one_error_line(result)
    assert "out of memory: RESOURCE_EXHAUSTED: Out of memory while trying" in line
    assert "lower model sizes" in line and "batch size" in line


def test_out_of_memory_only_matches_resource_exhausted():
    other = jax.errors.JaxRuntimeError("INTERNAL: something else")
    assert common_flags.out_of_memory(other) is None
    oom = jax.errors.JaxRuntimeError("RESOURCE_EXHAUSTED: Out of memory\nmore")
    assert common_flags.out_of_memory(oom).startswith(
        "out of memory: RESOURCE_EXHAUSTED: Out of memory; lower"
    )
