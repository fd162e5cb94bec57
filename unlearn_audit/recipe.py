"""How to train: the :class:`Recipe` (optimiser, schedule, epochs, batch, regularisation), the
toolkit's defaults per dataset and architecture, and recipe files (TOML or JSON)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Literal

from unlearn_audit._validation import check_choice, check_positive_int, fail
from unlearn_audit.errors import ConfigError


@dataclass(frozen=True)
class Recipe:
    """How to train: optimiser, learning rate and schedule, epochs, batch size, regularisation.

    Attributes:
        optimizer: ``"sgd"`` (with momentum), ``"adam"`` or ``"adamw"``.
        lr: Peak learning rate.
        epochs: Passes over the training ids.
        batch_size: Samples per step.
        momentum: SGD momentum.
        weight_decay: L2 penalty (decoupled for AdamW).
        schedule: ``"constant"``, ``"cosine"`` (per step, to 0) or ``"step"`` (multiply by
            ``gamma`` at each epoch in ``milestones``).
        milestones: Epochs at which the ``"step"`` schedule decays.
        gamma: Decay factor of the ``"step"`` schedule.
        augment: Random shifts (and horizontal flips where the dataset allows them).
        label_smoothing: Cross-entropy label smoothing.
    """

    optimizer: Literal["sgd", "adam", "adamw"] = "sgd"
    lr: float = 0.05
    epochs: int = 20
    batch_size: int = 128
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: Literal["constant", "cosine", "step"] = "cosine"
    milestones: tuple[int, ...] = ()
    gamma: float = 0.1
    augment: bool = False
    label_smoothing: float = 0.0

    def __post_init__(self) -> None:
        check_choice(self.optimizer, "optimizer", ("sgd", "adam", "adamw"))
        check_choice(self.schedule, "schedule", ("constant", "cosine", "step"))
        check_positive_int(self.epochs, "epochs", minimum=0)
        check_positive_int(self.batch_size, "batch_size")
        for name in ("lr", "momentum", "weight_decay", "gamma", "label_smoothing"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise fail(name, "a finite number >= 0", value)
        if self.lr == 0:
            raise fail("lr", "a number > 0", self.lr)
        object.__setattr__(self, "milestones", tuple(int(m) for m in self.milestones))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["milestones"] = list(self.milestones)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, where: str = "recipe") -> Recipe:
        """A recipe from its fields; missing fields take the class defaults.

        Raises:
            ConfigError: Naming the first unknown field or bad value (prefixed by ``where``).
        """
        if not isinstance(data, dict):
            raise ConfigError(f"{where} must be a table of recipe fields; got {data!r}.")
        names = [f.name for f in fields(cls)]
        unknown = sorted(set(data) - set(names))
        if unknown:
            raise ConfigError(
                f"{where}: unknown recipe field {unknown[0]!r}; known: {', '.join(names)}."
            )
        values: dict[str, Any] = dict(data)
        if "milestones" in values:
            milestones = values["milestones"]
            if not isinstance(milestones, list | tuple) or not all(
                isinstance(m, int) and not isinstance(m, bool) and m >= 0 for m in milestones
            ):
                raise ConfigError(
                    f"{where}: `milestones` must be a list of epochs like [10, 20]; "
                    f"got {milestones!r}."
                )
            values["milestones"] = tuple(milestones)
        if "augment" in values and not isinstance(values["augment"], bool):
            raise ConfigError(
                f"{where}: `augment` must be true or false; got {values['augment']!r}."
            )
        for name in ("epochs", "batch_size"):
            if name in values and (
                isinstance(values[name], bool) or not isinstance(values[name], int)
            ):
                raise ConfigError(f"{where}: `{name}` must be an integer; got {values[name]!r}.")
        try:
            return cls(**values)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None

    def differences(self, other: Recipe) -> list[str]:
        """``field: mine vs theirs`` for every field in which the two recipes differ."""
        mine, theirs = self.to_dict(), other.to_dict()
        return [f"{k} {mine[k]!r} vs {theirs[k]!r}" for k in mine if mine[k] != theirs[k]]

    def describe(self) -> str:
        """One line: ``sgd lr 0.05 (cosine), 10 epochs, batch 128, ...``."""
        text = f"{self.optimizer} lr {self.lr:g} ({self.schedule}"
        if self.schedule == "step":
            text += f" at {list(self.milestones)} x{self.gamma:g}"
        text += f"), {self.epochs} epochs, batch {self.batch_size}"
        if self.optimizer == "sgd":
            text += f", momentum {self.momentum:g}"
        text += f", weight decay {self.weight_decay:g}"
        if self.augment:
            text += ", augmented"
        if self.label_smoothing:
            text += f", label smoothing {self.label_smoothing:g}"
        return text

    def with_options(self, **overrides: Any) -> Recipe:
        """A copy with the given fields changed; ``None`` values are ignored."""
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})


_DEFAULT = Recipe()
_DEFAULT_RECIPES: dict[tuple[str, str], Recipe] = {
    ("digits", "*"): Recipe(lr=0.05, epochs=30, batch_size=64),
    ("digits", "mlp"): Recipe(lr=0.05, epochs=40, batch_size=64),
    ("digits", "resnet18"): Recipe(lr=0.05, epochs=15, batch_size=64),
    ("fashion-mnist", "*"): Recipe(lr=0.05, epochs=10, batch_size=128),
    ("mnist", "*"): Recipe(lr=0.05, epochs=10, batch_size=128),
    ("cifar10", "*"): Recipe(lr=0.1, epochs=40, batch_size=128, augment=True),
}


def default_recipe(dataset: str, arch: str) -> Recipe:
    """The recipe the toolkit uses for ``arch`` on ``dataset`` when none is given.

    For example small-cnn on digits reaches about 98% test accuracy in a few seconds on CPU.
    """
    for key in ((dataset, arch), (dataset, "*")):
        if key in _DEFAULT_RECIPES:
            return _DEFAULT_RECIPES[key]
    return _DEFAULT


def load_recipe(path: str | Path) -> Recipe:
    """A :class:`Recipe` from a TOML or JSON file of its fields (missing fields: defaults).

    A TOML file may hold the fields at top level or in a ``[recipe]`` table.

    Raises:
        ConfigError: The file is missing or unreadable, or names an unknown field or a bad value.
    """
    import json
    import tomllib

    path = Path(path).expanduser()
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"recipe file {str(path)!r} does not exist; check the path.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"recipe file {str(path)!r} cannot be read ({exc}).") from None
    data: Any
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        kind = "JSON" if path.suffix.lower() == ".json" else "TOML"
        raise ConfigError(f"recipe file {str(path)!r} is not valid {kind} ({exc}).") from None
    if isinstance(data, dict) and set(data) == {"recipe"} and isinstance(data["recipe"], dict):
        data = data["recipe"]
    return Recipe.from_dict(data, where=f"recipe file {path.name}")
