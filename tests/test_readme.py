"""The README's Python snippet runs as written."""

import pathlib
import re

REPO = pathlib.Path(__file__).resolve().parents[1]


def test_readme_python_snippet_runs(monkeypatch):
    text = (REPO / "README.md").read_text()
    snippet = re.search(r"## From Python.*?```python\n(.*?)```", text, re.DOTALL).group(
        1
    )
    monkeypatch.chdir(REPO)
    namespace = {}
    exec(compile(snippet, "README.md", "exec"), namespace)  # noqa: S102 (the README's own code)
    assert namespace["samples"].shape == (16, 64)
