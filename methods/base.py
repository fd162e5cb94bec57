"""The method registry and :func:`unlearn`, the one way to run a bundled unlearning method.

Each method module registers one function with :func:`register_method`, together with its
metadata: the request scopes it supports, what it needs, its default hyperparameters and the
paper it comes from. :func:`unlearn` looks the method up, checks the hyperparameters and the
request, times the run and returns a *new* model whose checkpoint info records what was done
(``info.extra["unlearning"]``, read by the audit's efficiency check). The original model is
never modified. :meth:`MethodSpec.apply` does the same for one spec; it is what consumers that
find the methods through the ``unlearn_audit.methods`` entry points (the CLI) call.

A method function has the signature::

    def method(original: LoadedModel, dataset: Dataset, splits: Splits, *, seed: int,
               device: torch.device, progress: bool, **hyperparameters) -> Classifier

with every hyperparameter an explicit keyword-only parameter named like a key of ``defaults``.
It returns the trained copy (a :class:`~unlearn_audit.models.layers.Classifier`, on any
device); all training goes through :func:`unlearn_audit.train.fit`, which trains a copy.
"""

from __future__ import annotations

import difflib
import inspect
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import torch

from unlearn_audit._validation import check_positive_int, fail
from unlearn_audit.data.datasets import Dataset
from unlearn_audit.data.splits import Splits
from unlearn_audit.errors import ConfigError
from unlearn_audit.models.checkpoints import LoadedModel, check_model_fits, wrap_model
from unlearn_audit.models.layers import Classifier, model_fingerprint
from unlearn_audit.registry import METHOD_PLUGINS, Registry
from unlearn_audit.train import autograd_on, resolve_device

Scope = Literal["class", "sample"]
SCOPES: tuple[Scope, ...] = ("class", "sample")
MethodFn = Callable[..., Classifier]

# keyword arguments every method function receives besides its hyperparameters
_RUN_ARGUMENTS = ("seed", "device", "progress")
_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")


@dataclass(frozen=True)
class MethodSpec:
    """A registered unlearning method.

    Attributes:
        name: Registry name (``neggrad-plus``).
        scope: Requests it supports: ``"class"`` (whole classes) and/or ``"sample"`` (random
            or listed samples).
        needs: What it uses, in words (``"forget"``, ``"retain"``, ...).
        defaults: Default hyperparameters; a given value is converted to its default's type.
        paper: Where the method and its default settings come from.
        summary: One line for ``unlearn-audit methods``.
        run: The method function (see the module docstring for its signature).
    """

    name: str
    scope: tuple[Scope, ...]
    needs: tuple[str, ...]
    defaults: dict[str, Any]
    paper: str
    summary: str
    run: MethodFn = field(repr=False)

    @autograd_on
    def apply(
        self,
        original: LoadedModel,
        dataset: Dataset,
        splits: Splits,
        *,
        hyperparameters: dict[str, Any] | None = None,
        seed: int = 0,
        device: str | torch.device | None = "cpu",
        progress: bool = False,
    ) -> UnlearnResult:
        """Run this method; what :func:`unlearn` does once it has found the spec.

        Entry-point consumers (the CLI, which may not import this package) call this.
        """
        values = check_hyperparameters(self, hyperparameters)
        seed = check_positive_int(seed, "seed", minimum=0)
        scope = request_scope(splits)
        if scope not in self.scope:
            supported = " and ".join(f"{s} requests" for s in self.scope)
            raise ConfigError(
                f"method {self.name!r} supports only {supported}, but this is a {scope} "
                f"request ({splits.request.describe()}); choose another method (see "
                "`unlearn-audit methods`)."
            )
        if splits.dataset_fingerprint != dataset.fingerprint:
            raise ConfigError(
                f"the splits were made for another dataset than {dataset.name!r}; make the splits "
                "from the dataset the method trains on."
            )
        check_model_fits(original, dataset)
        resolved = resolve_device(device)

        start = time.perf_counter()
        trained = self.run(
            original, dataset, splits, seed=seed, device=resolved, progress=progress, **values
        )
        if resolved.type == "cuda":
            torch.cuda.synchronize(resolved)
        seconds = time.perf_counter() - start

        if not isinstance(trained, Classifier):
            raise TypeError(
                f"method {self.name!r} returned a {type(trained).__name__}, not a Classifier."
            )
        if model_fingerprint(original.module) != original.fingerprint:
            raise RuntimeError(
                f"method {self.name!r} modified the original model in place; methods must train a "
                "copy (unlearn_audit.train.fit does)."
            )
        record = {"method": self.name, "hyperparameters": values, "seconds": seconds, "seed": seed}
        info = replace(original.info, extra={**original.info.extra, "unlearning": record})
        model = wrap_model(trained.net.to("cpu"), info, original.normalization)
        return UnlearnResult(model=model, seconds=seconds, hyperparameters=dict(values))


# the core's registry of the entry point group: a bundled method registers there directly
METHODS: Registry[MethodSpec] = METHOD_PLUGINS


