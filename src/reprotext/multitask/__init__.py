"""Multitask learning (Collobert & Weston 2008): one shared encoder, one head per task, trained together."""
from reprotext.multitask.model import (DISABLED, MultitaskClassifier, TaskModel, copy_encoder_statistics,
                                       load_multitask, save_multitask)
from reprotext.multitask.sampler import TaskBatchSampler, task_probabilities
from reprotext.multitask.training import MultitaskModule, MultitaskSettings, fit_multitask

__all__ = ["DISABLED", "MultitaskClassifier", "MultitaskModule", "MultitaskSettings", "TaskBatchSampler", "TaskModel",
           "copy_encoder_statistics", "fit_multitask", "load_multitask", "save_multitask", "task_probabilities"]
