"""The build stage on Ray: the same models as the local executor, resumable, one-line errors.

The Ray tests share one local cluster (2 CPUs) and run on one xdist worker (``make test`` uses
``--dist loadgroup``), in file order: those that kill a worker or the driver last, since Ray
then starts new worker processes. Each audit trains a 3-epoch digits model's references and
shadows.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch

from unlearn_audit.cli import main
from unlearn_audit.data.datasets import Dataset
from unlearn_audit.data.splits import ForgetRequest
from unlearn_audit.errors import UnlearnAuditError
from unlearn_audit.executors import (
    LocalExecutor,
    MethodJob,
    RayExecutor,
    TrainingJob,
    make_executor,
)
from unlearn_audit.models.checkpoints import LoadedModel, save_checkpoint
from unlearn_audit.pipeline import plan_audit
from unlearn_audit.recipe import Recipe
from unlearn_audit.results import AuditResult
from unlearn_audit.store import Store

TRAINED = ["reference", "reference_2", "shadow_1", "shadow_2", "shadow_3", "shadow_4"]
ray_tests = pytest.mark.xdist_group("ray")


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """A local Ray cluster of 2 CPUs for the module; its address."""
    ray = pytest.importorskip("ray", reason="the [ray] extra is not installed")
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
        object_store_memory=200 * 2**20,
    )
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture(scope="module")
def original_file(quick_model: LoadedModel, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3-epoch digits small-cnn: its references and shadows train in about a second each."""
    return save_checkpoint(quick_model, tmp_path_factory.mktemp("ray") / "original.safetensors")


