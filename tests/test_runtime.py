"""Importing the library changes no global state; entry points configure it."""

import subprocess
import sys

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
