"""Imports sit at the top of emotf's modules; one inside a function says why in a comment.

The reasons (issue 20): a heavy or optional dependency a module must not pull in at import
(ai_edge_litert, apache_beam, matplotlib, grpc/keras-tuner internals, mtcnn, TensorFlow where
the records-build workers or `--help` must start without it), or a console script's imports of
TensorFlow modules after `emotf.quiet` and argument parsing. A comment on the import's line or
the line above, or on the first import of a contiguous block of them, counts.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "emotf"


def unexplained_imports(path: Path) -> list[str]:
    """`path:line: import ...` for every import inside a function with no comment on its line,
    the line above, or (for an import right below another one) the block's first import."""
    lines = path.read_text().splitlines()
    explained: dict[int, bool] = {}
    found = []
    nodes = sorted(
        {
            node.lineno: node
            for fn in ast.walk(ast.parse("\n".join(lines)))
            if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef))
            for node in ast.walk(fn)
            if isinstance(node, (ast.Import, ast.ImportFrom))
        }.items()
    )
    for lineno, node in nodes:
        line = lines[lineno - 1]
        above = lines[lineno - 2].strip() if lineno > 1 else ""
        # (explained is keyed by the line an import ends on: multi-line imports too)
        ok = "#" in line or above.startswith("#") or explained.get(lineno - 1, False)
        explained[node.end_lineno or lineno] = ok
        if not ok:
            found.append(f"{path.relative_to(PACKAGE.parent)}:{lineno}: {line.strip()}")
    return found


def test_every_import_inside_a_function_says_why():
    found = [hit for path in sorted(PACKAGE.rglob("*.py")) for hit in unexplained_imports(path)]
    assert found == [], "imports inside functions without a comment saying why:\n" + "\n".join(
        found
    )


# `import emotf.cli` imports TensorFlow on purpose (quietly, before any console script does:
# emotf.cli.quiet_tensorflow) unless the user set TF_CPP_MIN_LOG_LEVEL (or --verbose); so the
# check runs with TF_CPP_MIN_LOG_LEVEL set, where only the console script's own imports count.
# emotf.cli.train and emotf.cli.build_records still import TensorFlow through emotf.cli.flags
# (-> emotf.runs.folder -> emotf.runs.model_io -> keras), so they are not asserted here.
TENSORFLOW_FREE = ["emotf.cli.predict"]


@pytest.mark.parametrize("module", TENSORFLOW_FREE)
def test_console_script_imports_without_tensorflow(module):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
    env.pop("EMOTF_QUIET_TF", None)
    script = f"import sys, {module}; print('tensorflow' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False", f"{module} imports tensorflow at import"
