"""Run every benchmark in bench/ in turn (`make bench`); each prints its own figures.

Arguments after `--` go to every benchmark, e.g. `bench/run.py -- --events 500`.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


NOT_BENCHMARKS = {"run.py", "probe.py"}
"""Programs here that are not benchmarks: this one, and the launcher the service benchmarks start
their service with."""


def benchmarks() -> list[Path]:
    """The scripts that run as programs; the rest (common.py) are what they share."""
    return sorted(
        p
        for p in HERE.glob("*.py")
        if p.name not in NOT_BENCHMARKS and 'if __name__ == "__main__":' in p.read_text("utf-8")
    )


def main(argv: list[str]) -> int:
    passed = argv[argv.index("--") + 1 :] if "--" in argv else []
    failed = []
    for script in benchmarks():
        print(f"=== {script.relative_to(HERE.parent)}", flush=True)
        if subprocess.run([sys.executable, str(script), *passed], cwd=HERE.parent).returncode != 0:
            failed.append(script.name)
        print(flush=True)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
