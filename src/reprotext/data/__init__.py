"""Datasets in: sources, normalisation, splits, the data report; each readable in batches."""
from reprotext.data.normalize import (CleanScan, CleanStats, clean, fingerprints, leak_keys, normalize_text,
                                      normalize_texts, stratified_sample)
from reprotext.data.prepare import Prepared, UnlabeledStats, prepare_all, prepare_dataset, prepare_unlabeled
from reprotext.data.report import DataSummary, SplitProfile, summarize, summarize_profiles, write_report
from reprotext.data.sources import iter_labeled, iter_unlabeled, load_labeled, load_unlabeled, read_builtin
from reprotext.data.split import SPLITS, SplitPlan, SplitResult, allocate, plan_split, remove_leaks, split_frame
from reprotext.data.split_file import split_file
from reprotext.data.store import FrameWriter, iter_frames, read_meta, write_frame

__all__ = ["CleanScan", "CleanStats", "clean", "fingerprints", "leak_keys", "normalize_text", "normalize_texts",
           "stratified_sample",
           "Prepared", "UnlabeledStats", "prepare_all", "prepare_dataset", "prepare_unlabeled",
           "DataSummary", "SplitProfile", "summarize", "summarize_profiles", "write_report",
           "iter_labeled", "iter_unlabeled", "load_labeled", "load_unlabeled", "read_builtin",
           "SPLITS", "SplitPlan", "SplitResult", "allocate", "plan_split", "remove_leaks", "split_frame",
           "split_file",
           "FrameWriter", "iter_frames", "read_meta", "write_frame"]
