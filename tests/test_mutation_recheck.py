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
