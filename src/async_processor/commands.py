"""What both command lines share: the standard-library ``__main__`` and the full ``cli``.

The provider names, the commands that need the ``service`` extra (and how to get it),
logging set-up, and the ``demo`` and ``bench`` commands, which need no extra.
"""

from __future__ import annotations

import logging
import os
import runpy
import sys

__all__ = [
    "PROVIDERS",
    "SERVICE_COMMANDS",
    "SERVICE_HINT",
    "run_bench",
    "run_demo",
    "setup_logging",
]

#: The commands that need the ``service`` extra.
SERVICE_COMMANDS = ("serve", "submit", "status", "cancel", "watch")
SERVICE_HINT = (
    "install the service extra for serve, submit, status, cancel and watch: "
    "pip install 'async-processor[service]'"
)
PROVIDERS = ("offline", "openai", "anthropic")


def setup_logging(verbose: bool, level: int = logging.WARNING) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else level,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )


def run_demo(provider: str) -> int:
    """``async-processor demo``: the teddy bear's pipeline; 2 when the provider is unusable."""
    from .demo import main as demo
    from .errors import InvalidArgumentError

    try:
        demo(provider)
    except InvalidArgumentError as exc:
        print(f"async-processor demo: {exc}", file=sys.stderr)
        return 2
    return 0


def run_bench(args: list[str]) -> int:
    """``async-processor bench``: benchmarks/run.py of the source checkout in the cwd."""
    script = os.path.join(os.getcwd(), "benchmarks", "run.py")
    if not os.path.exists(script):
        print(
            "async-processor bench: benchmarks/run.py not found; run this from a source "
            "checkout of async-processor (git clone, then pip install -e '.[bench]')",
            file=sys.stderr,
        )
        return 2
    sys.argv = [script, *args]
    runpy.run_path(script, run_name="__main__")
    return 0
