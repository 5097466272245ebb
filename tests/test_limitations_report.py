"""scripts/limitations_report.py: finished parts are kept and skipped on a rerun, rows
saved mid-part reach the next run, a different scale is refused; and (slow) the whole
report at a tiny scale writes every figure it links."""

import json
import re
import subprocess
import sys

import pytest

import helpers
from helpers import REPO

SCRIPT = REPO / "scripts" / "limitations_report.py"


def _load():
    return helpers.load_script("limitations_report")


def test_rerun_resumes_parts_and_rows(tmp_path, monkeypatch):
    report = _load()
    calls = []

    def pixel(workdir, scale, progress, save):
        calls.append(("pixel", dict(progress)))
        return {"value": 1}, ["## pixel"]

    def identity(workdir, scale, progress, save):
        calls.append(("identity", dict(progress)))
        if "a" not in progress:
            save("a", {"row": 1})
            raise KeyboardInterrupt  # stopped after one finished row
        return {"rows": [progress["a"]]}, ["## identity"]

    monkeypatch.setattr(report, "PART_FNS", {"pixel": pixel, "identity": identity})
    with pytest.raises(KeyboardInterrupt):
        report.run(tmp_path, 0.5, ["pixel", "identity"])
    state = report.run(tmp_path, 0.5, ["pixel", "identity"])
    assert calls == [("pixel", {}), ("identity", {}), ("identity", {"a": {"row": 1}})]
    assert state["parts"]["identity"]["result"] == {"rows": [{"row": 1}]}
    text = (tmp_path / "report.md").read_text()
    assert "## pixel" in text and "## identity" in text
    with pytest.raises(ValueError, match="scale 0.5"):
        report.run(tmp_path, 1.0, ["pixel"])


@pytest.mark.slow
def test_report_runs_at_a_tiny_scale(tmp_path):
    command = [sys.executable, str(SCRIPT), "--workdir", str(tmp_path)]
    done = subprocess.run(
        command + ["--scale", "0.02"],
        capture_output=True,
        text=True,
        timeout=3600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    text = (tmp_path / "report.md").read_text()
    for heading in ("## 1.", "## 2.", "## 3.", "## 4.", "## 5."):
        assert heading in text
    for link in re.findall(r"\]\(([^)]+\.png)\)", text):
        assert (tmp_path / link).is_file(), link
    results = json.loads((tmp_path / "results.json").read_text())
    assert set(results["parts"]) == {
        "pixel",
        "identity",
        "contamination",
        "complexity",
        "series",
    }
