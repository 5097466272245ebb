"""Tests for vae_jax.config_fields: every field with its value, type and comment."""

import textwrap

from vae_jax import config_fields
from vae_jax.configs import default, vae_mnist

from helpers import REPO

SOURCE = textwrap.dedent(
    """
    def get_config():
        config = ml_collections.ConfigDict()
        config.a = 1  # one
        config.b = (
            2  # two, wrapped by the formatter
        )
        # three, above
        # and more
        config.c = 3
        config.d = 4
        # above, then
        config.e.f = "x"  # its own
    """
)


def test_comments_beside_inside_and_above_an_assignment():
    assert config_fields.field_comments(SOURCE) == {
        "a": "one",
        "b": "two, wrapped by the formatter",
        "c": "three, above and more",
        "e.f": "above, then; its own",
    }
    assert config_fields.field_comments("config.a = (") == {}  # does not parse


def _line(lines, field):
    (line,) = [line for line in lines if line.startswith(f"{field} = ")]
    return line


def test_every_default_field_is_listed_with_its_value_type_and_comment():
    config = default.get_config()
    lines = config_fields.describe_fields(config, config_fields.DEFAULT_FILE)
    assert len(lines) == len(config_fields.flat_fields(config)) > 50
    assert lines[0].startswith("seed = 0 ") and lines[1].startswith("model.kind = ")
    latent = _line(lines, "model.latent_dim")
    assert latent.startswith("model.latent_dim = 8 ") and latent.endswith(
        "(int)      # K"
    )
    assert "(tuple)" in _line(lines, "model.hidden")
    assert "# K2, top latent" in _line(lines, "model.latent_dim2")  # wrapped by ruff
    assert "lecun_normal" in _line(lines, "model.kernel_init").split("#", 1)[1]
    assert "test split every eval_every" in _line(
        lines, "train.eval_test_during_training"
    )


def test_a_config_file_adds_its_own_comments_through_a_re_export():
    config = vae_mnist.get_config()
    path = REPO / "experiments" / "configs" / "vae_mnist.py"  # re-exports vae_jax's
    defined_in = config_fields.DEFAULT_FILE.with_name("vae_mnist.py")
    assert config_fields.source_file(path) == defined_in
    line = _line(config_fields.describe_fields(config, path), "data.valid_size")
    assert line.startswith("data.valid_size = 0 ")
    assert line.endswith(
        "# -1 = the dataset's default validation split "
        "[vae_mnist.py: train on all 60,000 images, as the reference models do]"
    )
