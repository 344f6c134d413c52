"""The seminar as one sweep of queued DVC experiments, read back from MLflow into one report.

- :mod:`.plan`: the experiments of a size of ``lecture.yaml`` and their overrides;
- :mod:`.sweep`: running the sweep in a private copy of the repository and reading it back from MLflow;
- :mod:`.report`: ``reports/lecture.md`` from a collected sweep: its opening, the summary of verdicts, then
  the sections of :mod:`.lessons` (the classic lessons) and :mod:`.pipeline_lessons` (what the pipeline newly
  does), built with :mod:`.common` (figures, tables, seed spreads, verdicts);
- ``python -m reprotext.lecture``: the command line (``make lecture``).

Imports run one way (plan -> sweep -> common -> lessons -> report -> the command line): no circles.
"""
from reprotext.lecture.plan import FIRST, PLAN_FILE, Experiment, Plan, load_plan
from reprotext.lecture.report import write_report
from reprotext.lecture.sweep import Result, Sweep, collect, download, output_file, run_sweep, sweep_dir

__all__ = [
    "FIRST", "PLAN_FILE", "Experiment", "Plan", "Result", "Sweep", "collect", "download", "load_plan", "output_file",
    "run_sweep", "sweep_dir", "write_report",
]