def register_method(
    name: str,
    *,
    scope: tuple[Scope, ...],
    needs: tuple[str, ...],
    defaults: dict[str, Any],
    paper: str,
    summary: str,
) -> Callable[[MethodFn], MethodSpec]:
    """Decorator that registers a method function under ``name`` and returns its spec.

    Returning the :class:`MethodSpec` (not the function) lets a third-party entry point in the
    ``unlearn_audit.methods`` group point at the decorated name.

    Raises:
        TypeError: The metadata does not fit the function (a bug in the method module).
    """
    bad_scope = [s for s in scope if s not in SCOPES]
    if not scope or bad_scope:
        raise TypeError(f"method {name!r}: `scope` must be a non-empty subset of {SCOPES}.")

    def _register(run: MethodFn) -> MethodSpec:
        _check_signature(name, run, defaults)
        spec = MethodSpec(
            name=name,
            scope=tuple(scope),
            needs=tuple(needs),
            defaults=dict(defaults),
            paper=paper,
            summary=summary,
            run=run,
        )
        METHODS.register(name, spec)
        return spec

    return _register


def _check_signature(name: str, run: MethodFn, defaults: dict[str, Any]) -> None:
    params = inspect.signature(run).parameters
    keyword = {p.name for p in params.values() if p.kind is inspect.Parameter.KEYWORD_ONLY}
    expected = set(defaults) | set(_RUN_ARGUMENTS)
    if keyword != expected:
        raise TypeError(
            f"method {name!r}: keyword-only parameters {sorted(keyword)} do not match the "
            f"defaults plus {list(_RUN_ARGUMENTS)}: {sorted(expected)}."
        )


@dataclass
class UnlearnResult:
    """What :func:`unlearn` returns.

    Attributes:
        model: The unlearned model (on CPU, eval mode); ``info.extra["unlearning"]`` records
            the method, hyperparameters, seconds and seed.
        seconds: Wall time of the method itself.
        hyperparameters: Every hyperparameter the method ran with (defaults filled in).
    """

    model: LoadedModel
    seconds: float
    hyperparameters: dict[str, Any]


def request_scope(splits: Splits) -> Scope:
    """``"class"`` for a class request, ``"sample"`` for random or listed samples."""
    return "class" if splits.request.kind == "class" else "sample"


def check_hyperparameters(spec: MethodSpec, given: dict[str, Any] | None) -> dict[str, Any]:
    """The method's defaults updated with ``given``, each value converted to its default's type.

    Strings (from ``--hp key=value``) are parsed: ``"0.01"`` becomes a float where the default
    is a float, ``"5"`` an int, ``"true"``/``"false"`` a bool.

    Raises:
        ConfigError: An unknown name (the message lists the known ones) or a value that does
            not convert.
    """
    given = dict(given or {})
    unknown = sorted(set(given) - set(spec.defaults))
    if unknown:
        close = difflib.get_close_matches(unknown[0], spec.defaults, n=1, cutoff=0.5)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        known = ", ".join(sorted(spec.defaults)) or "none"
        raise ConfigError(
            f"method {spec.name!r} has no hyperparameter {', '.join(map(repr, unknown))}.{hint} "
            f"Known: {known}."
        )
    return {
        key: _convert(key, given[key], default) if key in given else default
        for key, default in spec.defaults.items()
    }


def _convert(key: str, value: Any, default: Any) -> Any:
    text = value.strip() if isinstance(value, str) else None
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        if text is not None and text.lower() in _TRUE + _FALSE:
            return text.lower() in _TRUE
        raise fail(key, "true or false", value)
    if isinstance(default, int):
        number: Any = text if text is not None else value
        try:
            if isinstance(number, bool):
                raise ValueError
            converted = float(number) if isinstance(number, str) else number
            if not isinstance(converted, int | float) or not float(converted).is_integer():
                raise ValueError
        except (TypeError, ValueError, OverflowError):
            raise fail(key, "an integer", value) from None
        return int(converted)
    if isinstance(default, float):
        try:
            if isinstance(value, bool):
                raise ValueError
            converted = float(text if text is not None else value)
        except (TypeError, ValueError):
            raise fail(key, "a number", value) from None
        if not math.isfinite(converted):
            raise fail(key, "a finite number", value)
        return converted
    if isinstance(default, str):
        if not isinstance(value, str):
            raise fail(key, "a string", value)
        return value
    return value


def unlearn(
    method: str,
    original: LoadedModel,
    dataset: Dataset,
    splits: Splits,
    *,
    hyperparameters: dict[str, Any] | None = None,
    seed: int = 0,
    device: str | torch.device | None = "cpu",
    progress: bool = False,
) -> UnlearnResult:
    """Run a registered unlearning method on ``original`` for the request behind ``splits``.

    Args:
        method: Registry name; see ``unlearn-audit methods``.
        original: The model before unlearning; not modified.
        dataset: The dataset the splits' ids refer to.
        splits: Forget, retain, test and population ids of the request.
        hyperparameters: Overrides of the method's defaults; strings are converted to the
            defaults' types.
        seed: Seed of every random choice of the method (shuffles, labels, subsets).
        device: ``"cpu"``, ``"cuda"`` or ``"auto"``.
        progress: Show a progress bar.

    Returns:
        The new model (on CPU), the method's wall time and the hyperparameters it ran with.

    Raises:
        RegistryError: Unknown method.
        ConfigError: Unknown or invalid hyperparameters, a request outside the method's scope,
            splits of another dataset.
        CheckpointError: The original does not fit the dataset.
    """
    spec = METHODS.get(method)
    if not isinstance(spec, MethodSpec):
        raise ConfigError(
            f"method {method!r} is registered as a {type(spec).__name__}, not a MethodSpec; "
            "point its entry point at a function decorated with @register_method."
        )
    return spec.apply(
        original,
        dataset,
        splits,
        hyperparameters=hyperparameters,
        seed=seed,
        device=device,
        progress=progress,
    )
