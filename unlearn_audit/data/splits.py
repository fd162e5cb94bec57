"""Forget requests and the splits they induce.

A :class:`ForgetRequest` says what must be forgotten: whole classes, a seeded random fraction or
count of the members, or explicit sample ids. :func:`make_splits` turns it, together with the
dataset and its members, into :class:`Splits`: stable, sorted sample ids for forget, retain,
test and population (and, for class requests, the forget-class and retain-class parts of test),
each with a fingerprint.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from unlearn_audit._hashing import fingerprint_ids, fingerprint_json
from unlearn_audit._validation import check_fraction
from unlearn_audit.data.datasets import Dataset
from unlearn_audit.errors import ConfigError, RequestError

RequestKind = Literal["class", "random", "ids"]
SPLIT_NAMES = ("forget", "retain", "test", "population")
DEFAULT_SPLIT_SEED = 0


@dataclass(frozen=True)
class ForgetRequest:
    """What must be forgotten.

    Use the constructors :meth:`classes`, :meth:`random` and :meth:`ids`.

    Attributes:
        kind: ``"class"``, ``"random"`` or ``"ids"``.
        class_labels: Class indices or names (class requests).
        fraction: Fraction of members to forget (random requests), or ``None``.
        count: Number of members to forget (random requests), or ``None``.
        seed: Seed of the random draw.
        sample_ids: Requested ids (id requests).
        source: Where the ids came from (an id file), for reports.
    """

    kind: RequestKind
    class_labels: tuple[int | str, ...] = ()
    fraction: float | None = None
    count: int | None = None
    seed: int = 0
    sample_ids: tuple[int, ...] = ()
    source: str = ""

    @classmethod
    def classes(cls, labels: int | str | list[int | str] | tuple[int | str, ...]) -> ForgetRequest:
        """Forget whole classes, by index or by name (``3``, ``"3,5"``, ``["cat", "dog"]``)."""
        if isinstance(labels, str):
            items: list[int | str] = [p.strip() for p in labels.split(",") if p.strip()]
        elif isinstance(labels, int):
            items = [labels]
        else:
            items = list(labels)
        parsed = tuple(
            int(p) if isinstance(p, str) and p.lstrip("-").isdigit() else p for p in items
        )
        if not parsed:
            raise RequestError("`forget-class` must name at least one class; got nothing.")
        return cls(kind="class", class_labels=parsed)

    @classmethod
    def random(cls, amount: float | int | str, *, seed: int = 0) -> ForgetRequest:
        """Forget a seeded random fraction (``0.05``) or count (``50``) of the members.

        A value written with a decimal point or below 1 is a fraction; an integer is a count.
        """
        text = str(amount).strip()
        if re.fullmatch(r"\d+", text):
            count = int(text)
            if count < 1:
                raise RequestError(
                    f"`forget-random` must be a fraction in (0, 1) or a count >= 1; got {text!r}."
                )
            return cls(kind="random", count=count, seed=int(seed))
        try:
            fraction = check_fraction(text, "forget-random")
        except ConfigError:
            raise RequestError(
                f"`forget-random` must be a fraction in (0, 1) like 0.05 or a count like 50; "
                f"got {text!r}."
            ) from None
        return cls(kind="random", fraction=fraction, seed=int(seed))

    @classmethod
    def ids(
        cls, ids: list[int] | tuple[int, ...] | np.ndarray, *, source: str = ""
    ) -> ForgetRequest:
        """Forget the given sample ids."""
        values = tuple(sorted({int(i) for i in np.asarray(ids, dtype=np.int64).ravel()}))
        if not values:
            raise RequestError(f"the forget id list {source or ''} is empty; give at least one id.")
        return cls(kind="ids", sample_ids=values, source=source)

    @classmethod
    def from_id_file(cls, path: str | Path) -> ForgetRequest:
        """Forget the ids listed in a text file (see :func:`read_id_file`)."""
        return cls.ids(read_id_file(path, what="forget ids"), source=str(path))

    def describe(self) -> str:
        """The request in plain words."""
        if self.kind == "class":
            return "forget class " + ", ".join(str(c) for c in self.class_labels)
        if self.kind == "random":
            amount = f"{self.fraction:g} of" if self.fraction is not None else f"{self.count} of"
            return f"forget a random {amount} the members (seed {self.seed})"
        where = f" from {self.source}" if self.source else ""
        return f"forget {len(self.sample_ids)} listed samples{where}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "classes": list(self.class_labels),
            "fraction": self.fraction,
            "count": self.count,
            "seed": self.seed,
            "ids_fingerprint": fingerprint_ids(np.array(self.sample_ids, dtype=np.int64))
            if self.sample_ids
            else None,
            "num_ids": len(self.sample_ids),
            "source": self.source,
        }


def read_id_file(path: str | Path, *, what: str = "ids") -> np.ndarray:
    """Read sample ids from a text file: integers separated by newlines, commas or spaces.

    ``#`` starts a comment. Raises a :class:`RequestError` naming the line of a bad entry.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise RequestError(f"{what} file {str(path)!r} does not exist; give a text file of ids.")
    ids: list[int] = []
    for lineno, line in enumerate(path.read_text(errors="replace").splitlines(), start=1):
        for token in re.split(r"[\s,;]+", line.split("#", 1)[0].strip()):
            if not token:
                continue
            if not re.fullmatch(r"\d+", token):
                raise RequestError(
                    f"{what} file {str(path)!r} line {lineno}: {token!r} is not a non-negative "
                    f"integer id; write one integer id per line."
                )
            ids.append(int(token))
    if not ids:
        raise RequestError(
            f"{what} file {str(path)!r} holds no ids; write one integer id per line."
        )
    return np.unique(np.array(ids, dtype=np.int64))


