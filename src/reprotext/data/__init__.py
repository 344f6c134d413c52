"""Datasets in: sources, normalisation, splits."""
from reprotext.data.normalize import CleanStats, clean, normalize_text, stratified_sample
from reprotext.data.sources import load, read_builtin
from reprotext.data.split import SPLITS, check_no_leak, stratified_split

__all__ = ["CleanStats", "clean", "normalize_text", "stratified_sample", "load", "read_builtin",
           "SPLITS", "check_no_leak", "stratified_split"]
