"""A result.json that parses but has a wrong field: one line naming the field, never a traceback."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from unlearn_audit._result_schema import validate_result_dict
from unlearn_audit.cli import main
from unlearn_audit.errors import ConfigError
from unlearn_audit.results import SCHEMA_VERSION, AuditResult

GOLDEN = Path(__file__).resolve().parent / "golden" / "result_class.json"


@pytest.fixture(scope="module")
def golden() -> dict[str, Any]:
    return json.loads(GOLDEN.read_text())


def _validate(data: object) -> None:
    validate_result_dict(data, schema_version=SCHEMA_VERSION, result_type=AuditResult)


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """Set the field at a dotted path (``a.b``, ``a[0].b``) of a result dict."""

    def edit(data: dict[str, Any]) -> None:
        *parents, last = path.replace("[", ".").replace("]", "").split(".")
        node: Any = data
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        node[last] = value

    return edit


def _drop(key: str) -> Callable[[dict[str, Any]], None]:
    return lambda data: data.pop(key)


def test_the_golden_result_still_loads(golden: dict[str, Any]) -> None:
    _validate(copy.deepcopy(golden))
    result = AuditResult.load(GOLDEN)
    assert set(result.checks) == set(golden["checks"]) and len(result.verdicts) > 0


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (_set("checks", 3), "`checks` must be an object of check results; got 3."),
        (
            _set("checks.accuracy.evidence", []),
            "`checks.accuracy.evidence` must be an object or null; got []",
        ),
        (_set("verdicts[0].status", 5), "`verdicts[0].status` must be a string; got 5."),
        (_set("models", None), "`models` must be an object of model descriptions; got null."),
        (_drop("verdicts"), "`verdicts` is missing from the audit result."),
        (_set("checks.membership.seconds", "slow"), "`checks.membership.seconds` must be a number"),
        (_set("verdicts[1].interval", [0.1, "x"]), "`verdicts[1].interval[1]` must be a number"),
        (_set("timings.load", {}), "`timings.load` must be a number or null; got {}."),
        (_set("notes", "a note"), "`notes` must be a list of strings"),
    ],
)
def test_report_names_the_first_wrong_field(
    workdir: Path,
    capsys: pytest.CaptureFixture[str],
    golden: dict[str, Any],
    edit: Callable[[dict[str, Any]], None],
    message: str,
) -> None:
    data = copy.deepcopy(golden)
    edit(data)
    (workdir / "result.json").write_text(json.dumps(data))
    assert main(["report", "result.json", "--no-pdf"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("unlearn-audit: error: ") and message in err, err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "re-run the audit" in err.lower()
    assert not (workdir / "report.html").exists()


def test_newer_optional_fields_are_accepted(golden: dict[str, Any]) -> None:
    data = copy.deepcopy(golden)
    data["record"] = {"command": "unlearn-audit audit"}
    data["outcome"] = "inconclusive"
    data["limitations"] = ["a limitation"]
    data["models"]["unlearned"]["extra_key"] = {"any": "thing"}
    data["checks"]["accuracy"]["cause"] = ""
    data["checks"]["accuracy"]["remedy"] = "give --trigger"
    data["verdicts"][0]["cause"] = "not_run"
    data["checks"]["accuracy"]["evidence"]["calibration"] = {"new": 1}
    _validate(data)
    loaded = AuditResult.from_dict(data)
    assert (
        loaded.checks["accuracy"].evidence == AuditResult.load(GOLDEN).checks["accuracy"].evidence
    )


def test_a_document_of_another_shape_or_version(golden: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match="must be a JSON object; got \\[1, 2\\]"):
        _validate([1, 2])
    # another schema version is left to the version check, which names the version
    with pytest.raises(ConfigError, match=f"schema version {SCHEMA_VERSION + 1}"):
        AuditResult.from_dict({**golden, "schema_version": SCHEMA_VERSION + 1, "checks": 3})


def test_numpy_values_become_plain_json() -> None:
    """Arrays of any size become lists (a one-element array too, not its scalar), numpy scalars
    numbers, non-finite values ``None``; read back by type they are the same values."""
    import numpy as np

    from unlearn_audit._codec import from_json, to_json

    values = {"one": np.array([0.25]), "two": np.array([1.5, np.nan]), "scalar": np.float32(2.0)}
    written = to_json(values)
    assert written == {"one": [0.25], "two": [1.5, None], "scalar": 2.0}
    assert json.loads(json.dumps(written, allow_nan=False)) == written
    assert from_json(dict[str, list[float | None]], {"a": written["two"]}) == {"a": [1.5, None]}
    assert to_json(np.arange(4).reshape(2, 2)) == [[0, 1], [2, 3]]


def test_lists_of_numbers_read_fast_and_still_name_a_wrong_item() -> None:
    from unlearn_audit._codec import CodecError, from_json

    read = from_json(list[float], [1, 2.5, 0.0], "scores")
    assert read == [1.0, 2.5, 0.0] and all(type(v) is float for v in read)
    for wrong in (True, None, "0.5"):
        with pytest.raises(CodecError, match=r"`scores\[1\]` must be a number"):
            from_json(list[float], [0.5, wrong], "scores")
