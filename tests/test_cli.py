from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from unlearn_audit import __version__
from unlearn_audit.classifier import train_classifier
from unlearn_audit.cli import main
from unlearn_audit.data.datasets import Dataset, load_dataset
from unlearn_audit.models.checkpoints import load_checkpoint
from unlearn_audit.models.erm import erm_mask
from unlearn_audit.store import Store

QUICK = ["--epochs", "2", "--quiet"]


def test_train_writes_a_checkpoint_that_round_trips(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "train",
            "--dataset",
            "digits",
            "--arch",
            "small-cnn",
            "--out",
            "m.safetensors",
            "--cache-dir",
            "cache",
            *QUICK,
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "wrote m.safetensors" in out
    model = load_checkpoint(workdir / "m.safetensors")
    assert f"fingerprint {model.fingerprint}" in out
    assert model.info.recipe["epochs"] == 2 and model.info.arch == "small-cnn"
    again = load_checkpoint(workdir / "m.safetensors")
    digits = load_dataset("digits")
    x, _ = digits.load(digits.heldout_ids[:32])
    with torch.no_grad():
        assert torch.equal(model.module(x), again.module(x))
    # the same command again reuses the stored model
    assert main(["train", "--out", "m2.safetensors", "--cache-dir", "cache", *QUICK]) == 0
    assert load_checkpoint(workdir / "m2.safetensors").fingerprint == model.fingerprint


def test_train_with_members_and_recipe_options(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    digits = load_dataset("digits")
    (workdir / "members.txt").write_text("\n".join(str(i) for i in digits.train_ids[:400]))
    code = main(
        [
            "train",
            "--arch",
            "mlp",
            "--member-ids",
            "members.txt",
            "--optimizer",
            "adam",
            "--lr",
            "0.003",
            "--schedule",
            "step",
            "--milestones",
            "1",
            "--no-cache",
            "--out",
            "sub.safetensors",
            *QUICK,
        ]
    )
    assert code == 0
    assert "(400 members, seed 0)" in capsys.readouterr().out
    info = load_checkpoint(workdir / "sub.safetensors").info
    assert info.recipe["optimizer"] == "adam" and info.recipe["milestones"] == [1]
    from unlearn_audit.data.splits import members_fingerprint

    assert info.members_fingerprint == members_fingerprint(digits, digits.train_ids[:400])


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "--dataset", "digitz", "--out", "x.safetensors"], "Did you mean 'digits'"),
        (["train", "--arch", "resnet81", "--out", "x.safetensors"], "Did you mean 'resnet18'"),
        (["train", "--out", "x.pt"], "`--out` must end in .safetensors"),
        (["train", "--lr", "-1", "--out", "x.safetensors"], "`--lr` must be a finite number >= 0"),
        (["train", "--milestones", "a,b", "--out", "x.safetensors"], "`--milestones` must be"),
        (
            ["train", "--arch-kwargs", "[1]", "--out", "x.safetensors"],
            "`--arch-kwargs` must be a JSON",
        ),
        (["train", "--member-ids", "none.txt", "--out", "x.safetensors"], "does not exist"),
        (["train", "--dataset", "mnist", "--out", "x.safetensors"], "needs `--data-root`"),
        (["train", "--device", "tpu", "--out", "x.safetensors"], "`--device` must be"),
    ],
)
def test_user_errors_exit_1_with_one_line(
    workdir: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert main([*argv, "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("unlearn-audit: error: ") and message in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not (workdir / "x.safetensors").exists()


def test_usage_errors_exit_2_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (
        ["train"],
        ["train", "--out", "m.safetensors", "--optimizer", "rmsprop"],
        ["frobnicate"],
    ):
        with pytest.raises(SystemExit) as info:
            main(argv)
        assert info.value.code == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "error:" in err and "--help" in err


def test_version_and_listings(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"unlearn-audit {__version__}"
    assert main(["datasets"]) == 0
    listing = capsys.readouterr().out
    for name in ("digits", "fashion-mnist", "mnist", "cifar10", "folder", "npz"):
        assert f"\n{name} " in f"\n{listing}"
    assert "/usr/share/datasets/fashion-mnist" in listing
    assert main(["archs"]) == 0
    archs = capsys.readouterr().out
    for name in ("mlp", "lenet", "small-cnn", "resnet18", "resnet20"):
        assert f"\n{name} " in f"\n{archs}"
    assert main([]) == 2


def test_help_reads_well(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = capsys.readouterr().out
    for option in (
        "--dataset",
        "--data-root",
        "--member-ids",
        "--arch",
        "--out",
        "--epochs",
        "--device",
        "--cache-dir",
        "--seed",
        "--augment",
    ):
        assert option in text


DEMO_METHODS = ("retrain", "amnesiac")


@pytest.mark.slow
def test_demo_writes_per_method_and_comparison_reports(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The demo's machinery on methods that exercise it (a true retrain, the update log
    amnesiac needs; methods with originals of their own are tested below); every method's own
    run is held to the methods' conformance suite, and the default list is tested below."""
    import json

    from unlearn_audit.results import AuditResult

    # the session's store (UNLEARN_AUDIT_CACHE): the digits original's references and shadows
    # are the ones other tests train too
    argv = ["demo", "--out-dir", "out", "--quiet", "--no-pdf", "--json"]
    assert main([*argv, "--methods", ",".join(DEMO_METHODS)]) == 0
    summary = json.loads(capsys.readouterr().out)
    names = {row["model"] for row in summary["models"]}
    assert names == {"no-unlearning", *DEMO_METHODS}
    for name in names:
        result = AuditResult.load(workdir / "out" / name / "result.json")
        assert (workdir / "out" / name / "report.html").is_file()
        expected = summary_original(workdir, name)
        assert result.models["original"]["fingerprint"] == expected
    rows = {row["model"]: row for row in summary["models"]}
    baseline = rows["no-unlearning"]
    assert baseline["verdicts"]["forgotten"] == "FAIL" and not baseline["passed"]
    # a true retrain passes every claim that applies (it warned on no_membership_leak when
    # the shadows had learned the forgotten class), and the references sit at chance
    assert set(rows["retrain"]["verdicts"].values()) <= {"PASS", "N/A"}, rows["retrain"]
    retrain = AuditResult.load(workdir / "out" / "retrain" / "result.json")
    # against other retrains: the reference of seed 0 would be this very model (the original's
    # seed, which reference seeds pass over)
    judged_by = {retrain.models[r]["fingerprint"] for r in ("reference", "reference_2")}
    assert retrain.models["unlearned"]["fingerprint"] not in judged_by
    assert retrain.record["seeds"]["references"] == [1, 2]
    assert any("pass over 0, the original's own training seed" in n for n in retrain.notes)
    attacks = retrain.checks["membership"].evidence.attacks  # type: ignore[union-attr]
    for attack in ("lira", "rmia"):
        auc = attacks[attack]["reference"].auc
        assert auc.low < 0.5 < auc.high, (attack, auc)
    assert retrain.null_audit is not None
    comparison = (workdir / "out" / "comparison.html").read_text()
    assert "<th>ToW</th>" in comparison  # Tug-of-War against the reference, per method
    tow = retrain.checks["accuracy"].evidence.tug_of_war  # type: ignore[union-attr]
    assert tow is not None and (tow.value or 0.0) > 0.9
    for name in names:
        assert f'href="{name}/report.html"' in comparison
    assert "http" not in comparison.replace('href="', "")  # self-contained


@pytest.mark.slow
def test_demo_gives_erm_ktp_its_own_erm_original(
    workdir: Path, capsys: pytest.CaptureFixture[str], digits: Dataset, session_store: Store
) -> None:
    argv = ["demo", "--profile", "quick", "--methods", "erm-ktp", "--out-dir", "out"]
    assert main([*argv, "--quiet", "--no-pdf", "--json"]) == 0
    capsys.readouterr()
    # erm-ktp unlearns an original trained with the ERM mask layer, marked in the comparison
    own = load_checkpoint(workdir / "out" / "erm-ktp" / "original.safetensors")
    assert own.info.arch == "erm" and erm_mask(own) is not None
    assert "erm-ktp</a> †" in (workdir / "out" / "comparison.html").read_text()
    assert summary_original(workdir, "erm-ktp") == own.fingerprint
    # without amnesiac no update log is needed: the plain original comes from the store
    plain = train_classifier(digits, arch="small-cnn", store=session_store, progress=False)
    assert load_checkpoint(workdir / "out" / "original.safetensors").fingerprint == (
        plain.fingerprint
    )


def test_demo_runs_every_method_that_handles_the_request_by_default() -> None:
    from unlearn_audit.cli.demo import chosen_methods
    from unlearn_audit.errors import ConfigError, RegistryError
    from unlearn_audit.registry import METHOD_PLUGINS

    every = METHOD_PLUGINS.names()
    assert chosen_methods(None, "class") == [
        n for n in every if "class" in METHOD_PLUGINS.get(n).scope
    ]
    assert len(chosen_methods(None, "class")) >= 20
    samples = chosen_methods(None, "sample")
    assert samples and all("sample" in METHOD_PLUGINS.get(n).scope for n in samples)
    assert chosen_methods(" retrain, finetune,retrain", "class") == ["retrain", "finetune"]
    with pytest.raises(RegistryError, match=r"unknown method 'retrian'.*Did you mean 'retrain'"):
        chosen_methods("retrian", "class")
    class_only = next(n for n in every if "sample" not in METHOD_PLUGINS.get(n).scope)
    with pytest.raises(ConfigError, match=f"{class_only!r} does not handle sample requests"):
        chosen_methods(class_only, "sample")
    with pytest.raises(ConfigError, match="names no method"):
        chosen_methods(" , ", "class")


@pytest.mark.slow
def test_demo_with_a_random_request(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from unlearn_audit.results import AuditResult

    argv = ["demo", "--forget-random", "0.05", "--profile", "quick", "--out-dir", "out"]
    argv += ["--methods", "retrain,sisa"]
    assert main([*argv, "--quiet", "--no-pdf", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    names = {row["model"] for row in summary["models"]}
    assert names == {"no-unlearning", "retrain", "sisa"}
    # sisa unlearns a SISA ensemble: its own original, marked in the comparison
    assert (workdir / "out" / "sisa" / "original.safetensors").is_file()
    assert "sisa</a> †" in (workdir / "out" / "comparison.html").read_text()
    assert AuditResult.load(workdir / "out" / "sisa" / "result.json").models["original"][
        "fingerprint"
    ] == summary_original(workdir, "sisa")
    result = AuditResult.load(workdir / "out" / "retrain" / "result.json")
    assert result.request["request"]["kind"] == "random"
    assert result.request["sizes"]["forget"] == 50
    # a quick demo judges neither forgetting nor membership, and says so; knowledge_removed
    # is class-level, so it does not apply to a random request
    assert summary["unjudged"] == ["forgotten", "no_membership_leak"]
    comparison = (workdir / "out" / "comparison.html").read_text()
    assert "PARTIAL: these audits did not judge forgotten, no_membership_leak" in comparison
    assert comparison.count('</span> — <span class="muted">not judged</span>') == 2 * 3
    with pytest.raises(SystemExit) as info:
        main(["demo", "--forget-class", "3", "--forget-random", "0.1"])
    assert info.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def summary_original(workdir: Path, name: str) -> str:
    """The original the demo audited ``name`` against: its own if it saved one (sisa)."""
    own = workdir / "out" / name / "original.safetensors"
    path = own if own.is_file() else workdir / "out" / "original.safetensors"
    return load_checkpoint(path).fingerprint


def test_console_entry_point_exits_nonzero_without_traceback(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "unlearn_audit",
            "train",
            "--dataset",
            "cifar10",
            "--data-root",
            str(tmp_path),
            "--out",
            str(tmp_path / "m.safetensors"),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0 and "cifar" in result.stderr.lower()


def test_splits_verb_prints_and_writes_ids(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from unlearn_audit.data.splits import ForgetRequest, make_splits, read_id_file

    assert main(["splits", "--forget-class", "3,5", "--test-size", "100", "--out-dir", "ids"]) == 0
    out = capsys.readouterr().out
    digits = load_dataset("digits")
    expected = make_splits(digits, ForgetRequest.classes("3,5"), test_size=100)
    for name in expected.names():
        assert f"fingerprint {expected.fingerprints[name]}" in out
        assert (read_id_file(workdir / "ids" / f"{name}.txt") == expected.get(name)).all()
    # the written forget ids are a valid request of their own
    assert main(["splits", "--forget-ids", "ids/forget.txt"]) == 0
    again = capsys.readouterr().out
    assert f"forget {len(expected.forget)} listed samples" in again
    assert f"fingerprint {expected.fingerprints['forget']}" in again  # same ids, same fingerprint
    assert main(["splits", "--forget-random", "0.05", "--seed", "2"]) == 0
    assert "random 0.05 of the members (seed 2)" in capsys.readouterr().out


def test_splits_verb_errors(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["splits", "--forget-class", "12"]) == 1
    assert "unknown class 12" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main(["splits", "--forget-class", "1", "--forget-random", "0.1"])
    assert info.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["splits"])
    assert "one of the arguments" in capsys.readouterr().err


def test_inspect_every_checkpoint_kind(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--out", "own.safetensors", "--no-cache", *QUICK]) == 0
    model = load_checkpoint(workdir / "own.safetensors")
    capsys.readouterr()
    torch.save(model.module.net.state_dict(), workdir / "sd.pt")
    torch.save(model.module.net, workdir / "full.pt")
    torch.jit.script(model.module.net).save(str(workdir / "ts.pt"))

    assert main(["inspect", "own.safetensors", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert f"own checkpoint, fingerprint {model.fingerprint}" in out
    assert "trained on     digits (same data as --dataset)" in out
    assert "training       2 epochs, 32 steps" in out
    assert "last conv      net.features.10" in out and "input of net.head.3" in out

    assert main(["inspect", "sd.pt", "--arch", "small-cnn", "--conv-layer", "features.7"]) == 0
    out = capsys.readouterr().out
    assert f"fingerprint {model.fingerprint}" in out and "last conv      net.features.7" in out

    assert main(["inspect", "sd.pt", "--arch", "small-cnn", "--normalize", "none"]) == 0
    assert "normalisation  none" in capsys.readouterr().out

    digits = load_dataset("digits")
    (workdir / "members.txt").write_text("\n".join(map(str, digits.train_ids[:100])))
    assert main(["inspect", "own.safetensors", "--member-ids", "members.txt"]) == 0
    out = capsys.readouterr().out
    assert "on the members of digits" in out and "on the non-members of digits" in out

    assert main(["inspect", "ts.pt"]) == 0
    assert "torchscript checkpoint" in capsys.readouterr().out

    assert main(["inspect", "full.pt"]) == 1
    err = capsys.readouterr().err
    assert "--trust-checkpoint" in err and err.count("\n") == 1
    assert main(["inspect", "full.pt", "--trust-checkpoint"]) == 0
    assert "pickle checkpoint" in capsys.readouterr().out

    assert main(["inspect", "sd.pt"]) == 1
    assert "give its architecture with `--arch`" in capsys.readouterr().err
    assert main(["inspect", "sd.pt", "--arch", "lenet"]) == 1
    assert "missing keys" in capsys.readouterr().err
    assert main(["inspect", "missing.pt"]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert main(["inspect", "sd.pt", "--arch", "small-cnn", "--normalize", "x"]) == 1
    assert "`--normalize` must be" in capsys.readouterr().err


def test_member_ids_out_of_range_is_a_clear_error(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (workdir / "members.txt").write_text("1\n2\n5000\n")
    assert main(["train", "--member-ids", "members.txt", "--out", "m.safetensors", "--quiet"]) == 1
    assert "member ids out of range" in capsys.readouterr().err
    assert not (workdir / "m.safetensors").exists()


def test_train_with_backdoor(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (workdir / "t.json").write_text('{"kind": "patch", "size": 2, "row": 0, "col": 0, "target": 0}')
    argv = ["train", "--backdoor", "t.json", "--out", "bd.safetensors", "--no-cache", "--quiet"]
    assert main([*argv, "--forget-random", "0.1", "--epochs", "10"]) == 0
    out = capsys.readouterr().out
    assert "backdoor: 100 forget samples carry the trigger, target 0" in out
    assert load_checkpoint(workdir / "bd.safetensors").info.extra["trigger"]["target"] == 0
    assert main(argv) == 1
    assert "needs the samples that carry it" in capsys.readouterr().err
    (workdir / "far.json").write_text(
        '{"kind": "patch", "size": 4, "row": 6, "col": 0, "target": 0}'
    )
    assert (
        main(["train", "--backdoor", "far.json", "--forget-class", "1", "--out", "x.safetensors"])
        == 1
    )
    assert "outside the 8x8 images" in capsys.readouterr().err
    assert main(["train", "--forget-class", "1", "--out", "x.safetensors"]) == 1
    assert "only chooses where `--backdoor` is planted" in capsys.readouterr().err


@pytest.mark.slow
def test_audit_end_to_end_on_trained_checkpoints(
    workdir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from unlearn_audit.results import AuditResult

    common = ["--cache-dir", "cache", "--quiet"]
    assert main(["train", "--out", "original.safetensors", "--epochs", "10", *common]) == 0
    assert main(["splits", "--forget-class", "3", "--out-dir", "ids"]) == 0
    assert (
        main(
            [
                "train",
                "--out",
                "retrained.safetensors",
                "--epochs",
                "10",
                "--seed",
                "5",
                "--member-ids",
                "ids/retain.txt",
                *common,
            ]
        )
        == 0
    )
    capsys.readouterr()
    argv = [
        "audit",
        "--original",
        "original.safetensors",
        "--forget-class",
        "3",
        "--checks",
        "accuracy,divergence",
        *common,
    ]
    # the retrained model was trained on other members than the original: declare them
    with monkeypatch.context() as worker:  # the report written by the report worker
        worker.setenv("UNLEARN_AUDIT_REPORT_WORKER", "1")
        code = main([*argv, "--unlearned", "retrained.safetensors", "--out", "good"])
    assert code == 5, capsys.readouterr().err  # partial: two checks only
    out = capsys.readouterr().out
    assert "forgotten            PASS" in out and "wrote good/result.json" in out
    result = AuditResult.load(workdir / "good" / "result.json")
    assert result.outcome == "PARTIAL" and result.checks["divergence"].status == "ok"
    assert {v.status for v in result.verdicts if v not in result.unjudged} <= {"PASS", "N/A"}
    assert result.models["unlearned"]["source"] == "retrained.safetensors"
    assert "wrote good/report.html" in out and "wrote good/report.pdf" in out
    assert (workdir / "good" / "report.pdf").read_bytes().startswith(b"%PDF")
    # the report is rebuilt from result.json alone, identically
    assert main(["report", "good/result.json", "--out", "rebuilt", "--no-pdf"]) == 0
    html = (workdir / "good" / "report.html").read_text()
    assert (workdir / "rebuilt" / "report.html").read_text() == html
    assert not (workdir / "rebuilt" / "report.pdf").exists()
    assert main(["report", "missing.json"]) == 1
    assert "does not exist" in capsys.readouterr().err

    # the plan of the next audit: the reference is stored, so are the original's outputs
    plan = [*argv, "--unlearned", "original.safetensors", "--out", "planned", "--plan"]
    assert main(plan) == 0
    out = capsys.readouterr().out
    assert "training: 0 models to train, 2 in the store" in out
    assert "  reference  seed 1" in out and "  reference  seed 2" in out  # 0: the original's
    assert "stored" in out and "checks that run:" in out
    assert not (workdir / "planned").exists(), "a plan writes nothing"
    assert main([*plan, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["to_train"] == 0 and summary["training"][0]["role"] == "reference"
    roles = {"original", "unlearned", "reference", "reference_2"}
    assert {p["role"] for p in summary["passes"]} == roles
    assert main([*plan, "--inference-batch-size", "0"]) == 1
    assert "`--inference-batch-size` must be an integer >= 1" in capsys.readouterr().err

    assert main([*argv, "--unlearned", "original.safetensors", "--out", "bad", "--no-pdf"]) == 3
    assert "forgotten            FAIL" in capsys.readouterr().out
    assert not AuditResult.load(workdir / "bad" / "result.json").passed

    assert main([*argv, "--unlearned", "missing.safetensors"]) == 1
    assert "does not exist" in capsys.readouterr().err
    bad_check = [a if a != "accuracy,divergence" else "acuracy" for a in argv]
    assert main([*bad_check, "--unlearned", "original.safetensors"]) == 1
    assert "Did you mean 'accuracy'" in capsys.readouterr().err


def test_audit_with_given_reference_policy_and_trigger(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from unlearn_audit.results import AuditResult

    common = ["--cache-dir", "cache", "--quiet"]
    trigger = '{"kind": "patch", "size": 2, "row": 0, "col": 0, "target": 0}'
    (workdir / "t.json").write_text(trigger)
    assert (
        main(
            [
                "train",
                "--out",
                "bd.safetensors",
                "--epochs",
                "15",
                "--backdoor",
                "t.json",
                "--forget-random",
                "0.1",
                *common,
            ]
        )
        == 0
    )
    assert main(["splits", "--forget-random", "0.1", "--out-dir", "ids"]) == 0
    assert (
        main(
            [
                "train",
                "--out",
                "ref.safetensors",
                "--epochs",
                "15",
                "--member-ids",
                "ids/retain.txt",
                *common,
            ]
        )
        == 0
    )
    # a foreign copy of the backdoored original: a plain state_dict knows nothing of the trigger
    torch.save(
        load_checkpoint(workdir / "bd.safetensors").module.net.state_dict(), workdir / "bd.pt"
    )
    lenient = "[backdoor_removed]\npass = 1.0\nwarn = 1.0\n[forgotten]\npass = 1.0\nwarn = 1.0\n"
    (workdir / "lenient.toml").write_text(lenient)
    capsys.readouterr()
    base = [
        "audit",
        "--original",
        "bd.pt",
        "--unlearned",
        "bd.pt",
        "--arch",
        "small-cnn",
        "--forget-random",
        "0.1",
        "--reference",
        "ref.safetensors",
        "--profile",
        "quick",
        "--checks",
        "accuracy,backdoor",
        "--no-pdf",
        *common,
    ]
    # without the trigger the backdoor goes unseen and no claim fails (partial: two checks)
    assert main([*base, "--out", "a"]) == 5
    result = AuditResult.load(workdir / "a" / "result.json")
    assert result.checks["backdoor"].status == "na"
    assert main([*base, "--trigger", "t.json", "--out", "b"]) == 3
    result = AuditResult.load(workdir / "b" / "result.json")
    from unlearn_audit.checks.backdoor import BackdoorEvidence

    evidence = result.checks["backdoor"].evidence
    assert isinstance(evidence, BackdoorEvidence)
    assert (evidence.attack_success["original"].value or 0.0) > 0.9
    assert {v.claim: v.status for v in result.verdicts}["backdoor_removed"] == "FAIL"
    # given the trigger, the forget set is also judged as the original learned it: a foreign
    # copy of the untouched original fails `forgotten` too
    forgotten = next(v for v in result.verdicts if v.claim == "forgotten")
    assert forgotten.status == "FAIL" and "as trained" in forgotten.evidence
    built = result.config["models_built"]
    assert (built["trained"], built["reused"], built["given_references"]) == (0, 0, 1)
    assert main([*base, "--trigger", "t.json", "--policy", "lenient.toml", "--out", "c"]) == 5
    result = AuditResult.load(workdir / "c" / "result.json")
    assert {v.claim: v.status for v in result.verdicts}["backdoor_removed"] == "PASS"
    assert result.config["policy"] == "lenient.toml"


def test_unlearn_and_methods_verbs(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    assert main(["methods", "--json"]) == 0
    listed = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert {"finetune", "neggrad", "neggrad-plus", "random-labels"} <= set(listed)
    assert "class" in listed["neggrad-plus"]["scope"] and listed["neggrad-plus"]["paper"]
    assert main(["train", "--out", "o.safetensors", "--epochs", "10", "--no-cache", "--quiet"]) == 0
    capsys.readouterr()
    argv = [
        "unlearn",
        "--original",
        "o.safetensors",
        "--forget-class",
        "3",
        "--quiet",
        "--out",
        "u.safetensors",
    ]
    assert main([*argv, "--method", "neggrad-plus", "--hp", "epochs=2", "alpha=0.9"]) == 0
    out = capsys.readouterr().out
    model = load_checkpoint(workdir / "u.safetensors")
    record = model.info.extra["unlearning"]
    assert record["method"] == "neggrad-plus" and record["hyperparameters"]["epochs"] == 2
    assert record["hyperparameters"]["alpha"] == pytest.approx(0.9) and record["seconds"] > 0
    assert f"fingerprint {model.fingerprint}" in out and "wrote u.safetensors" in out
    assert main([*argv, "--method", "neggrad-plus", "--hp", "epoch=2"]) == 1
    assert "epoch" in capsys.readouterr().err
    assert main([*argv, "--method", "negrad"]) == 1
    assert "Did you mean 'neggrad'" in capsys.readouterr().err
    assert main([*argv, "--method", "finetune", "--hp", "lr"]) == 1
    assert "`--hp` must be key=value" in capsys.readouterr().err


def test_lists_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    for verb, key in (("datasets", "digits"), ("archs", "small-cnn"), ("checks", "membership")):
        assert main([verb, "--json"]) == 0
        data = json.loads(capsys.readouterr().out)
        names = [row["name"] for row in data] if isinstance(data, list) else list(data)
        assert key in names


def test_train_structures_and_their_methods(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--sisa-shards / --log-updates at training time, then `unlearn` with sisa / amnesiac."""
    sisa = ["train", "--sisa-shards", "2", "--sisa-slices", "2", "--out", "s.safetensors"]
    assert main([*sisa, *QUICK, "--no-cache"]) == 0
    assert "trained sisa (2 shards x 2 slices of small-cnn)" in capsys.readouterr().out
    ensemble = load_checkpoint(workdir / "s.safetensors")
    assert ensemble.info.arch == "sisa" and ensemble.info.arch_kwargs["slices"] == 2
    logged = ["train", "--log-updates", "--out", "m.safetensors", *QUICK, "--no-cache"]
    assert main(logged) == 0
    out = capsys.readouterr().out
    assert "update log: 32 steps kept" in out and "m.updates.safetensors" in out
    assert (workdir / "m.updates.safetensors").is_file()
    unlearn = ["unlearn", "--forget-random", "20", "--quiet", "--out", "u.safetensors"]
    assert main([*unlearn, "--original", "s.safetensors", "--method", "sisa"]) == 0
    assert main([*unlearn, "--original", "m.safetensors", "--method", "amnesiac"]) == 0
    capsys.readouterr()
    # the prerequisites are missing: one line naming the training option
    assert main([*unlearn, "--original", "s.safetensors", "--method", "amnesiac"]) == 1
    assert "--log-updates" in capsys.readouterr().err
    assert main([*unlearn, "--original", "m.safetensors", "--method", "sisa"]) == 1
    err = capsys.readouterr().err
    assert "--sisa-shards" in err and err.count("\n") == 1


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--sisa-slices", "2"], "`--sisa-slices` needs --sisa-shards"),
        (["--sisa-shards", "0"], "`--sisa-shards` must be an integer >= 1"),
        (["--sisa-shards", "2", "--arch", "sisa"], "`--arch` of a SISA ensemble must be a single"),
        (["--sisa-shards", "600", "--sisa-slices", "2"], "cannot fill 600 shards x 2 slices"),
        (["--log-candidates", "ids.txt"], "`--log-candidates` needs --log-updates"),
        (
            ["--log-updates", "--sisa-shards", "2"],
            "drop one of `--log-updates` and `--sisa-shards`",
        ),
    ],
)
def test_train_structure_errors(
    workdir: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert main(["train", "--out", "x.safetensors", *argv, *QUICK, "--no-cache"]) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (workdir / "x.safetensors").exists()


def test_methods_describes_one(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    assert main(["methods", "amnesiac"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("amnesiac: subtract the logged updates")
    assert "needs        the update log (train --log-updates)" in out
    assert "epochs=5" in out and "Every logged step whose batch" in out
    assert main(["methods", "sisa", "--json"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["name"] == "sisa" and row["defaults"] == {} and "shards" in row["description"]
    assert main(["methods", "amnesic"]) == 1
    assert "Did you mean 'amnesiac'" in capsys.readouterr().err


@pytest.mark.slow
def test_train_erm_and_unlearn_with_erm_ktp(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--erm at training time (the digits recipe), then `unlearn` with erm-ktp."""
    # the session's store: the ERM original of the methods' tests and the demo's
    assert main(["train", "--erm", "--out", "e.safetensors", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "small-cnn with the ERM mask layer on digits" in out
    assert main(["train", "--erm", "--out", "e.safetensors", "--quiet"]) == 0
    again = capsys.readouterr().out
    assert "loaded small-cnn with the ERM mask layer on digits" in again
    assert "from the store (trained earlier with the same data, recipe and seed)" in again
    assert "ERM mask G (10 classes x 64 channels): CSI" in out and "warning" not in out
    model = load_checkpoint(workdir / "e.safetensors")
    assert model.info.arch == "erm" and model.info.arch_kwargs == {
        "base": "small-cnn",
        "base_kwargs": {},
    }
    g = erm_mask(model)
    assert g is not None and g.shape == (10, 64)
    unlearn = ["unlearn", "--forget-class", "3,5", "--quiet", "--out", "u.safetensors"]
    assert main([*unlearn, "--original", "e.safetensors", "--method", "erm-ktp"]) == 0
    unlearned = erm_mask(load_checkpoint(workdir / "u.safetensors"))
    assert unlearned is not None and not unlearned[[3, 5]].any()
    capsys.readouterr()
    # a plain original: one line naming the training option
    assert main(["train", "--out", "m.safetensors", *QUICK, "--no-cache"]) == 0
    capsys.readouterr()
    assert main([*unlearn, "--original", "m.safetensors", "--method", "erm-ktp"]) == 1
    err = capsys.readouterr().err
    assert "(unlearn-audit train --erm)" in err and err.count("\n") == 1
    # too short a run leaves G dense: said at training time
    assert main(["train", "--erm", "--out", "d.safetensors", *QUICK, "--no-cache"]) == 0
    assert "warning: G is still dense" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--erm", "--sisa-shards", "2"], "drop one of --erm and --sisa-shards"),
        (["--erm", "--log-updates"], "drop one of `--log-updates` and `--erm`"),
        (["--erm", "--arch", "mlp"], "`--erm` needs a CNN whose last conv stage"),
        (["--erm", "--arch", "erm"], "`--arch` with `--erm` must be a single CNN"),
        (["--erm-lambda", "0.5"], "`--erm-lambda` needs --erm"),
        (["--erm", "--erm-lambda", "-1"], "`--erm-lambda` must be a number >= 0"),
        (["--erm", "--erm-period", "1"], "`--erm-period` must be an integer >= 2"),
    ],
)
def test_train_erm_errors(
    workdir: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert main(["train", "--out", "x.safetensors", *argv, *QUICK, "--no-cache"]) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (workdir / "x.safetensors").exists()


def test_core_errors_name_parameters_and_the_cli_names_options() -> None:
    """The core says `member_ids` (what an API caller passes); the command line prints the
    option that sets it; a file's fields stay as the file spells them."""
    from unlearn_audit.cli import as_flags, build_parser

    parser = build_parser()
    assert as_flags("give the ids with `member_ids`; lower `lr`.", parser) == (
        "give the ids with `--member-ids`; lower `--lr`."
    )
    assert as_flags("drop one of `update_log` and `sisa_shards`.", parser) == (
        "drop one of `--log-updates` and `--sisa-shards`."
    )
    assert as_flags("`pass` must be <= `warn`", parser) == "`pass` must be <= `warn`"
    for in_file in (
        "recipe file r.toml: `epochs` must be an integer",
        "`checks` must be an object of check results; got 3. Re-run the audit, or restore "
        "result.json as unlearn-audit wrote it.",
    ):
        assert as_flags(in_file, parser) == in_file


def test_the_garbage_collector_runs_less_often_while_a_verb_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import gc

    from unlearn_audit import cli
    from unlearn_audit._process import GC_THRESHOLDS

    before = gc.get_threshold()
    assert before != GC_THRESHOLDS
    seen: list[tuple[int, ...]] = []

    def verb(argv):  # type: ignore[no-untyped-def]
        seen.append(gc.get_threshold())
        return 0

    monkeypatch.setattr(cli, "_main", verb)
    assert main(["store"]) == 0
    assert seen == [GC_THRESHOLDS] and gc.get_threshold() == before
    monkeypatch.undo()
    with pytest.raises(SystemExit):  # a malformed command line: restored all the same
        main(["--no-such-option"])
    assert gc.get_threshold() == before


def test_the_console_script_exits_with_the_verbs_code_its_output_and_exit_handlers(
    tmp_path: Path,
) -> None:
    """``run`` (the console script) skips the interpreter's teardown, not what a normal exit
    does: the output is flushed, ``atexit`` handlers run, the exit code is the verb's."""
    marker = tmp_path / "atexit-ran"
    script = (
        "import atexit, sys\n"
        f"atexit.register(lambda: open({str(marker)!r}, 'w').write('ran'))\n"
        "from unlearn_audit.cli import run\n"
        "print('before', end='')\n"  # unflushed: run flushes it
        "run(sys.argv[1:])\n"
    )
    store = tmp_path / "store"
    ok = subprocess.run(
        [sys.executable, "-c", script, "store", "--cache-dir", str(store)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert ok.returncode == 0 and ok.stdout == f"beforestore {store}: 0 B\n", ok.stdout
    assert marker.read_text() == "ran"
    marker.unlink()
    bad = subprocess.run(
        [sys.executable, "-c", script, "report", str(tmp_path / "missing.json")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 1 and bad.stderr.startswith("unlearn-audit: error: ")
    assert marker.read_text() == "ran"
    # the installed console script and `python -m unlearn_audit` go through it
    scripts = subprocess.run(
        [sys.executable, "-m", "unlearn_audit", "--version"], capture_output=True, text=True
    )
    assert scripts.returncode == 0 and __version__ in scripts.stdout
