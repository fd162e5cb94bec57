"""The checks: one module per family of evidence, each registered in ``CHECKS``."""

from unlearn_audit.checks import accuracy as _accuracy  # noqa: F401
from unlearn_audit.checks import backdoor as _backdoor  # noqa: F401
from unlearn_audit.checks import divergence as _divergence  # noqa: F401
from unlearn_audit.checks import efficiency as _efficiency  # noqa: F401
from unlearn_audit.checks import membership as _membership  # noqa: F401
from unlearn_audit.checks import relearn as _relearn  # noqa: F401
from unlearn_audit.checks import representation as _representation  # noqa: F401
from unlearn_audit.checks import saliency as _saliency  # noqa: F401
from unlearn_audit.checks.base import CHECKS, Check, CheckResult, Needs, register_check

__all__ = ["CHECKS", "Check", "CheckResult", "Needs", "register_check"]
