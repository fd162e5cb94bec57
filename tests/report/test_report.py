"""Reports: golden HTML for a fixed result, the PDF says the same, figures render."""

from __future__ import annotations

import base64
import functools
import os
import re
from pathlib import Path

import numpy as np
import pytest

from unlearn_audit.checks import evidence_type
from unlearn_audit.policy import default_claims
from unlearn_audit.report import render_html, write_report
from unlearn_audit.report.plots import figure_drawers, render_figures
from unlearn_audit.results import AuditResult

CLAIMS = default_claims()

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def result() -> AuditResult:
    return AuditResult.load(GOLDEN / "result_class.json")


def _stub_figures(result: AuditResult) -> dict[str, str]:
    """Placeholders where the real renderer draws a figure (image bytes are tested apart)."""
    return {key: f"data:image/png;base64,{key}" for key in figure_drawers(result)}


def test_html_matches_the_golden_file(result: AuditResult) -> None:
    html = render_html(result, figures=_stub_figures)
    golden = GOLDEN / "report_class.html"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(html, encoding="utf-8")
    assert html == golden.read_text(encoding="utf-8"), (
        "set UPDATE_GOLDEN=1 after a deliberate change"
    )


def test_html_is_deterministic_self_contained_and_complete(result: AuditResult) -> None:
    html = render_html(result)
    assert html == render_html(result), "same result, same bytes"
    assert not re.search(r"(src|href)=\"(https?:)?//", html), "no external URL"
    assert "<script" not in html and "/work/" not in html and "/tmp/" not in html
    for claim in CLAIMS:
        assert claim in html
    for name in result.checks:
        title = evidence_type(name).TITLE
        assert title and f'id="check-{name}"' in html and f"<h3>{title} " in html
    for section in (
        "Verdicts",
        "Request and threat model",
        "Costs and timings",
        "Compliance appendix",
        "Glossary",
        "evidence, not proof",
    ):
        assert section in html
    assert result.models["unlearned"]["fingerprint"] in html
    assert result.created in html
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', html)
    assert len(images) == len(render_figures(result)) == 8  # with the margins histogram
    assert "Reference-distribution test" in html and "a true retrain (null audit)" in html
    assert all(base64.b64decode(data).startswith(PNG_MAGIC) for data in images)


def test_html_escapes_what_it_shows(result: AuditResult) -> None:
    hostile = AuditResult.from_dict(result.to_dict_json())
    hostile.request["description"] = "forget <script>alert(1)</script>"
    html = render_html(hostile, figures=lambda r: {})
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_pdf_has_the_same_sections(result: AuditResult, tmp_path: Path) -> None:
    import pypdf  # a test dependency: the PDF must be checked, never skipped

    files = write_report(result, tmp_path)
    assert files.pdf is not None, files.pdf_error
    text = " ".join(page.extract_text() for page in pypdf.PdfReader(files.pdf).pages)
    text = re.sub(r"\s+", " ", text)
    for claim in CLAIMS:
        assert claim in text
    for name in result.checks:
        assert evidence_type(name).TITLE in text
    for section in ("Verdicts", "Compliance appendix", "Glossary"):
        assert section in text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html", "report.pdf"]


def test_missing_pdf_engine_still_writes_html(
    result: AuditResult, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import builtins

    real_import = builtins.__import__

    def no_weasyprint(name: str, *args, **kwargs):  # type: ignore[no-untyped-def]
        if name == "weasyprint":
            raise OSError("cannot load library 'libpango-1.0-0'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_weasyprint)
    files = write_report(result, tmp_path)
    assert files.html.is_file() and files.pdf is None
    assert "libpango" in files.pdf_error and "apt-get install" in files.pdf_error


def test_comparison_report(result: AuditResult) -> None:
    from unlearn_audit.errors import ConfigError
    from unlearn_audit.report.compare import render_comparison

    other = AuditResult.from_dict(result.to_dict_json())
    html = render_comparison(
        {"method-a": result, "method-b": other}, links={"method-a": "method-a/report.html"}
    )
    assert 'href="method-a/report.html"' in html and "method-b" in html
    for claim in CLAIMS:
        assert f"<th>{claim}</th>" in html
    assert html.count('src="data:image/png;base64,') == 2  # accuracy and LiRA ROC figures
    assert "†" not in html
    # another original on the same request (a SISA ensemble) is compared, and marked
    sisa = AuditResult.from_dict(result.to_dict_json())
    sisa.models["original"]["fingerprint"] = "0" * 16
    marked = render_comparison({"a": result, "sisa": sisa}, figures=False)
    assert "sisa †" in marked and "sisa (original <code>0000000000000000</code>)" in marked
    stranger = AuditResult.from_dict(result.to_dict_json())
    stranger.request["fingerprints"] = {"forget": "0" * 16}
    with pytest.raises(ConfigError, match="another request or dataset"):
        render_comparison({"a": result, "b": stranger})
    with pytest.raises(ConfigError, match="at least one"):
        render_comparison({})


def test_the_grad_cam_grid_places_each_map_in_its_own_tile() -> None:
    from unlearn_audit.checks.saliency import CamGrid, _grid_figure

    rng = np.random.default_rng(0)
    inputs = rng.random((2, 1, 8, 8))
    hot = np.zeros((2, 8, 8))
    hot[:, 2, 5] = 3.0  # the unlearned model's maps peak at one pixel, positive
    cold = -np.ones((2, 8, 8))  # the original's are negative everywhere
    grid = CamGrid(
        ids=[7, 9],
        inputs=inputs.tolist(),
        maps={"original": cold.tolist(), "unlearned": hot.tolist()},
    )
    figure = _grid_figure(grid)
    (axes,) = figure.axes
    assert [t.get_text() for t in axes.get_xticklabels()] == ["input", "original", "unlearned"]
    assert [t.get_text() for t in axes.get_yticklabels()] == ["id 7", "id 9"]
    mosaic = axes.get_images()[0].get_array()
    gap = 1

    def tile_at(row: int, col: int) -> np.ndarray:
        top, left = row * (8 + gap), col * (8 + gap)
        return np.asarray(mosaic[top : top + 8, left : left + 8])

    for row in range(2):
        tile = functools.partial(tile_at, row)
        grey = tile(0)[..., :3]
        assert np.allclose(grey[..., 0], grey[..., 1]), "the input is drawn in grey"
        assert np.argmax(grey[..., 0]) == np.argmax(inputs[row, 0]), "brightest where it is"
        assert np.all(tile(1)[..., 2] > tile(1)[..., 0]), "negative maps are blue"
        peak = tile(2)[2, 5]
        assert peak[0] > peak[2] + 0.2 and peak[1] < 0.1, "the positive peak is red, at its pixel"
        assert np.allclose(tile(2)[0, 0, :3], 0.97, atol=0.03), "zero is white"
