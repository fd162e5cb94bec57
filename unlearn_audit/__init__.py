"""unlearn-audit: gather evidence that a model really forgot, and judge it against a policy.

The public API is importable from here; names load on first use so that ``unlearn-audit
--help`` stays fast.

    from unlearn_audit import load_dataset, ForgetRequest, make_splits, train_classifier
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "audit": "unlearn_audit.pipeline",
    "AuditResult": "unlearn_audit.results",
    "Policy": "unlearn_audit.policy",
    "Dataset": "unlearn_audit.data.datasets",
    "Normalization": "unlearn_audit.data.datasets",
    "load_dataset": "unlearn_audit.data",
    "ForgetRequest": "unlearn_audit.data.splits",
    "Splits": "unlearn_audit.data.splits",
    "make_splits": "unlearn_audit.data.splits",
    "read_id_file": "unlearn_audit.data.splits",
    "build_model": "unlearn_audit.models.zoo",
    "find_layers": "unlearn_audit.models.layers",
    "LayerRecorder": "unlearn_audit.models.layers",
    "Classifier": "unlearn_audit.models.layers",
    "LoadedModel": "unlearn_audit.models.checkpoints",
    "ModelInfo": "unlearn_audit.models.checkpoints",
    "load_checkpoint": "unlearn_audit.models.checkpoints",
    "save_checkpoint": "unlearn_audit.models.checkpoints",
    "Recipe": "unlearn_audit.recipe",
    "default_recipe": "unlearn_audit.recipe",
    "fit": "unlearn_audit.loop",
    "train_classifier": "unlearn_audit.classifier",
    "accuracy": "unlearn_audit.loop",
    "Store": "unlearn_audit.store",
    "UnlearnAuditError": "unlearn_audit.errors",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'unlearn_audit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
