"""Datasets in: sources, normalisation, splits, the data report."""
from reprotext.data.normalize import CleanStats, clean, leak_keys, normalize_text, normalize_texts, stratified_sample
from reprotext.data.prepare import Prepared, UnlabeledStats, prepare_all, prepare_dataset, prepare_unlabeled
from reprotext.data.report import DataSummary, summarize, write_report
from reprotext.data.sources import load_labeled, load_unlabeled, read_builtin
from reprotext.data.split import SPLITS, SplitResult, allocate, remove_leaks, split_frame
from reprotext.data.store import read_meta, write_frame

__all__ = ["CleanStats", "clean", "leak_keys", "normalize_text", "normalize_texts", "stratified_sample",
           "Prepared", "UnlabeledStats", "prepare_all", "prepare_dataset", "prepare_unlabeled",
           "DataSummary", "summarize", "write_report",
           "load_labeled", "load_unlabeled", "read_builtin",
           "SPLITS", "SplitResult", "allocate", "remove_leaks", "split_frame",
           "read_meta", "write_frame"]
