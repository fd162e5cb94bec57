"""Datasets, forget requests and splits."""

from unlearn_audit.data import loaders as _loaders  # noqa: F401  (registers the file loaders)
from unlearn_audit.data.datasets import (
    DATASETS,
    Dataset,
    Normalization,
    load_dataset,
    register_dataset,
)

__all__ = ["DATASETS", "Dataset", "Normalization", "load_dataset", "register_dataset"]