@contextmanager
def _one_thread() -> Iterator[None]:
    """Torch on one thread, as a Ray job with one CPU: the same sums, the same weights."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _audit_args(
    original: Path, cache: Path, out: Path, *extra: str, checks: str = "accuracy,membership"
) -> list[str]:
    return [
        "audit",
        "--original",
        str(original),
        "--unlearned",
        str(original),
        "--forget-class",
        "3",
        "--checks",
        checks,  # accuracy, membership: references and the shadow bank (standard: 2 and 4)
        "--cache-dir",
        str(cache),
        "--out",
        str(out),
        "--no-pdf",
        "--quiet",
        "--json",
        *extra,
    ]


def _audit(args: list[str], capsys: pytest.CaptureFixture[str]) -> AuditResult:
    main(args)
    files = json.loads(capsys.readouterr().out)["files"]
    return AuditResult.load(files["result"])


def _trained(result: AuditResult) -> dict[str, str]:
    return {role: result.models[role]["fingerprint"] for role in TRAINED}


@ray_tests
def test_the_ray_tests_run_on_one_xdist_worker(request: pytest.FixtureRequest) -> None:
    """Under ``--dist loadgroup`` the group's tests carry its name: one worker, one cluster
    (pytest 9.2 broke this with pytest-xdist 3.8: two clusters of 2 CPUs on 2 cores)."""
    if getattr(request.config.option, "loadgroup", False):  # set on xdist workers only
        assert request.node.nodeid.endswith("@ray"), request.node.nodeid


@ray_tests
@pytest.mark.slow
def test_ray_trains_the_same_models_as_the_local_executor(
    cluster: str, original_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with _one_thread():
        local = _audit(_audit_args(original_file, tmp_path / "a", tmp_path / "o1"), capsys)
    args = _audit_args(original_file, tmp_path / "b", tmp_path / "o2", "--executor", "ray")
    on_ray = _audit(args, capsys)
    assert local.config["models_built"]["trained"] == 6
    assert on_ray.config["models_built"]["trained"] == 6
    assert _trained(on_ray) == _trained(local), "bit-identical weights, same store keys"
    stored = sorted(p.name for p in (tmp_path / "b" / "models").rglob("*.safetensors"))
    assert stored == sorted(p.name for p in (tmp_path / "a" / "models").rglob("*.safetensors"))
    assert len(stored) == 6
    again = _audit(args, capsys)
    assert again.config["models_built"] == {
        "trained": 0,
        "reused": 6,
        "given_references": 0,
        "given_shadows": 0,
    }
    assert _trained(again) == _trained(local)
    assert [v.status for v in again.verdicts] == [v.status for v in local.verdicts]


@ray_tests
def test_a_failing_job_is_one_line_naming_the_job(
    cluster: str, original_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = _audit_args(original_file, tmp_path / "c", tmp_path / "o", "--executor", "ray")
    code = main([*args, "--lr", "1e12", "--override-recipe"])
    err = capsys.readouterr().err.strip()
    assert code == 1
    assert err.count("\n") == 0 and "Traceback" not in err
    assert re.search(r"training (reference|shadow) \(seed \d+, \d+ samples\)", err), err
    assert "on Ray failed: training diverged" in err and "lower `--lr`" in err
    assert not list((tmp_path / "c" / "models").rglob("*.safetensors"))


@ray_tests
def test_method_runs_on_ray_equal_the_local_ones(
    cluster: str, quick_model: LoadedModel, digits: Dataset, tmp_path: Path
) -> None:
    from unlearn_audit.data.splits import make_splits
    from unlearn_audit.models.checkpoints import checkpoint_bytes, load_checkpoint

    splits = make_splits(digits, ForgetRequest.classes(3))
    jobs = [
        MethodJob(
            method=name,
            original=checkpoint_bytes(quick_model),
            splits=splits,
            hyperparameters={"epochs": 1},
            seed=5,
        )
        for name in ("finetune", "random-labels")
    ]
    with _one_thread():
        local = LocalExecutor().run_methods(jobs, digits)
    on_ray = RayExecutor().run_methods(jobs, digits)

    def models(payloads: list[bytes], folder: str) -> list[LoadedModel]:
        (tmp_path / folder).mkdir()
        for k, data in enumerate(payloads):
            (tmp_path / folder / f"{k}.safetensors").write_bytes(data)
        return [load_checkpoint(tmp_path / folder / f"{k}.safetensors") for k in range(2)]

    ray_models, local_models = models(on_ray, "ray"), models(local, "local")
    # the same weights in the jobs' order (the record's wall-clock seconds differ)
    assert [m.fingerprint for m in ray_models] == [m.fingerprint for m in local_models]
    assert [m.info.extra["unlearning"]["method"] for m in ray_models] == [
        "finetune",
        "random-labels",
    ]
    assert len({m.fingerprint for m in ray_models} | {quick_model.fingerprint}) == 3
    failing = MethodJob("finetune", checkpoint_bytes(quick_model), splits, {"epochs": 0})
    with pytest.raises(UnlearnAuditError, match=r"^method finetune on Ray failed: `epochs`"):
        RayExecutor().run_methods([failing], digits)


def test_a_ray_task_starts_with_autograd_on_whatever_the_last_task_left() -> None:
    """``ray.cancel`` (which a failing job does to the others) interrupts a running task
    wherever it is, also inside ``torch.no_grad()``'s own switch, and can leave its worker
    process with autograd off: the next job on it failed with "element 0 of tensors does not
    require grad" (seen once in the whole suite, after the failing-job test; cancelling tasks
    that loop over ``torch.no_grad()`` left one of two workers so in one of two tries)."""
    from unlearn_audit.executors import _worker_device

    torch.set_grad_enabled(False)  # what such a task leaves
    try:
        assert _worker_device(torch.get_num_threads()) == "cpu"
        assert torch.is_grad_enabled()
    finally:
        torch.set_grad_enabled(True)


@dataclass(frozen=True)
class _CrashOnce(TrainingJob):
    """A job whose first worker dies (the process exits) before training."""

    marker: str = ""

    def train(self, dataset: Dataset, **kwargs: Any) -> LoadedModel:
        if kwargs.get("store") is None and not os.path.exists(self.marker):  # on a worker
            Path(self.marker).touch()
            os._exit(1)
        return super().train(dataset, **kwargs)


@ray_tests
def test_a_lost_worker_s_job_is_retried(
    cluster: str, quick_model: LoadedModel, digits: Dataset, tmp_path: Path
) -> None:
    import ray

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # _CrashOnce on workers
    job = TrainingJob.create(
        role="reference",
        seed=0,
        arch="small-cnn",
        arch_kwargs={},
        recipe=Recipe.from_dict(quick_model.info.recipe),
        member_ids=digits.train_ids[:300],
        normalization=quick_model.normalization,
    )
    crashing = _CrashOnce(**vars(job), marker=str(tmp_path / "crashed-once"))
    with pytest.raises(UnlearnAuditError, match=r"^training reference \(seed 0, 300 samples\) "):
        RayExecutor(max_retries=0).run([crashing], digits, Store(tmp_path / "a"))
    assert (tmp_path / "crashed-once").exists()
    (tmp_path / "crashed-once").unlink()
    store = Store(tmp_path / "b")
    assert RayExecutor(max_retries=1).run([crashing], digits, store) == 1
    assert (tmp_path / "crashed-once").exists(), "the first worker did die"
    with _one_thread():
        here = job.train(digits).fingerprint
    assert job.train(digits, store=store.lookup_only()).fingerprint == here


@ray_tests
@pytest.mark.slow
def test_a_killed_ray_build_resumes_with_the_models_it_lacks(
    cluster: str, original_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = tmp_path / "cache"
    args = _audit_args(original_file, cache, tmp_path / "o", "--executor", "ray")
    driver = subprocess.Popen(
        [sys.executable, "-m", "unlearn_audit", *args, "--ray-address", cluster],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    )
    models = cache / "models"
    deadline = time.monotonic() + 240
    try:
        while not any(models.rglob("*.safetensors")):
            assert driver.poll() is None, driver.communicate()[1].decode()
            assert time.monotonic() < deadline, "no model arrived"
            time.sleep(0.05)
        driver.send_signal(signal.SIGKILL)  # in the middle of the build
    finally:
        driver.kill()
        driver.wait()
    before = {p: p.read_bytes() for p in models.rglob("*.safetensors")}
    assert 1 <= len(before) < 6
    assert not list(models.rglob("*.tmp*")), "no half-written entry"
    resumed = _audit(args, capsys)
    built = resumed.config["models_built"]
    assert built["trained"] == 6 - len(before) and built["reused"] == len(before)
    assert {p: p.read_bytes() for p in before} == before, "the stored ones stay"
    assert len(list(models.rglob("*.safetensors"))) == 6


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--ray-address", "localhost:6379"], "add --executor ray"),
        (["--gpus-per-job", "0.25"], "add --executor ray"),
        (["--executor", "ray", "--no-cache"], "drop --no-cache"),
    ],
)
def test_ray_options_are_checked(
    extra: list[str],
    message: str,
    original_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    pytest.importorskip("ray", reason="the [ray] extra is not installed")
    args = _audit_args(original_file, tmp_path / "c", tmp_path / "o", *extra)
    assert main(args) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and message in err


def test_without_ray_the_executor_names_the_extra(
    original_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails as if not installed
    args = _audit_args(original_file, tmp_path / "c", tmp_path / "o", "--executor", "ray")
    assert main(args) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "pip install 'unlearn-audit[ray]'" in err
    assert not (tmp_path / "c").exists(), "nothing ran"


def test_the_local_executor_runs_the_plans_jobs_here(
    original_file: Path, digits: Dataset, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert isinstance(make_executor(None), LocalExecutor)
    assert isinstance(make_executor("local"), LocalExecutor)
    args = _audit_args(original_file, tmp_path / "d", tmp_path / "o", checks="accuracy")
    result = _audit(args, capsys)  # the build trains its two references itself
    plan = plan_audit(
        original=str(original_file),
        unlearned=str(original_file),
        dataset=digits,
        request=ForgetRequest.classes(3),
        checks=["accuracy"],
        store=Store(tmp_path / "e"),
    )
    jobs = [job.job for job in plan.training if job.job is not None]
    assert [job.name for job in jobs] == [
        "reference (seed 1, 902 samples)",  # seed 0 is the original's own
        "reference (seed 2, 902 samples)",
    ]
    store = Store(tmp_path / "e")
    assert LocalExecutor().run(jobs, digits, store) == 2
    assert LocalExecutor().run(jobs, digits, store) == 0, "stored: skipped"
    assert [job.train(digits, store=store).fingerprint for job in jobs] == [
        result.models[role]["fingerprint"] for role in ("reference", "reference_2")
    ]
