"""The ``async-processor`` command (standard library only; the service extra adds more)."""

from __future__ import annotations

import argparse
import logging
import os
import runpy
import sys

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="async-processor",
        description="Prioritised async task processing for AI applications.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log what the processor does")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("demo", help="run the demo: priorities, dependencies, three contexts")
    bench = commands.add_parser(
        "bench", help="run benchmarks/run.py from a source checkout (extra arguments pass on)"
    )
    bench.add_argument("args", nargs=argparse.REMAINDER)
    options = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if options.verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    if options.command == "demo":
        from .demo import main as demo

        demo()
        return 0
    script = os.path.join(os.getcwd(), "benchmarks", "run.py")
    if not os.path.exists(script):
        print(
            "async-processor bench: benchmarks/run.py not found; run this from a source "
            "checkout of async-processor (git clone, then pip install -e '.[bench]')",
            file=sys.stderr,
        )
        return 2
    sys.argv = [script, *options.args]
    runpy.run_path(script, run_name="__main__")
    return 0


if __name__ == "__main__":
    sys.exit(main())
