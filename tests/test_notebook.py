"""The tour notebook runs top to bottom on the bundled digits."""

import nbformat
import pytest
from nbclient import NotebookClient

from helpers import REPO


@pytest.mark.slow  # a Jupyter kernel training 600 steps; test_readme runs its essentials
def test_tour_notebook_executes():
    pytest.importorskip("ipykernel")
    notebook = nbformat.read(
        REPO / "experiments" / "notebooks" / "tour.ipynb", as_version=4
    )
    NotebookClient(
        notebook, timeout=120, resources={"metadata": {"path": str(REPO)}}
    ).execute()
    outputs = "".join(
        o.get("text", "")
        for cell in notebook.cells
        if cell.cell_type == "code"
        for o in cell.get("outputs", [])
    )
    assert "identical params: True" in outputs
