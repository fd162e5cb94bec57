"""Bundled unlearning methods, one module per method (registered in ``METHODS``).

Run one with :func:`unlearn`; list them with ``METHODS.items()``. Methods use only
unlearn_audit's public API; the audit core never imports this package.

    from methods import unlearn
    result = unlearn("neggrad-plus", original, dataset, splits, hyperparameters={"alpha": 0.9})
"""

# each module registers its methods on import
from methods import (  # noqa: F401
    amnesiac,
    erm_ktp,
    finetune,
    fisher_forgetting,
    fisher_masking,
    lightweight,
    neggrad,
    perturbation,
    random_labels,
    retrain,
    salun,
    scrub,
    sisa,
    ssd,
    teachers,
    two_stage,
    unsir,
    usifr,
)
from methods.base import (
    METHODS,
    MethodSpec,
    UnlearnResult,
    check_hyperparameters,
    register_method,
    request_scope,
    unlearn,
)
from unlearn_audit.hyperparameters import parse_hyperparameters

__all__ = [
    "METHODS",
    "MethodSpec",
    "UnlearnResult",
    "check_hyperparameters",
    "parse_hyperparameters",
    "register_method",
    "request_scope",
    "unlearn",
]
