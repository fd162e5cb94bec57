"""Training, in one import: the recipe (:mod:`unlearn_audit.recipe`), the loop
(:mod:`unlearn_audit.loop`) and the classifier trainer (:mod:`unlearn_audit.classifier`).

A :class:`Recipe` fixes everything about a run except the data and the seed; :func:`fit` trains
a copy of a model; :func:`train_classifier` builds and trains an architecture through the store.
"""

from unlearn_audit.classifier import poison_transform, train_classifier
from unlearn_audit.loop import (
    BatchTransform,
    History,
    Objective,
    StepState,
    TrainResult,
    accuracy,
    augment_batch,
    autograd_on,
    fit,
    make_optimizer,
    model_device,
    resolve_device,
)
from unlearn_audit.recipe import Recipe, default_recipe, load_recipe

__all__ = [
    "BatchTransform",
    "History",
    "Objective",
    "Recipe",
    "StepState",
    "TrainResult",
    "accuracy",
    "augment_batch",
    "autograd_on",
    "default_recipe",
    "fit",
    "load_recipe",
    "make_optimizer",
    "model_device",
    "poison_transform",
    "resolve_device",
    "train_classifier",
]