@dataclass(frozen=True, eq=False)
class Splits:
    """Sample ids of every split, sorted, with fingerprints.

    Attributes:
        forget: Requested members.
        retain: Members minus forget.
        test: Held-out evaluation non-members.
        population: Further non-members, disjoint from test (shadow and reference training).
        test_forget_class: Test samples of the forgotten classes (class requests only).
        test_retain_class: Test samples of the other classes (class requests only).
        forget_classes: Forgotten class indices (class requests only).
        request: The request these splits answer.
        dataset_fingerprint: Fingerprint of the dataset the ids refer to.
    """

    forget: np.ndarray
    retain: np.ndarray
    test: np.ndarray
    population: np.ndarray
    request: ForgetRequest
    dataset_fingerprint: str
    test_forget_class: np.ndarray | None = None
    test_retain_class: np.ndarray | None = None
    forget_classes: tuple[int, ...] = ()
    fingerprints: dict[str, str] = field(default_factory=dict)

    @property
    def members(self) -> np.ndarray:
        """Forget and retain together, sorted."""
        return np.union1d(self.forget, self.retain)

    @property
    def members_fingerprint(self) -> str:
        return self.fingerprints["members"]

    def get(self, name: str) -> np.ndarray:
        """Ids of the split called ``name``."""
        value = getattr(self, name, None) if name in self.names() else None
        if value is None:
            raise ConfigError(f"`split` must be one of {', '.join(self.names())}; got {name!r}.")
        return value

    def names(self) -> list[str]:
        """Names of the splits present."""
        extra = (
            ["test_forget_class", "test_retain_class"] if self.test_forget_class is not None else []
        )
        return [*SPLIT_NAMES, *extra]

    def summary(self) -> dict[str, Any]:
        """Sizes and fingerprints, for reports and JSON."""
        return {
            "request": self.request.to_dict(),
            "dataset_fingerprint": self.dataset_fingerprint,
            "forget_classes": list(self.forget_classes),
            "sizes": {name: len(self.get(name)) for name in self.names()},
            "fingerprints": dict(self.fingerprints),
        }


def _resolve_classes(dataset: Dataset, labels: tuple[int | str, ...]) -> tuple[int, ...]:
    resolved: set[int] = set()
    for label in labels:
        if isinstance(label, int) and not isinstance(label, bool):
            index = label
        elif isinstance(label, str) and label in dataset.classes:
            index = dataset.classes.index(label)
        else:
            index = -1
        if not 0 <= index < dataset.num_classes:
            raise RequestError(
                f"unknown class {label!r} for dataset {dataset.name!r}; give an index in "
                f"0..{dataset.num_classes - 1} or a name ({', '.join(dataset.classes)})."
            )
        resolved.add(index)
    if len(resolved) == dataset.num_classes:
        raise RequestError(
            f"the request forgets all {dataset.num_classes} classes, which leaves nothing to "
            "retain; forget fewer classes."
        )
    return tuple(sorted(resolved))


def check_member_ids(dataset: Dataset, member_ids: np.ndarray) -> np.ndarray:
    """Sorted unique member ids, checked to lie in the dataset."""
    members = np.unique(np.asarray(member_ids, dtype=np.int64))
    bad = members[(members < 0) | (members >= len(dataset))]
    if bad.size:
        raise RequestError(
            f"member ids out of range for dataset {dataset.name!r} (ids 0..{len(dataset) - 1}): "
            f"{_preview(bad)}; check that the member id file belongs to this dataset."
        )
    if members.size == 0:
        raise RequestError("the member id list is empty; give the ids the model was trained on.")
    return members


def _preview(ids: np.ndarray, limit: int = 8) -> str:
    shown = ", ".join(str(int(i)) for i in ids[:limit])
    return f"{shown}{', ...' if len(ids) > limit else ''} ({len(ids)} in all)"


def _size(value: int | float | None, available: int, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, float) and value < 1:
        return round(check_fraction(value, name) * available)
    if int(value) < 0:
        raise ConfigError(f"`{name}` must be a count >= 0 or a fraction in (0, 1); got {value!r}.")
    return int(value)


# the default test split's largest size (see make_splits)
DEFAULT_TEST_CAP = 10_000


