"""Architectures, the normalising wrapper, layer discovery and checkpoints."""

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
