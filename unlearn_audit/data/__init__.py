"""Datasets, forget requests and splits."""

# importing the loader modules registers their datasets
from unlearn_audit.data import cifar as _cifar  # noqa: F401
from unlearn_audit.data import idx as _idx  # noqa: F401
from unlearn_audit.data import images as _images  # noqa: F401
from unlearn_audit.data.datasets import (
    DATASETS,
    Dataset,
    Normalization,
    load_dataset,
    register_dataset,
)

__all__ = ["DATASETS", "Dataset", "Normalization", "load_dataset", "register_dataset"]
