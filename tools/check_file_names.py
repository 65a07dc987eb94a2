"""Check that each on-disk file name of a records folder and of a run folder is typed once.

    python tools/check_file_names.py     (exit status 1 and one line per problem otherwise)

The names are those the two folder owners declare: `emotf/records/folder.py` (`RecordsFolder`:
shards, sidecars, manifest, lock, temporaries) and `emotf/runs/folder.py` (`Run`,
`CrossValidation`, `EvaluationDir`). A name is a string constant of such a module (found with
`ast`; docstrings left out) that names a file: no spaces or slashes, an extension (folder names
such as `export` or `evaluation` are ordinary words, used as keys too, and are not checked), and
not a bare common extension such as `.json`. Each must be spelled in a string literal (outside
docstrings) of its owner only, among all the modules of `emotf/`: a literal that contains the
name as a whole word counts, e.g. "see manifest.json" spells `manifest.json`. `EXCEPTIONS`
lists the modules where the same name means another file.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "emotf"
OWNERS = (PACKAGE / "records" / "folder.py", PACKAGE / "runs" / "folder.py")
# Bare extensions name no file of their own (a JSON file anywhere ends in `.json`).
COMMON_EXTENSIONS = frozenset({".json", ".tmp", ".gz", ".csv", ".png", ".md", ".txt", ".h5"})
_FILE_NAME = re.compile(r"^[\w*.-]*\.[A-Za-z][\w]*$")
# (module, name): why the module may spell the name (it means another file of that name).
EXCEPTIONS = {
    ("emotf/runs/model_io.py", "config.json"): "the Keras archive's member, not the run's file",
}


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the docstring constants of a module, its classes and functions."""
    found = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
            and node.body
        ):
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def string_literals(path: Path) -> list[str]:
    """Every string constant of a module outside docstrings (f-string parts included)."""
    tree = ast.parse(path.read_text(), str(path))
    skip = _docstrings(tree)
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip
    ]


def declared_names(owner: Path) -> list[str]:
    """The file names `owner` declares (see the module docstring), sorted."""
    names = {
        text
        for text in string_literals(owner)
        if _FILE_NAME.match(text) and text not in COMMON_EXTENSIONS
    }
    return sorted(names)


def _spells(literal: str, name: str) -> bool:
    """Does `literal` spell `name` as a whole word (a suffix such as `.tfrecord` or
    `_training_curves.png` may follow anything)?"""
    before = "" if name[0] in "._" else r"(?<![\w-])"
    return re.search(rf"{before}{re.escape(name)}(?![\w-])", literal) is not None


def problems(package: Path = PACKAGE, owners=OWNERS) -> list[str]:
    """One line per file name of `owners` spelled outside its owner in `package`'s modules, or
    per owner that declares none."""
    modules = sorted(package.rglob("*.py"))
    literals = {module: string_literals(module) for module in modules}
    found = []
    for owner in owners:
        names = declared_names(owner)
        if not names:
            found.append(f"{owner.relative_to(ROOT)}: declares no file name")
        for name in names:
            spelled = [
                module
                for module in modules
                if any(_spells(literal, name) for literal in literals[module])
            ]
            others = [
                where
                for where in (str(m.relative_to(ROOT)) for m in spelled if m != owner)
                if (where, name) not in EXCEPTIONS
            ]
            if others:
                found.append(
                    f"{name!r} (declared in {owner.relative_to(ROOT)}) is also spelled in "
                    f"{', '.join(others)}: ask the folder object for it instead"
                )
    return found


def main() -> int:
    found = problems()
    for line in found:
        print(line)
    if not found:
        declared = sum(len(declared_names(owner)) for owner in OWNERS)
        print(f"check_file_names: {declared} file names, each spelled in its owner only")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
