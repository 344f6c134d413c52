"""Independent jobs over several processes, the parent working alongside: the study fits on the two cores.

Each job must be a pure function of its own spec (it seeds itself), so the results do not depend on
how many processes ran them or in which order. Children are forked, so they share the parent's
loaded models and data without pickling them; only the results travel back (as plain values or bytes: torch
tensors would travel as file descriptors of a child that has exited). A child computes on one thread.
"""
from __future__ import annotations

import logging
import multiprocessing as mp
import queue
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from reprotext.errors import ReprotextError

J = TypeVar("J")
log = logging.getLogger(__name__)


def _claim(counter, lock, n: int) -> int | None:
    with lock:
        i = counter.value
        if i >= n:
            return None
        counter.value = i + 1
        return i


def _child(fn, jobs, counter, lock, results) -> None:
    # One thread: a forked child inherits the parent's OpenMP pool without its threads, and the first
    # multi-threaded tensor operation (e.g. copying word2vec into an embedding table) would wait forever.
    torch = sys.modules.get("torch")  # without torch loaded there is no pool
    if torch is not None:
        torch.set_num_threads(1)
    while (i := _claim(counter, lock, len(jobs))) is not None:
        try:
            results.put((i, True, fn(jobs[i])))
        except BaseException:  # noqa: BLE001 - reported to the parent, which raises
            results.put((i, False, traceback.format_exc()))
            return


def run_jobs(fn: Callable[[J], Any], jobs: Sequence[J], workers: int,
             in_parent: Callable[[], Any] | None = None) -> tuple[Any, list[Any]]:
    """``fn(job)`` for every job, over ``workers`` processes in all (the parent counts as one).

    The parent first runs ``in_parent()`` (work that must stay in this process, e.g. the fit that logs
    to the open MLflow run), then takes jobs from the same queue as the ``workers - 1`` forked children.
    Returns (``in_parent()``'s result, the jobs' results in job order). A failing job raises here with
    the child's traceback.
    """
    children_n = max(0, min(workers - 1, len(jobs)))
    if children_n == 0:
        first = in_parent() if in_parent else None
        return first, [fn(j) for j in jobs]
    ctx = mp.get_context("fork")
    counter, lock, results = ctx.Value("i", 0, lock=False), ctx.Lock(), ctx.Queue()
    children = [ctx.Process(target=_child, args=(fn, jobs, counter, lock, results), daemon=True)
                for _ in range(children_n)]
    for c in children:
        c.start()
    out: dict[int, Any] = {}
    try:
        first = in_parent() if in_parent else None
        while (i := _claim(counter, lock, len(jobs))) is not None:
            out[i] = fn(jobs[i])
        while len(out) < len(jobs):
            try:
                i, ok, value = results.get(timeout=1.0)
            except queue.Empty:
                if not any(c.is_alive() for c in children) and results.empty():
                    codes = ", ".join(str(c.exitcode) for c in children)
                    raise ReprotextError(f"{len(jobs) - len(out)} parallel job(s) lost: their worker processes "
                                         f"exited ({codes}); rerun with fewer workers") from None
                continue
            if not ok:
                raise ReprotextError(f"a parallel job failed in its worker process:\n{value}")
            out[i] = value
    finally:
        for c in children:
            if c.is_alive():
                c.terminate()
            c.join()
    return first, [out[i] for i in range(len(jobs))]
