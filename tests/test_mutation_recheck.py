"""scripts/mutation_recheck.py: a survivor of a module edited since its session is
re-applied by its one-line change, found by text, only where that line is unique."""

import helpers

DIFF = """--- mutation diff ---
--- a/m.py
+++ b/m.py
@@ -2,3 +2,3 @@
 def f(x):
-    return x - 1
+    return x + 1
"""


def test_line_change_applies_where_the_line_is_unique(tmp_path):
    recheck = helpers.load_script("mutation_recheck")
    module = tmp_path / "m.py"
    module.write_text("import math\n\n\ndef f(x):\n    return x - 1\n")
    assert recheck.apply_line_change(module, DIFF)
    assert module.read_text() == "import math\n\n\ndef f(x):\n    return x + 1\n"
    # The line is gone now, or twice in the file: nothing is written.
    assert not recheck.apply_line_change(module, DIFF)
    twice = "def f(x):\n    return x - 1\n\n\ndef g(x):\n    return x - 1\n"
    module.write_text(twice)
    assert not recheck.apply_line_change(module, DIFF)
    assert module.read_text() == twice


def test_report_counts_outcomes_equivalents_and_pytest_minutes():
    report = helpers.load_script("mutation_report")
    item = lambda op, n: {
        "mutations": [{"operator_name": op, "occurrence": n, "start_pos": [5, 0]}]
    }
    killed = {
        "worker_outcome": "normal",
        "test_outcome": "killed",
        "output": "1 failed in 30.0s",
    }
    survived = {
        "worker_outcome": "normal",
        "test_outcome": "survived",
        "diff": DIFF,
        "output": "9 passed in 90.0s",
    }
    keyword = DIFF.replace("-    return x - 1", "-    *,").replace(
        "+    return x + 1", "+    /,"
    )
    equivalent = {**survived, "diff": keyword, "output": "9 passed in 60s"}
    filtered = {"worker_outcome": "skipped", "output": "Filtered operator"}
    sessions = {
        "m": [
            (item("a", 0), killed),
            (item("b", 0), survived),
            (item("c", 0), equivalent),
            (item("d", 0), filtered),
            (item("e", 0), None),
        ]
    }
    rows, equivalents, survivors = report.summarise(sessions)
    # run, killed, timed out, equivalent, survived, score, incompetent, filtered, pending, minutes
    assert rows[0] == "| m | 3 | 1 | 0 | 1 | 1 | 50.0% | 0 | 1 | 1 | 3 |"
    assert len(equivalents) == 1 and "keyword-only" in equivalents[0]
    assert len(survivors) == 1 and "return x + 1" in survivors[0]
    rows, _, survivors = report.summarise(sessions, {"m": {"b:0": "killed"}})
    assert rows[0].startswith("| m | 3 | 2 | 0 | 1 | 0 | 100.0% |") and not survivors


def test_a_kill_without_pytest_output_counts_as_its_rerun_says():
    """A test process that died (no pytest output) is no detection: the report takes
    the recheck's outcome for it, and keeps the kill only if the rerun kills too."""
    report = helpers.load_script("mutation_report")
    item = {"mutations": [{"operator_name": "a", "occurrence": 0, "start_pos": [5, 0]}]}
    silent = {
        "worker_outcome": "normal",
        "test_outcome": "killed",
        "output": "",
        "diff": DIFF,
    }
    assert report.silent_kill(silent)
    assert not report.silent_kill({**silent, "output": "1 failed in 2.0s"})
    sessions = {"m": [(item, silent)]}
    rows, _, _ = report.summarise(sessions, {"m": {"a:0": "incompetent"}})
    assert rows[0].startswith("| m | 0 | 0 | 0 | 0 | 0 | - | 1 |")  # not Python
    for rerun, counts in (
        (None, "| 1 | 1 | 0 | 0 | 0 |"),
        ("killed", "| 1 | 1 | 0 | 0 | 0 |"),
        ("survived", "| 1 | 0 | 0 | 0 | 1 |"),
    ):
        rows, _, survivors = report.summarise(
            sessions, {"m": {"a:0": rerun}} if rerun else None
        )
        assert rows[0].startswith(f"| m {counts}"), (rerun, rows[0])
        assert bool(survivors) == (rerun == "survived")
