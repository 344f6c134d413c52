"""Timing shared by the bench scripts."""
from __future__ import annotations

import time
from collections.abc import Callable


def best_of(repeats: int, *runs: Callable[[], object]) -> list[float]:
    """The shortest wall time of each run over ``repeats`` rounds, the runs alternating within a round."""
    best = [float("inf")] * len(runs)
    for _ in range(repeats):
        for i, run in enumerate(runs):
            start = time.perf_counter()
            run()
            best[i] = min(best[i], time.perf_counter() - start)
    return best
