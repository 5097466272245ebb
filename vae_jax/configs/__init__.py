"""Experiment configs: ``default.py`` lists every field; each other file is one experiment."""

import pathlib


def config_path(name: str) -> str:
    """The file of config ``name`` (e.g. "quickstart"), for ``--config=`` flags."""
    path = pathlib.Path(__file__).with_name(f"{name}.py")
    if not path.is_file():
        choices = sorted(p.stem for p in path.parent.glob("*.py") if p.stem[0] != "_")
        raise ValueError(f"Unknown config {name!r}; choose one of {choices}.")
    return str(path)
