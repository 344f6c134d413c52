"""Transfer learning: keep a trained encoder, swap the head for a new task's labels."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from reprotext.models import Classifier


def swap_head(pretrained: Classifier, labels: Sequence[str], dropout: float) -> Classifier:
    """A new Classifier for ``labels`` whose encoder is a copy of ``pretrained``'s (head freshly initialised)."""
    config = replace(pretrained.config, labels=tuple(labels), dropout=dropout)
    model = Classifier(config)
    model.encoder.load_state_dict(pretrained.encoder.state_dict())
    return model
