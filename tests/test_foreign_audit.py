"""Audits of checkpoints the toolkit did not train: the owner's architecture (by import path),
recipe and file format (state_dict, TorchScript), per-role architectures, given shadows, the
two kinds of N/A, exit codes, and the record a compliance reader relies on."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from tests.foreign_arch import (
    OWNER_RECIPE,
    CornerMask,
    LogitMask,
    TinyNet,
    train_plain,
)
from unlearn_audit.checks.representation import RepresentationEvidence
from unlearn_audit.cli import main
from unlearn_audit.data.datasets import Dataset
from unlearn_audit.data.splits import ForgetRequest, make_splits
from unlearn_audit.results import DEFAULT_RECIPE_NOTE, AuditResult
from unlearn_audit.train import Recipe

ARCH = "tests.foreign_arch:tiny"
MASKED_ARCH = "tests.foreign_arch:masked_tiny"


@pytest.fixture(scope="module")
def files(digits: Dataset, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The owner's files: an original and two models retrained without class 3 (seeds 1 and 2:
    the first is audited, the second its reference; state_dicts,
    trained with plain PyTorch and OWNER_RECIPE on raw [0, 1] pixels), their TorchScript
    exports, a logit-mask fake in both formats, and the recipe as TOML."""
    folder = tmp_path_factory.mktemp("owner")
    splits = make_splits(digits, ForgetRequest.classes(3))
    members = np.concatenate([splits.forget, splits.retain])
    x, y = digits.load(members)
    x_retain, y_retain = digits.load(splits.retain)
    torch.manual_seed(0)
    original = train_plain(TinyNet(10, digits.input_shape), x, y, seed=0)
    torch.manual_seed(1)
    retrained = train_plain(TinyNet(10, digits.input_shape), x_retain, y_retain, seed=1)
    torch.manual_seed(2)
    retrained_2 = train_plain(TinyNet(10, digits.input_shape), x_retain, y_retain, seed=2)
    paths = {
        "original": folder / "original.pt",
        "retrained": folder / "retrained.pt",
        "retrained_2": folder / "retrained_2.pt",
        "masked": folder / "masked.pt",
        "original_ts": folder / "original_ts.pt",
        "retrained_ts": folder / "retrained_ts.pt",
        "retrained_2_ts": folder / "retrained_2_ts.pt",
        "masked_ts": folder / "masked_ts.pt",
        "corner_ts": folder / "corner_ts.pt",
        "recipe": folder / "recipe.toml",
    }
    torch.save(original.state_dict(), paths["original"])
    torch.save(retrained.state_dict(), paths["retrained"])
    torch.save(retrained_2.state_dict(), paths["retrained_2"])
    torch.save(LogitMask(original, 10).state_dict(), paths["masked"])
    torch.jit.save(torch.jit.script(original), paths["original_ts"])
    torch.jit.save(torch.jit.script(retrained), paths["retrained_ts"])
    torch.jit.save(torch.jit.script(retrained_2), paths["retrained_2_ts"])
    torch.jit.save(torch.jit.script(LogitMask(original, 10)), paths["masked_ts"])
    torch.jit.save(torch.jit.script(CornerMask(original, 10)), paths["corner_ts"])
    lines = [f"{k} = {json.dumps(v)}" for k, v in OWNER_RECIPE.items()]
    paths["recipe"].write_text("\n".join(lines) + "\n")
    return paths


def _audit(
    files: dict[str, Path],
    out: Path,
    *args: str,
    unlearned: str = "retrained",
    arch: bool = True,
) -> list[str]:
    argv = [
        "audit",
        "--original",
        str(files["original"]),
        "--unlearned",
        str(files[unlearned]),
        "--forget-class",
        "3",
        "--normalize",
        "none",
        "--out",
        str(out),
        "--no-pdf",
        "--quiet",
        "--cache-dir",
        str(out.parent / "store"),
        *args,
    ]
    return [*argv, "--arch", ARCH] if arch else argv


