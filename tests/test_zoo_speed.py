"""scripts/zoo_speed.py: the alternation of the libraries and the medians and ratios
of its table (the timed runs need torch and pythae, so they are not run here)."""

import pytest

import helpers


def _load():
    return helpers.load_script("zoo_speed")


def test_libraries_alternate_between_rounds():
    speed = _load()
    assert speed.order(0) == ("vae_jax", "pythae")
    assert speed.order(1) == ("pythae", "vae_jax")
    assert speed.order(2) == speed.order(0)


def test_summary_is_the_ratio_of_medians():
    speed = _load()
    times = {"vae": {"vae_jax": [10.0, 30.0, 12.0], "pythae": [25.0, 24.0, 90.0]}}
    (row,) = speed.summarise(times)
    assert row["vae_jax_median_s"] == 12.0 and row["pythae_median_s"] == 25.0
    assert row["speed_up"] == pytest.approx(25.0 / 12.0) and row["rounds"] == 3
