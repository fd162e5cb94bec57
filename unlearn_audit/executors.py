"""Where the build stage's training runs: in this process, one after another (``local``, the
default), or as tasks on a Ray cluster (``ray``).

A training run is described as data, a :class:`TrainingJob`: the architecture (zoo name or
``module:factory``, with the fingerprint of its source code), its arguments, the recipe, the
member ids, the seed, the input normalisation and the role (part of the store key). The store
key is the one :func:`~unlearn_audit.classifier.train_classifier` uses, so a model trained by
either executor is found by the other.

The Ray executor skips the jobs the store already holds, sends the rest to the cluster as
tasks (the dataset goes to the object store once, and each task reads it from there), and
writes each model into the store atomically as it comes back (the weights travel as
safetensors bytes through Ray's object store: workers need no shared filesystem). A run that
is killed therefore resumes where it stopped. A worker's error comes back as one line naming
the job; a worker that is lost has its job retried (``max_retries``).

Determinism: on CPU a job trains with as many torch threads as it has CPUs
(``cpus_per_job``), and torch's CPU kernels split their sums by thread count; a model trained
through Ray is bit-identical to the local executor's when the local process uses the same
number of threads (``torch.get_num_threads()``; one per core by default).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from unlearn_audit.errors import ConfigError, UnlearnAuditError

if TYPE_CHECKING:
    from unlearn_audit.data.datasets import Dataset, Normalization
    from unlearn_audit.data.splits import Splits
    from unlearn_audit.models.checkpoints import LoadedModel
    from unlearn_audit.recipe import Recipe
    from unlearn_audit.store import Store

EXECUTORS = ("local", "ray")
RAY_EXTRA = "pip install 'unlearn-audit[ray]'"


class TrainingError(UnlearnAuditError):
    """A training job failed on a worker."""


@dataclass(frozen=True)
class TrainingJob:
    """One training run of the build stage, as data (what a worker needs, and the store key).

    Attributes:
        role: ``reference`` or ``shadow`` (part of the store key).
        seed: Seed of initialisation and training.
        arch: Zoo name or ``module:factory``.
        arch_kwargs: Its arguments.
        arch_code: Fingerprint of the architecture's source (a worker with other code refuses).
        recipe: How to train.
        member_ids: The samples to train on.
        normalization: The model's input normalisation.
    """

    role: str
    seed: int
    arch: str
    arch_kwargs: dict[str, Any]
    arch_code: str
    recipe: Recipe
    member_ids: np.ndarray = field(repr=False)
    normalization: Normalization | None

    @classmethod
    def create(
        cls,
        *,
        role: str,
        seed: int,
        arch: str,
        arch_kwargs: dict[str, Any],
        recipe: Recipe,
        member_ids: np.ndarray,
        normalization: Normalization | None,
    ) -> TrainingJob:
        from unlearn_audit.models.zoo import arch_fingerprint

        return cls(
            role=role,
            seed=seed,
            arch=arch,
            arch_kwargs=dict(arch_kwargs),
            arch_code=arch_fingerprint(arch),
            recipe=recipe,
            member_ids=np.asarray(member_ids, dtype=np.int64),
            normalization=normalization,
        )

    @property
    def name(self) -> str:
        return f"{self.role} (seed {self.seed}, {len(self.member_ids)} samples)"

    def train(
        self,
        dataset: Dataset,
        *,
        store: Store | None = None,
        device: Any = "cpu",
        progress: bool = False,
    ) -> LoadedModel:
        """Train this job's model here (through ``store`` when given: a stored one is loaded)."""
        from unlearn_audit.classifier import train_classifier

        return train_classifier(
            dataset,
            arch=self.arch,
            arch_kwargs=self.arch_kwargs,
            recipe=self.recipe,
            member_ids=self.member_ids,
            seed=self.seed,
            device=device,
            store=store,
            role=self.role,
            normalization=self.normalization,
            progress=progress,
        )

    def missing_key(self, dataset: Dataset, store: Store) -> str | None:
        """The job's store key when the store does not hold its model, else ``None``."""
        from unlearn_audit.store import NotStored

        try:
            self.train(dataset, store=store.lookup_only())
        except NotStored as missing:
            return str(missing.args[0])
        return None


