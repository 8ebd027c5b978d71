"""`python -m goldenkey.contracts export-schemas DIR | check-schemas DIR`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import goldenkey.contracts  # noqa: F401  (registers every event type)
from goldenkey.contracts import schemas

REGENERATE = "python -m goldenkey.contracts export-schemas"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m goldenkey.contracts", description="Golden Key Hall's event contracts as JSON Schema."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    export = commands.add_parser("export-schemas", help="write one JSON Schema per event type into DIR")
    export.add_argument("directory", metavar="DIR", type=Path)
    check = commands.add_parser("check-schemas", help="exit 1 if DIR differs from what export-schemas writes")
    check.add_argument("directory", metavar="DIR", type=Path)
    args = parser.parse_args(argv)

    if args.command == "export-schemas":
        removed = schemas.export(args.directory)
        for name in removed:
            print(f"removed stale {args.directory / name}")
        print(f"wrote {len(schemas.expected_files())} files to {args.directory}")
        return 0

    problems = schemas.differences(args.directory)
    if problems:
        for problem in problems:
            print(problem, file=sys.stderr)
        print(
            f"schemas in {args.directory} are out of date: run `{REGENERATE} {args.directory}`",
            file=sys.stderr,
        )
        return 1
    print(f"{len(schemas.expected_files())} files in {args.directory} match the code")
    return 0


if __name__ == "__main__":
    sys.exit(main())
