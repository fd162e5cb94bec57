"""unlearn-audit: gather evidence that a model really forgot, and judge it against a policy."""

__version__ = "0.1.0"