def make_splits(
    dataset: Dataset,
    request: ForgetRequest,
    *,
    member_ids: np.ndarray | None = None,
    test_size: int | float | None = None,
    population_size: int | float | None = None,
    split_seed: int = DEFAULT_SPLIT_SEED,
) -> Splits:
    """Turn a request into :class:`Splits`.

    Args:
        dataset: The dataset the ids refer to.
        request: What to forget.
        member_ids: Ids the model was trained on; default the dataset's training part.
        test_size: Count or fraction of the non-members used as test; default half of them,
            at most :data:`DEFAULT_TEST_CAP` (enough to resolve a 0.1% false-positive rate
            ten times over; more only costs forward passes).
        population_size: Count or fraction of the non-members used as population; default the
            rest after test, at most twice the members (shadow models train on as many samples
            as the original had members, and each population sample should be "out" for about
            half of them).
        split_seed: Seed of the deterministic test / population split (fixed by default, so
            the same non-members are always test).

    Raises:
        RequestError: Unknown class, ids out of range or not members, empty forget or retain.
        ConfigError: Sizes that do not fit the non-members.
    """
    members = dataset.train_ids if member_ids is None else check_member_ids(dataset, member_ids)
    labels = dataset.labels
    forget_classes: tuple[int, ...] = ()
    if request.kind == "class":
        forget_classes = _resolve_classes(dataset, request.class_labels)
        forget = members[np.isin(labels[members], forget_classes)]
        if forget.size == 0:
            raise RequestError(
                f"no member belongs to class {', '.join(map(str, request.class_labels))}; "
                "the forget set is empty, so there is nothing to forget."
            )
    elif request.kind == "random":
        count = (
            round(request.fraction * len(members))
            if request.fraction is not None
            else int(request.count or 0)
        )
        if count < 1:
            raise RequestError(
                f"a random {request.fraction:g} of {len(members)} members is no sample; "
                "forget a larger fraction or a count."
            )
        if count >= len(members):
            raise RequestError(
                f"cannot forget {count} of {len(members)} members and retain any; forget fewer."
            )
        rng = np.random.default_rng(request.seed)
        forget = np.sort(rng.choice(members, size=count, replace=False))
    else:
        forget = np.array(request.sample_ids, dtype=np.int64)
        out_of_range = forget[(forget < 0) | (forget >= len(dataset))]
        if out_of_range.size:
            raise RequestError(
                f"forget ids out of range for dataset {dataset.name!r} "
                f"(ids 0..{len(dataset) - 1}): "
                f"{_preview(out_of_range)}."
            )
        not_members = np.setdiff1d(forget, members)
        if not_members.size:
            raise RequestError(
                f"forget ids that are not members (the model never trained on them): "
                f"{_preview(not_members)}; give member ids, or declare the members with "
                "`member_ids`."
            )
        if forget.size >= members.size:
            raise RequestError("the request forgets every member; nothing would be retained.")
    forget = np.sort(forget).astype(np.int64)
    retain = np.setdiff1d(members, forget).astype(np.int64)

    nonmembers = np.setdiff1d(np.arange(len(dataset), dtype=np.int64), members)
    n_test = _size(test_size, len(nonmembers), "test_size")
    n_pop = _size(population_size, len(nonmembers), "population_size")
    if n_test is None:
        n_test = (
            min(len(nonmembers) // 2, DEFAULT_TEST_CAP)
            if n_pop is None
            else len(nonmembers) - n_pop
        )
    if n_pop is None:
        n_pop = min(len(nonmembers) - n_test, 2 * len(members))
    if n_test < 1 or n_test + n_pop > len(nonmembers):
        raise ConfigError(
            f"test ({n_test}) and population ({n_pop}) must fit in the {len(nonmembers)} "
            "non-members, with at least one test sample; lower `test_size` or `population_size`."
        )
    order = np.random.default_rng(split_seed).permutation(nonmembers)
    test = np.sort(order[:n_test])
    population = np.sort(order[n_test : n_test + n_pop])

    parts: dict[str, np.ndarray] = {
        "forget": forget,
        "retain": retain,
        "test": test,
        "population": population,
    }
    test_forget_class = test_retain_class = None
    if forget_classes:
        in_forget = np.isin(labels[test], forget_classes)
        test_forget_class, test_retain_class = test[in_forget], test[~in_forget]
        parts["test_forget_class"] = test_forget_class
        parts["test_retain_class"] = test_retain_class
    fingerprints = {
        name: fingerprint_ids(ids, salt=f"{dataset.fingerprint}|{name}")
        for name, ids in parts.items()
    }
    fingerprints["members"] = members_fingerprint(dataset, members)
    fingerprints["splits"] = fingerprint_json(sorted(fingerprints.items()))
    return Splits(
        forget=forget,
        retain=retain,
        test=test,
        population=population,
        request=request,
        dataset_fingerprint=dataset.fingerprint,
        test_forget_class=test_forget_class,
        test_retain_class=test_retain_class,
        forget_classes=forget_classes,
        fingerprints=fingerprints,
    )


def members_fingerprint(dataset: Dataset, member_ids: np.ndarray | None = None) -> str:
    """Fingerprint of the members (default the training part), as recorded in checkpoints."""
    members = dataset.train_ids if member_ids is None else np.asarray(member_ids)
    return fingerprint_ids(members, salt=f"{dataset.fingerprint}|members")
