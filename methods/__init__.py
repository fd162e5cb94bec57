"""Bundled unlearning methods, one module per method (registered in ``METHODS``).

Methods use only unlearn_audit's public API; the audit core never imports this package.
"""

from unlearn_audit.registry import Registry

METHODS: Registry[object] = Registry("method", group="unlearn_audit.methods")

__all__ = ["METHODS"]
