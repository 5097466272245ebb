"""Run records: ``markdown_table`` and the config round trip."""

import numpy as np
import pytest

from vae_jax import writer
from vae_jax.configs import quickstart


def test_markdown_table_layout_and_cells():
    rows = [("a", 1.23456789, 3), ("b", np.float64(0.5), True)]
    assert writer.markdown_table(["name", "x", "n"], rows) == (
        "| name | x | n |\n|---|---|---|\n| a | 1.23456789 | 3 |\n| b | 0.5 | True |"
    )
    assert writer.markdown_table(["x", "n"], [(1.23456789, 3)], float_format=".3g") == (
        "| x | n |\n|---|---|\n| 1.23 | 3 |"
    )
    assert writer.markdown_table(["only"], []) == "| only |\n|---|"


def test_markdown_table_rejects_ragged_rows():
    with pytest.raises(ValueError, match="2 cells; the header has 3"):
        writer.markdown_table(["a", "b", "c"], [(1, 2)])


def test_config_round_trip_keeps_tuples(tmp_path):
    config = quickstart.get_config()
    writer.write_config(tmp_path, config)
    read = writer.read_config(tmp_path)
    assert read.model.hidden == (128,) and read.to_dict() == config.to_dict()
