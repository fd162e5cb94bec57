"""Architectures, the normalising wrapper, layer discovery and checkpoints.

The zoo's own architectures register in :mod:`~unlearn_audit.models.zoo`; the two that build
on them (``sisa``, a shard ensemble, and ``erm``, a CNN with the ERM mask layer) register here,
so that importing any module of this package registers every architecture.
"""

from unlearn_audit.models import ensemble as _ensemble  # noqa: F401  (registers `sisa`)
from unlearn_audit.models import erm as _erm  # noqa: F401  (registers `erm`)
from unlearn_audit.models.checkpoints import (
    LoadedModel,
    ModelInfo,
    check_model_fits,
    load_checkpoint,
    save_checkpoint,
)
from unlearn_audit.models.layers import Classifier, LayerRecorder, find_layers, model_fingerprint
from unlearn_audit.models.zoo import ARCHS, build_model

__all__ = [
    "ARCHS",
    "Classifier",
    "LayerRecorder",
    "LoadedModel",
    "ModelInfo",
    "build_model",
    "check_model_fits",
    "find_layers",
    "load_checkpoint",
    "model_fingerprint",
    "save_checkpoint",
]
