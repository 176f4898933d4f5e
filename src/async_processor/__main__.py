"""The ``async-processor`` command.

With the ``service`` extra installed (click, rich, httpx) the full command line in
:mod:`async_processor.cli` runs. The base install has no dependencies, so without them a
minimal standard-library version offers ``demo`` and ``bench`` and says how to get the rest.
"""

from __future__ import annotations

import argparse
import sys

from .commands import PROVIDERS, SERVICE_COMMANDS, SERVICE_HINT, run_bench, run_demo, setup_logging

__all__ = ["main", "minimal_main"]


def minimal_main(argv: list[str] | None = None, missing: str | None = None) -> int:
    """``demo`` and ``bench`` with the standard library only."""
    args = sys.argv[1:] if argv is None else argv
    hint = f"{missing} is not installed; {SERVICE_HINT}" if missing else SERVICE_HINT
    if args and args[0] in SERVICE_COMMANDS:
        print(f"async-processor {args[0]}: {hint}", file=sys.stderr)
        return 2
    parser = argparse.ArgumentParser(
        prog="async-processor",
        description="Prioritised async task processing for AI applications.",
        epilog=hint,
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log what the processor does")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = commands.add_parser(
        "demo", help="run the teddy bear's pipeline on the clips that ship with the package"
    )
    demo.add_argument(
        "--provider",
        choices=PROVIDERS,
        default="offline",
        help="who writes the bear's replies (openai/anthropic read *_API_KEY and *_BASE_URL)",
    )
    bench = commands.add_parser(
        "bench", help="run benchmarks/run.py from a source checkout (extra arguments pass on)"
    )
    bench.add_argument("args", nargs=argparse.REMAINDER)
    options = parser.parse_args(args)
    setup_logging(options.verbose)
    if options.command == "demo":
        return run_demo(options.provider)
    return run_bench(options.args)


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    try:
        from .cli import main as cli_main
    except ImportError as exc:
        if exc.name not in ("click", "rich", "httpx"):
            raise
        return minimal_main(argv, missing=exc.name)
    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
