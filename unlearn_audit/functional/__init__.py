"""Pure numpy/scipy/scikit-learn maths behind the checks; no torch, no state.

Every function validates its inputs at the boundary and raises
:class:`~unlearn_audit.errors.ConfigError` on bad ones. The package loads each submodule on
first use of one of its names.
"""

import importlib
from typing import Any

# name -> submodule; loaded on first use, so that importing one piece (``functional.stats``)
# does not load scikit-learn through the others
_WHERE = {
    "activation_distance": "divergence",
    "js_divergence": "divergence",
    "ShokriAttack": "mia",
    "TprAtFpr": "mia",
    "auc": "mia",
    "fit_shokri_attack": "mia",
    "lira_offline_scores": "mia",
    "logit_confidence": "mia",
    "loss_threshold_scores": "mia",
    "roc": "mia",
    "shokri_features": "mia",
    "softmax": "mia",
    "tpr_at_fpr": "mia",
    "relearn_time": "relearn",
    "class_channel_relevance": "representation",
    "csi": "representation",
    "few_shot_probe": "representation",
    "l1_density": "representation",
    "linear_cka": "representation",
    "mask_mass": "saliency",
    "spearman_per_sample": "saliency",
    "topk_iou": "saliency",
    "Proportion": "stats",
    "bootstrap_interval": "stats",
    "clopper_pearson_interval": "stats",
    "mean_with_interval": "stats",
    "proportion": "stats",
    "reference_position": "stats",
    "wilson_interval": "stats",
}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "Proportion",
    "ShokriAttack",
    "TprAtFpr",
    "activation_distance",
    "auc",
    "bootstrap_interval",
    "class_channel_relevance",
    "clopper_pearson_interval",
    "csi",
    "few_shot_probe",
    "fit_shokri_attack",
    "js_divergence",
    "l1_density",
    "linear_cka",
    "lira_offline_scores",
    "logit_confidence",
    "loss_threshold_scores",
    "mask_mass",
    "mean_with_interval",
    "proportion",
    "reference_position",
    "relearn_time",
    "roc",
    "shokri_features",
    "softmax",
    "spearman_per_sample",
    "topk_iou",
    "tpr_at_fpr",
    "wilson_interval",
]
