"""Write the table of every config field and its bound into docs/configuration.md.

    python tools/config_table.py           # rewrite the generated part of the doc
    python tools/config_table.py --check   # exit 1 when the doc differs from the code

The table is `emotf.cli.flags.config_tables(config_classes())`, between the markers
`<!-- fields: begin -->` and `<!-- fields: end -->`; tests/test_bounds.py checks it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"
BEGIN, END = "<!-- fields: begin -->", "<!-- fields: end -->"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="compare only; exit 1 on a change")
    args = parser.parse_args(argv)
    from emotf.cli.flags import config_classes, config_tables

    text = DOC.read_text()
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    new = f"{head}{BEGIN}\n\n{config_tables(config_classes())}\n{END}{tail}"
    if new == text:
        return 0
    if args.check:
        print(f"{DOC} is out of date: run python tools/config_table.py", file=sys.stderr)
        return 1
    DOC.write_text(new)
    print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