@dataclass(frozen=True)
class MethodJob:
    """One run of an unlearning method (the demo's), as data.

    Attributes:
        method: Its registered name (resolved on the worker through the entry points).
        original: The original's checkpoint bytes.
        splits: The request's splits.
        hyperparameters: The method's overrides; those named in ``files`` become paths of
            those files on the worker.
        files: File contents a hyperparameter names (amnesiac's update log).
        seed: The method's seed.
    """

    method: str
    original: bytes = field(repr=False)
    splits: Splits = field(repr=False)
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict, repr=False)
    seed: int = 0

    @property
    def name(self) -> str:
        return f"method {self.method}"

    def run(self, dataset: Dataset, *, device: Any = "cpu", progress: bool = False) -> bytes:
        """Run the method here; the unlearned model's checkpoint bytes."""
        import tempfile
        from pathlib import Path

        from unlearn_audit.models.checkpoints import checkpoint_bytes, load_checkpoint
        from unlearn_audit.registry import METHOD_PLUGINS

        spec = METHOD_PLUGINS.get(self.method)
        with tempfile.TemporaryDirectory() as folder:
            hyperparameters = dict(self.hyperparameters)
            for key, data in self.files.items():
                path = Path(folder) / f"{key}.safetensors"
                path.write_bytes(data)
                hyperparameters[key] = str(path)
            source = Path(folder) / "original.safetensors"
            source.write_bytes(self.original)
            original = load_checkpoint(source, dataset=dataset)
            result = spec.apply(
                original,
                dataset,
                self.splits,
                hyperparameters=hyperparameters or None,
                seed=self.seed,
                device=device,
                progress=progress,
            )
        return checkpoint_bytes(result.model)


@dataclass
class LocalExecutor:
    """In this process, one job after another (what an audit does without an executor)."""

    name: str = "local"

    def run(
        self,
        jobs: Sequence[TrainingJob],
        dataset: Dataset,
        store: Store,
        *,
        device: Any = "cpu",
        progress: bool = False,
    ) -> int:
        """Train the jobs the store lacks and store them; returns how many were trained."""
        misses = store.misses
        for job in jobs:
            job.train(dataset, store=store, device=device, progress=progress)
        return store.misses - misses

    def run_methods(
        self, jobs: Sequence[MethodJob], dataset: Dataset, *, device: Any = "cpu"
    ) -> list[bytes]:
        """Run the method jobs; the unlearned models' checkpoint bytes, in the jobs' order."""
        return [job.run(dataset, device=device) for job in jobs]


@dataclass
class RayExecutor:
    """Each job a Ray task on an existing cluster (``address``) or on a local one started here
    (and shut down when the run ends).

    Args:
        address: ``ray://host:10001`` or ``host:6379`` of a running cluster; ``None``: the
            cluster this process is already connected to, else a new local one.
        cpus_per_job: CPUs (and torch threads) of each job.
        gpus_per_job: GPUs of each job, fractions allowed (0.25: four jobs per GPU); a job
            with a GPU trains on CUDA.
        max_retries: Times a job whose worker died is run again.
    """

    address: str | None = None
    cpus_per_job: float = 1.0
    gpus_per_job: float = 0.0
    max_retries: int = 3
    name: str = dataclasses.field(default="ray", init=False)

    def __post_init__(self) -> None:
        if not self.cpus_per_job > 0:
            raise ConfigError(f"`cpus_per_job` must be > 0; got {self.cpus_per_job}.")
        if not self.gpus_per_job >= 0:
            raise ConfigError(f"`gpus_per_job` must be >= 0; got {self.gpus_per_job}.")
        if self.max_retries < 0:
            raise ConfigError(f"`max_retries` must be >= 0; got {self.max_retries}.")

    def run(
        self,
        jobs: Sequence[TrainingJob],
        dataset: Dataset,
        store: Store,
        *,
        device: Any = "cpu",
        progress: bool = False,
    ) -> int:

        if not store.enabled:
            raise ConfigError(
                "the Ray executor hands trained models over through the store, which "
                "--no-cache turns off; drop --no-cache (or use --cache-dir DIR for a fresh one)."
            )
        missing = [(job, key) for job in jobs if (key := job.missing_key(dataset, store))]
        if not missing:
            return 0
        keys = {id(job): key for job, key in missing}
        for job, payload in self._map(
            _train_on_worker, [job for job, _ in missing], dataset, "train", progress
        ):
            store.put_checkpoint(keys[id(job)], payload, arch=cast(TrainingJob, job).arch)
        return len(missing)

    def run_methods(
        self, jobs: Sequence[MethodJob], dataset: Dataset, *, device: Any = "cpu"
    ) -> list[bytes]:
        done = {
            id(job): payload
            for job, payload in self._map(_run_method_on_worker, jobs, dataset, "unlearn", False)
        }
        return [done[id(job)] for job in jobs]

    def _map(
        self,
        function: Callable[..., bytes],
        jobs: Sequence[TrainingJob | MethodJob],
        dataset: Dataset,
        verb: str,
        progress: bool,
    ) -> Iterator[tuple[TrainingJob | MethodJob, bytes]]:
        """Run ``function(dataset, job, threads)`` as one Ray task per job; yield each job with
        its result as it arrives. The first failure cancels the rest and is raised as one
        line naming its job."""
        from tqdm.auto import tqdm

        if not jobs:
            return
        ray = import_ray()
        started = self._connect(ray)
        try:
            task = ray.remote(function).options(
                num_cpus=self.cpus_per_job,
                num_gpus=self.gpus_per_job,
                max_retries=self.max_retries,
            )
            data = ray.put(dataset)  # once; every task reads it from the object store
            threads = max(1, int(self.cpus_per_job))
            pending = {task.remote(data, job, threads): job for job in jobs}
            with tqdm(
                total=len(pending), desc=f"{verb} (ray)", unit="job", disable=not progress
            ) as bar:
                while pending:
                    ready, _ = ray.wait(list(pending), num_returns=1)
                    job = pending.pop(ready[0])
                    try:
                        payload = ray.get(ready[0])
                    except ray.exceptions.RayError as exc:
                        for ref in pending:  # (not force: the workers stay for later jobs)
                            ray.cancel(ref)
                        raise TrainingError(
                            f"{'training ' if verb == 'train' else ''}{job.name} on Ray failed: "
                            f"{_cause(exc)}"
                        ) from None
                    yield job, payload
                    bar.update(1)
        finally:
            if started:
                ray.shutdown()

    def _connect(self, ray: Any) -> bool:
        """Connect to the cluster; ``True`` when this call started (and so owns) it."""
        if ray.is_initialized():
            return False
        try:
            ray.init(
                address=self.address,
                include_dashboard=False,
                log_to_driver=False,
                configure_logging=False,
            )
        except (ConnectionError, ValueError, RuntimeError) as exc:
            where = self.address or "a local Ray cluster"
            raise ConfigError(
                f"cannot connect to {where} ({_first_line(exc)}); check --ray-address (start a "
                "cluster with `ray start --head`), or leave it out to start a local one."
            ) from None
        return True