def _quick(files: dict[str, Path]) -> list[str]:
    """Train nothing: the owner's second retrained model is the reference."""
    return ["--reference", str(files["retrained_2"]), "--profile", "quick"]


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return code, captured.out, captured.err


def _cka(out: Path) -> dict[str, dict[str, float]]:
    """The representation check's CKA table of the audit written to ``out``."""
    evidence = AuditResult.load(out / "result.json").checks["representation"].evidence
    assert isinstance(evidence, RepresentationEvidence)
    return evidence.cka


def _result(out: Path) -> dict[str, Any]:
    return json.loads((out / "result.json").read_text())


def _verdict(result: dict[str, Any], claim: str) -> dict[str, Any]:
    return next(v for v in result["verdicts"] if v["claim"] == claim)


# --- the original's recipe ----------------------------------------------------------------------


def test_given_recipe_trains_references_and_shadows_and_is_recorded(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "given"
    argv = _audit(files, out, "--recipe", str(files["recipe"]), "--checks", "accuracy,membership")
    code, stdout, _ = _run([*argv, "--shadows", "2"], capsys)
    assert code in (0, 3, 4)
    result = _result(out)
    expected = Recipe.from_dict(OWNER_RECIPE).to_dict()
    for role in ("reference", "shadow_1", "shadow_2"):
        assert result["models"][role]["recipe"] == expected, role
        assert result["models"][role]["origin"] == "trained by the audit"
        assert result["models"][role]["recipe_source"] == "given"
    assert result["config"]["recipe_source"] == "given"
    assert result["record"]["recipe"]["source"] == "given"
    assert not any(n.startswith(DEFAULT_RECIPE_NOTE) for n in result["notes"])
    assert DEFAULT_RECIPE_NOTE not in stdout
    # the reference resembles the owner's own retrained model: both train on retain
    owner, ours = result["models"]["unlearned"]["accuracy"], result["models"]["reference"]
    assert ours["accuracy"]["members"] is not None and owner["members"] is not None
    assert abs(ours["accuracy"]["test"] - owner["test"]) < 0.15


def test_without_a_recipe_the_default_is_used_and_said_everywhere(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "default"
    code, stdout, _ = _run(_audit(files, out, "--checks", "accuracy"), capsys)
    assert code in (0, 3, 4)
    result = _result(out)
    assert result["config"]["recipe_source"] == "default"
    assert result["models"]["reference"]["recipe_source"] == "default"
    assert result["models"]["reference"]["recipe"] != Recipe.from_dict(OWNER_RECIPE).to_dict()
    notes = [n for n in result["notes"] if n.startswith(DEFAULT_RECIPE_NOTE)]
    assert len(notes) == 1 and "--recipe" in notes[0]
    assert DEFAULT_RECIPE_NOTE in stdout
    assert any(item.startswith(DEFAULT_RECIPE_NOTE) for item in result["limitations"])
    html = (out / "report.html").read_text()
    verdicts_end = html.index('id="recipe-note"')
    assert html.index('id="verdicts"') < verdicts_end < html.index('id="request"')
    assert "default recipe: not the original" in html


def test_recipe_options_change_single_fields_of_the_recipe_file(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "fields"
    argv = _audit(files, out, "--recipe", str(files["recipe"]), "--epochs", "2", "--lr", "0.01")
    code, _, _ = _run([*argv, "--checks", "accuracy"], capsys)
    assert code in (0, 3, 4)
    recipe = _result(out)["models"]["reference"]["recipe"]
    assert (recipe["epochs"], recipe["lr"], recipe["optimizer"]) == (2, 0.01, "adam")


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("lrr = 0.1\n", "'lrr'"),
        ('lr = "fast"\n', "`lr`"),
        ("epochs = 2.5\n", "`epochs`"),
        ('optimizer = "rmsprop"\n', "`optimizer`"),
        ("lr = \n", "not valid TOML"),
    ],
)
def test_a_bad_recipe_file_is_one_line_naming_the_field(
    files: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    text: str,
    named: str,
) -> None:
    recipe = tmp_path / "bad.toml"
    recipe.write_text(text)
    code, _, err = _run(_audit(files, tmp_path / "out", "--recipe", str(recipe)), capsys)
    assert code == 1
    assert len(err.strip().splitlines()) == 1 and named in err
    assert not (tmp_path / "out").exists()


def test_a_recipe_that_contradicts_the_recorded_one_needs_override(
    quick_model: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from unlearn_audit.models.checkpoints import save_checkpoint

    original = save_checkpoint(quick_model, tmp_path / "o.safetensors")
    base = ["audit", "--original", str(original), "--unlearned", str(original)]
    base += ["--forget-class", "3", "--profile", "quick", "--checks", "accuracy", "--no-pdf"]
    base += ["--quiet", "--lr", "0.5", "--out"]
    code, _, err = _run([*base, str(tmp_path / "a")], capsys)
    assert code == 1 and "contradicts the one recorded" in err and "lr 0.5 vs 0.05" in err
    assert "--override-recipe" in err
    code, _, err = _run([*base, str(tmp_path / "b"), "--override-recipe"], capsys)
    assert code == 5, err  # partial: one check
    result = _result(tmp_path / "b")
    assert result["config"]["recipe"]["lr"] == 0.5
    assert result["record"]["recipe"]["source"] == "given"


# --- one architecture per role ------------------------------------------------------------------


def test_a_wrapped_unlearned_model_loads_with_its_own_arch(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    common = _quick(files)
    common += ["--checks", "accuracy,representation"]
    code, _, err = _run(_audit(files, tmp_path / "plain", *common, unlearned="masked"), capsys)
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert "unexpected keys" in err and "mask" in err
    out = tmp_path / "roles"
    argv = _audit(files, out, *common, "--unlearned-arch", MASKED_ARCH, unlearned="masked")
    code, _, err = _run(argv, capsys)
    assert code in (0, 3, 5), err
    result = _result(out)
    assert result["models"]["unlearned"]["original_tensors_kept"] == [6, 6]
    assert (
        AuditResult.load(out / "result.json")
        .headline()[0]
        .startswith("The unlearned model holds all 6")
    )
    assert result["models"]["unlearned"]["arch"] == MASKED_ARCH
    assert result["models"]["original"]["arch"] == ARCH
    assert result["checks"]["representation"]["status"] == "ok"
    # its features are the original's: the logit mask removed nothing from them
    cka = _cka(out)
    assert cka["unlearned"]["forget"] > 0.99 > cka["reference"]["forget"]


def test_a_torchscript_original_with_arch_trains_its_references(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = tmp_path / "lenient.toml"  # utility is not the point here
    policy.write_text("[utility_kept]\npass = 1.0\nwarn = 1.0\n")
    base = [
        "audit",
        "--original",
        str(files["original_ts"]),
        "--policy",
        str(policy),
        "--unlearned",
    ]
    base += [str(files["retrained_ts"]), "--forget-class", "3", "--normalize", "none"]
    base += ["--checks", "accuracy", "--no-pdf", "--quiet", "--recipe", str(files["recipe"])]
    base += ["--cache-dir", str(tmp_path / "store"), "--out"]
    code, stdout, _ = _run([*base, str(tmp_path / "no-arch")], capsys)
    assert code == 4
    assert stdout.startswith("INCONCLUSIVE: forgotten could not be judged")
    assert "--arch" in stdout.splitlines()[0]
    forgotten = _verdict(_result(tmp_path / "no-arch"), "forgotten")
    assert (forgotten["status"], forgotten["cause"]) == ("INCONCLUSIVE", "unjudgeable")
    code, _, _ = _run([*base, str(tmp_path / "arch"), "--arch", ARCH], capsys)
    assert code in (0, 3, 5)
    result = _result(tmp_path / "arch")
    assert result["models"]["reference"]["arch"] == ARCH
    assert result["models"]["reference"]["origin"] == "trained by the audit"
    assert _verdict(result, "forgotten")["status"] in ("PASS", "WARN")


# --- TorchScript: what can still be read, and the fake that picks its format --------------------


def test_a_torchscript_logit_mask_is_inconclusive_not_a_pass(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    common = _quick(files)
    code, stdout, _ = _run(_audit(files, tmp_path / "a", *common, unlearned="masked_ts"), capsys)
    assert code == 4
    # said first: the mask is compiled code around the original's own weights (by value: the
    # TorchScript names carry no prefix the original's lack, the wrapper's state dict does)
    kept, inconclusive = stdout.splitlines()[:2]
    assert kept.startswith("The unlearned model holds all 6 of the original's weight tensors")
    first = inconclusive
    assert first.startswith("INCONCLUSIVE: knowledge_removed could not be judged")
    assert "state_dict" in first and "--unlearned-arch" in first
    result = _result(tmp_path / "a")
    knowledge = _verdict(result, "knowledge_removed")
    assert knowledge["status"] == "INCONCLUSIVE" and knowledge["remedy"]
    assert _verdict(result, "forgotten")["status"] == "PASS"  # the mask fools the outputs
    assert _verdict(result, "no_membership_leak")["cause"] == "not_run"  # quick: user's choice
    assert any("only its logits could be read" in n for n in result["notes"])
    html = (tmp_path / "a" / "report.html").read_text()
    assert html.index('id="headline"') < html.index('id="verdicts"')
    assert "INCONCLUSIVE: knowledge_removed" in html
    argv = _audit(
        files, tmp_path / "b", *common, "--fail-on", "inconclusive", unlearned="masked_ts"
    )
    assert _run(argv, capsys)[0] == 3


def test_a_plain_torchscript_model_is_read_through_its_layers(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    common = _quick(files)
    common += ["--checks", "accuracy,representation,saliency"]
    code, _, _ = _run(_audit(files, tmp_path / "a", *common, unlearned="original_ts"), capsys)
    assert code == 3  # the original itself, in another format: nothing forgotten
    result = _result(tmp_path / "a")
    assert result["checks"]["representation"]["status"] == "ok"
    assert result["checks"]["saliency"]["status"] == "ok"
    assert _cka(tmp_path / "a")["unlearned"]["forget"] == pytest.approx(1.0, abs=1e-6)
    assert _verdict(result, "knowledge_removed")["status"] in ("PASS", "WARN", "FAIL")  # judged


def test_a_torchscript_original_is_read_with_arch_after_a_run_that_could_not_read_it(
    files: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The original's stored outputs are keyed by what its layers were read through: the run
    that names the remedy (--arch) stores outputs without features, and the run that follows
    it must not read those back."""
    import unlearn_audit.models.layers as layers

    argv = ["audit", "--original", str(files["original_ts"]), "--unlearned"]
    argv += [str(files["retrained_ts"]), "--reference", str(files["retrained_2_ts"])]
    argv += ["--forget-class", "3", "--normalize", "none", "--profile", "quick", "--no-pdf"]
    argv += ["--checks", "representation", "--quiet", "--cache-dir", str(tmp_path / "store")]
    with monkeypatch.context() as patch:  # as for a network that is not a chain of layers
        patch.setattr(layers, "recover_chain", lambda net: None)
        code, stdout, _ = _run([*argv, "--out", str(tmp_path / "a")], capsys)
    assert code == 4 and "--arch" in stdout.splitlines()[0]
    assert _result(tmp_path / "a")["checks"]["representation"]["status"] != "ok"
    code, _, _ = _run([*argv, "--out", str(tmp_path / "b"), "--arch", ARCH], capsys)
    assert code in (0, 3, 5)
    assert _result(tmp_path / "b")["checks"]["representation"]["status"] == "ok"


def test_a_fake_that_behaves_on_noise_is_caught_on_real_data(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    common = _quick(files)
    code, _, _ = _run(_audit(files, tmp_path / "a", *common, unlearned="corner_ts"), capsys)
    assert code == 4
    result = _result(tmp_path / "a")
    assert _verdict(result, "knowledge_removed")["status"] == "INCONCLUSIVE"
    assert (
        "disagreed with the compiled model's logits" in result["checks"]["representation"]["reason"]
    )


# --- exit codes and identical models ------------------------------------------------------------


def _left_out_as_inapplicable(monkeypatch: pytest.MonkeyPatch, utility: str = "PASS") -> None:
    """Wrap the audit's judge: the claims ``--checks`` left out read "not applicable" (as if
    the request had nothing for them to judge), and utility_kept gets ``utility``; so a quick
    run's outcome is that verdict's alone."""
    import unlearn_audit.policy as policy_module

    judge = policy_module.judge

    def judged(*args: Any, **kwargs: Any) -> list[Any]:
        verdicts = judge(*args, **kwargs)
        for verdict in verdicts:
            if verdict.cause == "not_run":
                verdict.cause = "not_applicable"
            if verdict.claim == "utility_kept":
                verdict.status = utility
        return verdicts

    monkeypatch.setattr("unlearn_audit.pipeline.judge", judged)


def test_a_partial_audit_is_said_first_and_never_a_pass(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Claims that apply but that the audit was set not to judge (here: no shadow models, and
    only the accuracy check) make the outcome PARTIAL, named first, exit 5: absence of
    evidence is not a pass."""
    policy = tmp_path / "lenient.toml"
    policy.write_text("[utility_kept]\npass = 1.0\nwarn = 1.0\n")
    common = [*_quick(files), "--checks", "accuracy", "--policy", str(policy)]
    code, stdout, _ = _run(_audit(files, tmp_path / "a", *common), capsys)
    assert code == 5, stdout
    first, second = stdout.splitlines()[:2]
    assert first.startswith("PARTIAL: 2 of the claims that apply were not judged, by this")
    assert "no_membership_leak" in first and "knowledge_removed" in first
    assert "backdoor_removed" not in first, "no trigger: it does not apply"
    assert "Only forgotten, utility_kept were judged" in first
    assert second == "outcome: PARTIAL"
    result = AuditResult.load(tmp_path / "a" / "result.json")
    assert result.outcome == "PARTIAL" and not result.passed
    assert [v.claim for v in result.unjudged] == ["no_membership_leak", "knowledge_removed"]
    assert {v.claim: v.status for v in result.verdicts}["forgotten"] == "PASS"
    html = (tmp_path / "a" / "report.html").read_text()
    assert html.index("PARTIAL: 2 of the claims") < html.index('id="verdicts"')
    assert "2 not judged by this audit's settings, 1 not applicable" in html
    code, _, _ = _run(_audit(files, tmp_path / "b", *common, "--fail-on", "inconclusive"), capsys)
    assert code == 3


def test_exit_zero_when_every_claim_passes(
    files: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _left_out_as_inapplicable(monkeypatch)
    common = [*_quick(files), "--checks", "accuracy"]
    code, stdout, _ = _run(_audit(files, tmp_path / "a", *common), capsys)
    assert code == 0, stdout
    assert stdout.startswith("outcome: PASS")  # no headline
    assert _result(tmp_path / "a")["models"]["unlearned"]["original_tensors_kept"] == [0, 6]
    code, _, _ = _run(_audit(files, tmp_path / "b", *common, "--fail-on", "warn"), capsys)
    assert code == 0


def test_identical_models_are_said_first_and_fail(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    common = [*_quick(files), "--checks", "accuracy"]
    code, stdout, _ = _run(_audit(files, tmp_path / "a", *common, unlearned="original"), capsys)
    assert code == 3
    assert stdout.startswith("The unlearned model is identical to the original")
    html = (tmp_path / "a" / "report.html").read_text()
    assert html.index("identical to the original") < html.index('id="verdicts"')


def test_fail_on_warn_turns_a_warning_into_exit_3(
    files: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """How --fail-on maps a warning: the audit runs for real, its utility verdict is turned into
    a WARN (the judge is wrapped), and the exit code follows."""
    _left_out_as_inapplicable(monkeypatch, utility="WARN")
    common = [*_quick(files), "--checks", "accuracy"]
    code, stdout, _ = _run(_audit(files, tmp_path / "a", *common), capsys)
    assert code == 0 and stdout.startswith("outcome: WARN")
    code, _, _ = _run(_audit(files, tmp_path / "b", *common, "--fail-on", "warn"), capsys)
    assert code == 3


def test_exit_codes_table() -> None:
    from unlearn_audit.cli.auditing import audit_exit_code

    table = {
        ("PASS", "fail"): 0,
        ("WARN", "fail"): 0,
        ("INCONCLUSIVE", "fail"): 4,
        ("FAIL", "fail"): 3,
        ("WARN", "inconclusive"): 0,
        ("INCONCLUSIVE", "inconclusive"): 3,
        ("WARN", "warn"): 3,
        ("INCONCLUSIVE", "warn"): 3,
        ("PASS", "warn"): 0,
        ("PARTIAL", "fail"): 5,
        ("PARTIAL", "inconclusive"): 3,
        ("PARTIAL", "warn"): 3,
    }
    for (outcome, fail_on), code in table.items():
        assert audit_exit_code(outcome, fail_on) == code, (outcome, fail_on)


def test_a_malformed_command_line_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["audit", "--original", "o.pt", "--fail-on", "sometimes"])
    assert exc.value.code == 2


# --- the record ---------------------------------------------------------------------------------


def test_the_record_is_in_the_json_the_html_and_the_pdf(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import pypdf

    out = tmp_path / "record"
    argv = _audit(files, out, "--reference", str(files["retrained_2"]), "--profile", "quick")
    argv.remove("--no-pdf")
    code, _, _ = _run(argv, capsys)
    assert code in (0, 3, 4)
    result = _result(out)
    versions = result["versions"]
    for name in ("python", "torch", "torchvision", "numpy", "scipy", "scikit-learn", "captum"):
        assert re.match(r"\d+\.\d+", versions[name]), name
    assert versions["unlearn-audit"]
    record = result["record"]
    assert record["device"] == "cpu"
    assert record["command_line"] == ["unlearn-audit", *argv]
    for role, name in (
        ("original", "original"),
        ("unlearned", "retrained"),
        ("reference", "retrained_2"),
    ):
        digest = hashlib.sha256(files[name].read_bytes()).hexdigest()
        assert record["files"][role] == {"file": files[name].name, "sha256": digest}
    default_policy = Path(__file__).parents[1] / "unlearn_audit" / "default_policy.toml"
    assert record["policy"]["sha256"] == hashlib.sha256(default_policy.read_bytes()).hexdigest()
    assert record["seeds"]["audit"] == 0
    limitations = result["limitations"]
    assert any("no_membership_leak was not judged" in item for item in limitations)
    assert any(item.startswith("one reference seed") for item in limitations)
    html = (out / "report.html").read_text()
    pdf = " ".join(p.extract_text() for p in pypdf.PdfReader(out / "report.pdf").pages)
    pdf = re.sub(r"\s+", " ", pdf)
    for text in (html, pdf):
        assert "Limitations of this audit" in text
        assert record["files"]["original"]["sha256"][:32] in text.replace(" ", "")
        assert "scikit-learn" in text and "captum" in text
        assert "one reference seed" in text
    assert "unlearn-audit audit --original" in html


# --- given shadows ------------------------------------------------------------------------------


def test_given_shadows_are_used_and_give_the_same_attack(
    digits: Dataset, quick_model: Any, tmp_path: Path
) -> None:
    from tests.conftest import QUICK
    from unlearn_audit.pipeline import audit, shadow_member_ids, shadow_seed
    from unlearn_audit.store import Store
    from unlearn_audit.train import train_classifier

    splits = make_splits(digits, ForgetRequest.classes(3))
    reference = train_classifier(
        digits, member_ids=splits.retain, recipe=QUICK, seed=5, progress=False, role="reference"
    )
    unlearned = train_classifier(
        digits, member_ids=splits.retain, recipe=QUICK, seed=6, progress=False
    )
    halves = shadow_member_ids(splits, digits.labels, 2, seed=0)
    first = Store(tmp_path / "first")
    shadows = [
        train_classifier(
            digits,
            recipe=QUICK,
            member_ids=ids,
            seed=shadow_seed(0, k),
            role="shadow",
            normalization=quick_model.normalization,
            store=first,
            progress=False,
        )
        for k, ids in enumerate(halves)
    ]
    options = {
        "original": quick_model,
        "unlearned": unlearned,
        "dataset": digits,
        "request": splits,
        "references": [reference],
        "checks": ["membership"],
        "num_shadows": 2,
    }
    stored = audit(**options, store=first)
    given = audit(
        **options,
        store=Store(tmp_path / "second"),
        shadows=list(zip(shadows, halves, strict=True)),
    )
    assert stored.config["models_built"]["trained"] == 0  # the store held them
    assert given.config["models_built"] == {
        "trained": 0,
        "reused": 0,
        "given_references": 1,
        "given_shadows": 2,
    }
    assert given.checks["membership"].evidence == stored.checks["membership"].evidence
    assert given.models["shadow_1"]["origin"] == "given"
    # the forgotten class's population samples are unseen samples only while no shadow
    # trained on them: those a given shadow says it trained on are left out
    pop3 = splits.population[digits.labels[splits.population] == 3]
    unseen = len(splits.test_forget_class) + len(pop3)
    claimed = [np.union1d(halves[0], pop3[:10]), halves[1]]
    with_class = train_classifier(
        digits,
        recipe=QUICK,
        member_ids=claimed[0],
        seed=shadow_seed(0, 0),
        role="shadow",
        normalization=quick_model.normalization,
        progress=False,
    )
    mixed = audit(**options, shadows=list(zip([with_class, shadows[1]], claimed, strict=True)))
    for result, expected in ((given, unseen), (mixed, unseen - 10)):
        lira = result.checks["membership"].evidence.attacks["lira"]  # type: ignore[union-attr]
        assert lira["unlearned"].tpr_at["0.01"].nonmembers == expected


def test_given_shadow_mistakes_are_one_line_errors(
    digits: Dataset, quick_model: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.conftest import QUICK
    from unlearn_audit.models.checkpoints import save_checkpoint
    from unlearn_audit.train import train_classifier

    splits = make_splits(digits, ForgetRequest.classes(3))
    original = save_checkpoint(quick_model, tmp_path / "o.safetensors")
    mlp = train_classifier(
        digits, arch="mlp", recipe=None, progress=False, member_ids=splits.population[:50]
    )
    other = save_checkpoint(mlp, tmp_path / "mlp.safetensors")
    quick = {"arch": "small-cnn", "recipe": QUICK, "progress": False}
    seen = train_classifier(digits, seed=3, **quick)  # on every member, forget set included
    seen = save_checkpoint(seen, tmp_path / "seen.safetensors")
    shadow = train_classifier(digits, member_ids=splits.population[:50], seed=4, **quick)
    shadow = save_checkpoint(shadow, tmp_path / "shadow.safetensors")
    inside, outside = tmp_path / "inside.txt", tmp_path / "outside.txt"
    inside.write_text("".join(f"{i}\n" for i in splits.population[:50]))
    outside.write_text("".join(f"{i}\n" for i in splits.retain[:5]))
    elsewhere = tmp_path / "elsewhere.txt"
    elsewhere.write_text("".join(f"{i}\n" for i in splits.population[50:100]))
    base = ["audit", "--original", str(original), "--unlearned", str(original)]
    base += ["--forget-class", "3", "--checks", "membership", "--no-pdf", "--quiet", "--out"]
    cases = [
        (
            ["--shadow", str(original), str(original), "--shadow-members", str(inside)],
            "one id file per shadow",
        ),
        (["--shadow", str(original), "--shadow-members", str(outside)], "inside the population"),
        (
            ["--shadow", str(other), "--shadow-members", str(inside)],
            "share the original's architecture",
        ),
        # shadows that cannot be "out" models: an audited model itself, one that learned the
        # forget set, one given with other ids than it records
        (
            ["--shadow", str(original), "--shadow-members", str(inside)],
            "shadow 1 is the same model as the",
        ),
        (
            ["--shadow", str(seen), "--shadow-members", str(inside)],
            "shadow 1 records that it was trained on the original's members",
        ),
        (
            ["--shadow", str(shadow), str(shadow), "--shadow-members", str(inside), str(inside)],
            "shadow 2 is the same model as the shadow 1",
        ),
        (
            ["--shadow", str(shadow), "--shadow-members", str(elsewhere)],
            "shadow 1 records that it was trained on other samples",
        ),
    ]
    for k, (extra, message) in enumerate(cases):
        code, _, err = _run([*base, str(tmp_path / f"out{k}"), *extra], capsys)
        assert code == 1 and message in err and len(err.strip().splitlines()) == 1, err


# --- the Python API -----------------------------------------------------------------------------


def test_audit_takes_plain_modules(digits: Dataset, files: dict[str, Path]) -> None:
    from unlearn_audit import audit
    from unlearn_audit.models.checkpoints import LoadedModel

    original, retrained = TinyNet(10, digits.input_shape), TinyNet(10, digits.input_shape)
    reference = TinyNet(10, digits.input_shape)
    original.load_state_dict(torch.load(files["original"], weights_only=True))
    retrained.load_state_dict(torch.load(files["retrained"], weights_only=True))
    reference.load_state_dict(torch.load(files["retrained_2"], weights_only=True))
    result = audit(
        original=original,
        unlearned=retrained,
        references=[reference],
        dataset=digits,
        request=ForgetRequest.classes(3),
        profile="quick",
        checks=["accuracy"],
        normalization=None,
    )
    assert _verdict(result.to_dict_json(), "forgotten")["status"] == "PASS"
    assert result.models["original"]["kind"] == "memory"
    wrapped = LoadedModel.from_module(original, dataset=digits, normalization=None)
    x, _ = digits.load(np.arange(8))
    assert wrapped.net is original
    assert torch.equal(wrapped(x), original(x))
    assert wrapped.fingerprint == result.models["original"]["fingerprint"]
    normalised = LoadedModel.from_module(original, dataset=digits, normalization="dataset")
    assert not torch.equal(normalised(x), original(x))


def test_assert_passed_fails_an_inconclusive_audit() -> None:
    from unlearn_audit.results import AuditResult
    from unlearn_audit.testing import assert_passed

    result = AuditResult.load(Path(__file__).parent / "golden" / "result_class.json")
    for verdict in result.verdicts:
        verdict.status = "PASS"
    assert_passed(result)
    knowledge = next(v for v in result.verdicts if v.claim == "knowledge_removed")
    knowledge.status, knowledge.remedy = "INCONCLUSIVE", "give the state_dict"
    assert result.outcome == "INCONCLUSIVE" and not result.passed
    with pytest.raises(AssertionError) as failure:
        assert_passed(result)
    message = str(failure.value)
    assert (
        "inconclusive" in message and "remedy for knowledge_removed: give the state_dict" in message
    )
