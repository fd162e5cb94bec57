"""The checks: one module per family of evidence, each registered in ``CHECKS`` with its typed
evidence. A check module imports its heavy dependencies (scikit-learn, captum, the training
loop) inside ``run``, so reading and rendering evidence loads none of them."""

from unlearn_audit.checks import accuracy as _accuracy  # noqa: F401
from unlearn_audit.checks import backdoor as _backdoor  # noqa: F401
from unlearn_audit.checks import divergence as _divergence  # noqa: F401
from unlearn_audit.checks import efficiency as _efficiency  # noqa: F401
from unlearn_audit.checks import margins as _margins  # noqa: F401
from unlearn_audit.checks import membership as _membership  # noqa: F401
from unlearn_audit.checks import relearn as _relearn  # noqa: F401
from unlearn_audit.checks import representation as _representation  # noqa: F401
from unlearn_audit.checks import saliency as _saliency  # noqa: F401
from unlearn_audit.checks.base import CHECKS, Check, CheckResult, Needs, register_check
from unlearn_audit.evidence import Evidence, RawEvidence

__all__ = ["CHECKS", "Check", "CheckResult", "Needs", "evidence_type", "register_check"]


def evidence_type(name: str) -> type[Evidence]:
    """The evidence type of check ``name``; :class:`RawEvidence` for a check not installed
    (a result written with a plug-in that this environment lacks)."""
    return CHECKS.get(name).evidence if name in CHECKS else RawEvidence
