"""What every stage script shares: argument parsing and the error boundary."""
from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable

from reprotext.errors import ReprotextError


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--params", default="params.yaml", help="params file (default: %(default)s)")
    return p


def run(main: Callable[[], None]) -> None:
    """Run a stage's main; a user-fixable error becomes one line and exit 2."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    for noisy in ("gensim", "smart_open"):  # per-batch lifecycle chatter; progress bars say enough
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        main()
    except ReprotextError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("error: interrupted; outputs were left as they were", file=sys.stderr)
        sys.exit(130)
