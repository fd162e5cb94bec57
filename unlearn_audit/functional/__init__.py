"""Pure numpy/scipy/scikit-learn maths behind the checks; no torch, no state.

Every function validates its inputs at the boundary and raises
:class:`~unlearn_audit.errors.ConfigError` on bad ones.
"""

from unlearn_audit.functional.divergence import activation_distance, js_divergence
from unlearn_audit.functional.mia import (
    ShokriAttack,
    TprAtFpr,
    auc,
    fit_shokri_attack,
    lira_offline_scores,
    logit_confidence,
    loss_threshold_scores,
    roc,
    shokri_features,
    softmax,
    tpr_at_fpr,
)
from unlearn_audit.functional.relearn import relearn_time
from unlearn_audit.functional.representation import (
    class_channel_relevance,
    csi,
    few_shot_probe,
    l1_density,
    linear_cka,
)
from unlearn_audit.functional.saliency import mask_mass, spearman_per_sample, topk_iou
from unlearn_audit.functional.stats import (
    Proportion,
    bootstrap_interval,
    clopper_pearson_interval,
    mean_with_interval,
    proportion,
    reference_position,
    wilson_interval,
)

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
