"""run_jobs: every job once, results in job order, the parent's own work alongside, failures raised."""
from __future__ import annotations

import os
import time

import pytest

from reprotext.errors import ReprotextError
from reprotext.parallel import run_jobs


def _square_and_pid(x: int) -> tuple[int, int]:
    time.sleep(0.01)
    return x * x, os.getpid()


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_results_in_job_order_whatever_the_workers(workers):
    first, out = run_jobs(_square_and_pid, list(range(20)), workers, in_parent=lambda: time.sleep(0.3) or "parent")
    assert first == "parent"
    assert [r for r, _ in out] == [x * x for x in range(20)]
    pids = {p for _, p in out}
    assert (pids == {os.getpid()}) if workers == 1 else pids - {os.getpid()}  # children did some of the work


def test_a_failing_job_raises_with_its_traceback():
    def boom(x: int) -> int:
        if x == 3:
            raise ValueError("job three is bad")
        return x

    with pytest.raises((ReprotextError, ValueError), match="job three is bad"):  # from a child, or the parent
        run_jobs(boom, list(range(6)), 2)


def test_a_worker_that_dies_is_reported_not_waited_for():
    def die(x: int) -> int:
        if os.getpid() != parent:
            os._exit(3)
        return x

    parent = os.getpid()
    with pytest.raises(ReprotextError, match="lost"):
        run_jobs(die, list(range(4)), 2, in_parent=lambda: time.sleep(0.5))


CHILD_AFTER_PARENT_THREADS = """
import torch
from reprotext.parallel import run_jobs
torch.set_num_threads(2)
big = torch.zeros(20_000_000)
big.copy_(torch.ones(20_000_000))  # the parent's OpenMP pool now exists
def job(i):
    t = torch.empty(20_000_000)
    t.copy_(big)  # parallel in the parent; in a forked child it must not wait for the parent's threads
    return float(t[:10].sum()) + i
print(run_jobs(job, [0, 1, 2], 2, in_parent=lambda: "parent"))
"""


def test_a_child_computes_after_the_parent_used_its_threads():
    """A forked child's tensor work does not hang on the OpenMP pool the parent had started (it did, before)."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", CHILD_AFTER_PARENT_THREADS], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "('parent', [10.0, 11.0, 12.0])"
