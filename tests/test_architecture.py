"""Layers import only downward, and no code outside the model registry dispatches on
the model's class (``scripts/import_graph.py``)."""

import pathlib
import re
import subprocess
import sys

import vae_jax

from helpers import REPO

MODEL_CLASSES = r"(VAE|VAEBase|Autoencoder|HierarchicalVAE|FullCovarianceVAE)"


def test_no_module_imports_a_higher_layer():
    out = subprocess.run(
        [sys.executable, str(REPO / "scripts/import_graph.py")],
        capture_output=True,
        text=True,
        check=False,
        cwd="/",
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "0 layer violation(s)" in out.stdout


def test_no_model_class_dispatch_outside_the_registry():
    root = pathlib.Path(vae_jax.__file__).parent
    sites = [
        f"{path.relative_to(root)}:{i}"
        for path in root.rglob("*.py")
        if path != root / "models" / "__init__.py"
        for i, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(rf"isinstance\([^)]*\b{MODEL_CLASSES}\b", line)
    ]
    assert not sites, sites
