"""Importing the library changes no global state; entry points configure it; the
start-up warning for a GPU that JAX does not use and the extras it names."""

import subprocess
import sys
import threading
import types

import pytest

from vae_jax import runtime

from helpers import REPO

PROBE = """
import logging, pkgutil, importlib, matplotlib, jax
from absl import logging as absl_logging
before = (matplotlib.get_backend(), list(absl_logging.get_absl_logger().filters),
          logging.getLogger("orbax").level, absl_logging.get_verbosity(),
          jax.config.jax_numpy_rank_promotion, jax.config.jax_enable_x64)
import vae_jax
names = [m.name for m in pkgutil.walk_packages(vae_jax.__path__, "vae_jax.")]
for name in names:
    importlib.import_module(name)
after = (matplotlib.get_backend(), list(absl_logging.get_absl_logger().filters),
         logging.getLogger("orbax").level, absl_logging.get_verbosity(),
         jax.config.jax_numpy_rank_promotion, jax.config.jax_enable_x64)
assert len(names) > 40, names
assert before == after, (before, after)
from vae_jax import runtime
runtime.configure()
assert matplotlib.get_backend().lower() == "agg"
assert any(isinstance(f, runtime.DropOrbaxInfo)
           for f in absl_logging.get_absl_logger().filters)
print("ok", len(names))
"""


def test_importing_every_module_changes_no_global_state():
    env_backend = {"MPLBACKEND": "pdf"}  # a non-default backend import must keep
    import os

    env = {**os.environ, **env_backend}
    out = subprocess.run(
        [sys.executable, "-c", PROBE],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.startswith("ok")


def _no_path(path):
    return False


def _no_program(name):
    return None


def _nvidia_smi(name):
    return "/usr/bin/nvidia-smi" if name == "nvidia-smi" else None


def test_a_gpu_jax_does_not_use_is_one_warning_naming_the_extras():
    (line,) = runtime.backend_warnings("cpu", {}, _no_path, _nvidia_smi)
    assert "A GPU is visible (nvidia-smi) but JAX runs on CPU" in line
    assert "pip install -e '.[cuda12]'" in line and "'.[tpu]'" in line
    driver = lambda path: path == "/proc/driver/nvidia"
    assert "/proc/driver/nvidia" in runtime.backend_warnings("cpu", {}, driver)[0]
    visible = {"CUDA_VISIBLE_DEVICES": "0,1"}
    assert runtime.backend_warnings("cpu", visible, _no_path, _no_program)


def test_no_warning_without_a_gpu_on_a_gpu_backend_or_when_cpu_is_chosen():
    assert runtime.backend_warnings("cpu", {}, _no_path, _no_program) == []
    assert runtime.backend_warnings("gpu", {}, _no_path, _nvidia_smi) == []
    chosen = {"JAX_PLATFORMS": "cpu"}
    assert runtime.backend_warnings("cpu", chosen, _no_path, _nvidia_smi) == []
    for hidden in ("", "-1"):  # CUDA_VISIBLE_DEVICES hiding every GPU
        env = {"CUDA_VISIBLE_DEVICES": hidden}
        assert runtime.backend_warnings("cpu", env, _no_path, _no_program) == []


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


def test_accelerator_extras_pin_a_jax_lower_bound():
    """``pip install -e '.[cuda12]'`` / ``'.[tpu]'``, the extras the warning names:
    jax with that extra, a lower bound (like every dependency) no newer than the jax
    installed here and no older than the core dependency's."""
    tomllib = pytest.importorskip("tomllib")
    import jax

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    (core,) = [d for d in project["dependencies"] if d.startswith("jax>=")]
    for extra in ("cuda12", "tpu"):
        (requirement,) = project["optional-dependencies"][extra]
        name, bound = requirement.split(">=")
        assert name == f"jax[{extra}]"
        installed = _version(jax.__version__.split("+")[0].split(".dev")[0])
        assert _version(core.split(">=")[1]) <= _version(bound) <= installed


def test_closed_event_loop_reports_are_dropped_and_others_kept(monkeypatch):
    seen = []
    monkeypatch.setattr(sys, "excepthook", lambda *args: seen.append(args[1]))
    monkeypatch.setattr(threading, "excepthook", lambda a: seen.append(a.exc_value))
    monkeypatch.setattr(sys, "unraisablehook", lambda u: seen.append(u.exc_value))
    runtime.quiet_closed_event_loops()
    runtime.quiet_closed_event_loops()  # installed once
    closed, other = RuntimeError("Event loop is closed"), RuntimeError("other")
    for exc in (closed, other):
        sys.excepthook(RuntimeError, exc, None)
        report = types.SimpleNamespace(exc_type=RuntimeError, exc_value=exc)
        threading.excepthook(report)
        sys.unraisablehook(report)
    assert seen == [other, other, other]