def _train_on_worker(dataset: Dataset, job: TrainingJob, threads: int) -> bytes:
    """A Ray task: train ``job`` and return the checkpoint's bytes (safetensors)."""
    from unlearn_audit.models.checkpoints import checkpoint_bytes
    from unlearn_audit.models.zoo import arch_fingerprint

    if arch_fingerprint(job.arch) != job.arch_code:
        raise ConfigError(
            f"this worker's code of architecture {job.arch!r} differs from the driver's; install "
            "the same unlearn-audit (and the module of an import-path architecture) on every "
            "worker."
        )
    return checkpoint_bytes(job.train(dataset, device=_worker_device(threads)))


def _run_method_on_worker(dataset: Dataset, job: MethodJob, threads: int) -> bytes:
    """A Ray task: run ``job``'s method and return the unlearned model's checkpoint bytes."""
    return job.run(dataset, device=_worker_device(threads))


def _worker_device(threads: int) -> str:
    """CUDA when Ray gave the task a GPU, else CPU with ``threads`` torch threads.

    Also switches autograd back on: a task that ``ray.cancel`` stops gets a KeyboardInterrupt
    wherever it is, also between a ``torch.no_grad()`` switching autograd off and the ``with``
    that would switch it back, and the worker process then runs its next task with autograd off
    (seen: "element 0 of tensors does not require grad" in the next job's training).
    """
    import torch

    torch.set_grad_enabled(True)
    if torch.cuda.is_available() and ray_gpu_ids():
        return "cuda"
    torch.set_num_threads(threads)
    return "cpu"


def ray_gpu_ids() -> list[Any]:
    """The GPUs Ray gave the current task (none outside a task)."""
    import ray

    return list(ray.get_gpu_ids())


def import_ray() -> Any:
    """Ray, or a one-line error naming the extra that installs it."""
    try:
        import ray
    except ImportError:
        raise ConfigError(
            f"--executor ray needs Ray, which is not installed; {RAY_EXTRA}."
        ) from None
    return ray


# what runs the build stage's jobs (both have `run` and `run_methods`)
Executor = LocalExecutor | RayExecutor


def make_executor(
    name: str | Executor | None = None,
    *,
    address: str | None = None,
    cpus_per_job: float = 1.0,
    gpus_per_job: float = 0.0,
) -> Executor:
    """An executor from its name (``local`` or ``ray``) and the Ray options, or as given."""
    if name is None or name == "local":
        if address is not None or cpus_per_job != 1.0 or gpus_per_job:
            raise ConfigError(
                "--ray-address, --cpus-per-job and --gpus-per-job set up Ray jobs; add "
                "--executor ray, or drop them."
            )
        return LocalExecutor()
    if name == "ray":
        import_ray()  # fail before anything else runs
        return RayExecutor(address=address, cpus_per_job=cpus_per_job, gpus_per_job=gpus_per_job)
    if isinstance(name, str):
        raise ConfigError(f"`executor` must be one of {', '.join(EXECUTORS)}; got {name!r}.")
    return name


def _cause(exc: BaseException) -> str:
    """The worker's own error of a Ray error, as one line."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, BaseException):
        if isinstance(cause, UnlearnAuditError):
            return str(cause)
        return f"{type(cause).__name__}: {_first_line(cause)}"
    return f"{type(exc).__name__}: {_first_line(exc)}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
