"""membership (seed 004; Shokri et al. 2017; Carlini et al. 2022): can an attacker tell the
forget set apart from samples the model never saw?

Four attacks, all fitted on the same shadow bank (models of the original's architecture and
recipe trained on random draws of the population as large as the original's member set, or,
on a class request, as retain and without the forgotten classes):

- ``shokri``: one attack classifier per class on the sorted softmax vector and the true-class
  probability, trained on shadow in/out outputs; its member rate on forget is what the seed
  papers call "MIA accuracy".
- ``lira``: offline per-example attack. Every shadow and every (other) reference is "out" for
  every forget and test sample, so each sample's out-distribution of the logit-scaled
  confidence is fitted and the audited model is scored by how far above it it sits.
- ``rmia``: offline RMIA (Zarifzadeh, Liu & Shokri 2024) on the same out models: the share of
  population samples ``z`` whose likelihood ratio ``p(z|model) / p(z)`` the target sample's
  exceeds, with ``p(.)`` the out models' average true-class probability under the paper's
  offline correction (``a = 0.3``, ``gamma = 1``, the authors' code's defaults); a shadow is
  not an out model for the population samples it trained on.
- ``loss``: a plain loss threshold, the floor any attack must beat.

Each attack scores forget samples (members of the original) against unseen samples of the same
classes (test; for class requests the forgotten classes' samples of test and of the population
that no shadow trained on, ``unseen_forget_class``) for the original, the
unlearned model and the references, with AUC (bootstrap interval), TPR at 1% and 0.1% FPR
(realised FPR, counts, and "unresolved" when the sample is too small for the rate).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Self

import numpy as np

from unlearn_audit.checks.base import Check, CheckResult, Needs, rate, register_check
from unlearn_audit.evidence import (
    Estimate,
    Evidence,
    Gap,
    NoReference,
    Read,
    Table,
    Unmeasurable,
    is_reference,
    ordered_roles,
    reference_role,
)
from unlearn_audit.figures import colour, log_roc_axes, new_figure, style

if TYPE_CHECKING:
    from unlearn_audit.context import AuditContext
    from unlearn_audit.models.checkpoints import LoadedModel
    from unlearn_audit.outputs import Outputs, View

ATTACKS = ("shokri", "lira", "rmia", "loss")
# offline LiRA on the forget set as the original learned it (triggered, target label)
AS_TRAINED = "lira_as_trained"
FPRS = (0.01, 0.001)
PER_ATTACK = ("auc", *(f"tpr@{fpr:g}" for fpr in FPRS))  # the measures of one attack
BOOTSTRAP_RESAMPLES = 400
ROC_POINTS = 200
EXPOSED = 10
ATTACK_NAMES = {
    "lira": "LiRA",
    "rmia": "RMIA",
    "shokri": "Shokri",
    "loss": "loss-threshold",
    AS_TRAINED: "LiRA on the forget set as trained",
}


@dataclass(frozen=True)
class TprAtFpr:
    """An attack's true-positive rate at a target false-positive rate (see
    :class:`unlearn_audit.functional.mia.TprAtFpr`); ``threshold`` is ``None`` when nothing is
    called a member."""

    target_fpr: float
    tpr: float | None
    realised_fpr: float | None
    threshold: float | None
    true_positives: int
    members: int
    false_positives: int
    nonmembers: int
    resolvable: bool
    tpr_low: float | None
    tpr_high: float | None

    def estimate(self) -> Estimate:
        return Estimate(self.tpr, self.tpr_low, self.tpr_high, self.true_positives, self.members)

    def text(self) -> str:
        if not self.resolvable:
            return f"unresolved ({self.nonmembers} non-members)"
        realised = "—" if self.realised_fpr is None else f"{self.realised_fpr:.4f}"
        return f"{self.estimate().text()} at FPR {realised}"


@dataclass(frozen=True)
class Roc:
    """Points of a ROC curve (at most 200), for the figures."""

    fpr: list[float]
    tpr: list[float]


@dataclass(frozen=True)
class AttackResult:
    """One attack on one model: forget samples (members) against unseen ones.

    Attributes:
        auc: AUC with its bootstrap interval.
        tpr_at: target FPR (``"0.01"``, ``"0.001"``) -> TPR there.
        roc: The ROC curve.
        member_rate: Share of forget samples called members (the Shokri attack only).
    """

    auc: Estimate
    tpr_at: dict[str, TprAtFpr]
    roc: Roc
    member_rate: Estimate | None = None


@dataclass(frozen=True)
class Exposed:
    """The forget samples the per-example attack finds most member-like on the unlearned model,
    with each model's score (higher is more member-like)."""

    ids: list[int]
    labels: list[int]
    scores: dict[str, list[float]]


@dataclass(frozen=True)
class RetainExposure:
    """Retain-set exposure (Hayes et al. 2024): offline LiRA on retain samples against unseen
    samples (``nonmembers``) for each model; unlearning can expose the retained data more
    (``change``: the unlearned model's AUC minus the original's)."""

    nonmembers: str
    lira: dict[str, AttackResult]

    @property
    def change(self) -> float | None:
        after, before = self.lira["unlearned"].auc.value, self.lira["original"].auc.value
        return None if after is None or before is None else after - before


@dataclass
class MembershipEvidence(Evidence):
    """Four attacks on every model.

    Attributes:
        attacks: attack (``shokri``, ``lira``, ``rmia``, ``loss``) -> model role -> its result.
        nonmembers: The unseen samples the forget set is scored against: a split's name, or
            ``unseen_forget_class`` (class requests: the forgotten classes' samples of test and
            of the population that no shadow trained on).
        shadows: Number of shadow models.
        most_exposed_forget: The most exposed forget samples.
        retain_exposure: The same attack on the retained data, before and after unlearning.
    """

    TITLE: ClassVar[str] = "Membership inference"

    attacks: dict[str, dict[str, AttackResult]]
    nonmembers: str
    shadows: int
    most_exposed_forget: Exposed | None = None
    retain_exposure: RetainExposure | None = None

    # ``auc``, ``tpr@0.01``, ``tpr@0.001`` of the judged attack, or of a named one
    # (``rmia.auc``, ``shokri.tpr@0.01``, ...): the policy says which attack a claim is on
    MEASURES: ClassVar[tuple[str, ...]] = (
        *PER_ATTACK,
        *(f"{attack}.{m}" for attack in ATTACKS for m in PER_ATTACK),
    )

    @property
    def judged_attack(self) -> str:
        """The attack claims are judged on: the per-example one when it ran."""
        return "lira" if "lira" in self.attacks else "shokri"

    def gaps(self, measure: str, request: str) -> list[Gap]:
        if measure not in self.MEASURES:
            return super().gaps(measure, request)
        attack = self.judged_attack
        if measure not in PER_ATTACK:
            attack, measure = measure.split(".", 1)
            if attack not in self.attacks:
                raise Unmeasurable(
                    f"this result holds no {ATTACK_NAMES[attack]} attack (it was audited by a "
                    "version without it); run the audit again",
                    "unjudgeable",
                )
        gaps = self._gaps(attack, measure)
        if AS_TRAINED in self.attacks:  # judged on the form the original learned too
            gaps += self._gaps(AS_TRAINED, measure)
        return gaps

    def _gaps(self, attack: str, measure: str) -> list[Gap]:
        table = self.attacks[attack]
        references = [result for role, result in table.items() if is_reference(role)]
        if not references:
            raise NoReference
        unlearned = table["unlearned"]
        if measure == "auc":
            return [
                Gap(
                    f"{ATTACK_NAMES[attack]} AUC on forget vs unseen samples",
                    unlearned.auc,
                    Estimate.pooled([r.auc for r in references]),
                    short="AUC",
                )
            ]
        key = measure.removeprefix("tpr@")
        rate_at = unlearned.tpr_at[key]
        unresolved = ""
        if not rate_at.resolvable:
            unresolved = (
                f"the sample is too small to resolve TPR at {float(key):.1%} FPR: "
                f"{rate_at.nonmembers} unseen samples, at least {round(1 / float(key))} needed "
                f"(one false positive is already more than {float(key):.1%})"
            )
        realised = "" if rate_at.realised_fpr is None else f" (realised {rate_at.realised_fpr:.4f})"
        return [
            Gap(
                f"{ATTACK_NAMES[attack]} TPR at {float(key):.1%} FPR{realised}",
                rate_at.estimate(),
                Estimate.pooled([r.tpr_at[key].estimate() for r in references]),
                unresolved=unresolved,
                short=f"TPR@{float(key):.1%} FPR",
            )
        ]

    def limitations(self) -> list[str]:
        return [
            f"{attack} TPR at {float(key):.1%} FPR ({role}) is unresolved: {rate_at.nonmembers} "
            "non-members cannot resolve that false-positive rate"
            for attack, table in self.attacks.items()
            for role, result in table.items()
            for key, rate_at in result.tpr_at.items()
            if not rate_at.resolvable
        ]

    def tables(self) -> list[Table]:
        rows = [
            [attack, role, result.auc.text(), *(result.tpr_at[f"{f:g}"].text() for f in FPRS)]
            for attack in ("lira", AS_TRAINED, "rmia", "shokri", "loss")
            if attack in self.attacks
            for role in ordered_roles(self.attacks[attack])
            for result in [self.attacks[attack][role]]
        ]
        tables = [
            Table(
                f"Attacks on forget vs {self.nonmembers.replace('_', ' ')} samples "
                f"({self.shadows} shadow models)",
                ["attack", "model", "AUC", "TPR at 1% FPR", "TPR at 0.1% FPR"],
                rows,
            )
        ]
        retained = self.retain_exposure
        if retained is not None:
            change = retained.change
            tables.append(
                Table(
                    "Retain-set exposure: LiRA on retain vs "
                    f"{retained.nonmembers.replace('_', ' ')} samples (shadows as out models); "
                    "change after unlearning " + ("—" if change is None else f"{change:+.3f} AUC"),
                    ["model", "AUC", "TPR at 1% FPR", "TPR at 0.1% FPR"],
                    [
                        [
                            role,
                            retained.lira[role].auc.text(),
                            *(retained.lira[role].tpr_at[f"{f:g}"].text() for f in FPRS),
                        ]
                        for role in ordered_roles(retained.lira)
                    ],
                )
            )
        exposed = self.most_exposed_forget
        if exposed is not None and exposed.ids:
            roles = [r for r in ("unlearned", "original", "reference") if r in exposed.scores]
            tables.append(
                Table(
                    "Most exposed forget samples (LiRA score, higher is more member-like)",
                    ["id", "label", *roles],
                    [
                        [str(exposed.ids[i]), str(exposed.labels[i])]
                        + [f"{exposed.scores[r][i]:.2f}" for r in roles]
                        for i in range(len(exposed.ids))
                    ],
                )
            )
        return tables

    def figures(self) -> dict[str, Callable[[], Any]]:
        return {"roc": self._roc_figure}

    def _roc_figure(self) -> Any:
        """Log-log ROC curves of each attack, with the 1% and 0.1% FPR marks."""
        figure = new_figure(3 * len(self.attacks), 3)
        for i, (attack, per_role) in enumerate(self.attacks.items()):
            axes = figure.add_subplot(1, len(self.attacks), i + 1)
            for role in ordered_roles(per_role):
                result = per_role[role]
                axes.plot(
                    np.maximum(np.asarray(result.roc.fpr, dtype=float), 1e-4),
                    np.maximum(np.asarray(result.roc.tpr, dtype=float), 1e-4),
                    style(role),
                    color=colour(role),
                    label=f"{role} (AUC {result.auc.value or 0.0:.2f})",
                )
            log_roc_axes(axes, attack)
            if i == 0:
                axes.set_ylabel("true-positive rate")
            axes.legend(fontsize="x-small", loc="lower right")
        return figure

    def key_numbers(self) -> dict[str, float | None]:
        lira = self.attacks.get("lira", {}).get("unlearned")
        return {"LiRA AUC": None if lira is None else lira.auc.value}

    @classmethod
    def comparison_figure(cls, evidence: Mapping[str, Self]) -> Any:
        """LiRA ROC curves of every unlearned model, with the original and the reference."""
        curves: dict[str, Roc] = {}
        for name, found in evidence.items():
            lira = found.attacks.get("lira", {})
            if "unlearned" not in lira:
                continue
            curves.setdefault("original", lira["original"].roc)
            if "reference" in lira:
                curves.setdefault("reference", lira["reference"].roc)
            curves[name] = lira["unlearned"].roc
        if not curves:
            return None
        figure = new_figure(5, 4)
        axes = figure.add_subplot()
        for name, curve in curves.items():
            line = "--" if name in ("original", "reference") else "-"
            axes.plot(np.maximum(curve.fpr, 1e-4), np.maximum(curve.tpr, 1e-4), line, label=name)
        log_roc_axes(axes, "per-example attack (LiRA) on the forget set")
        axes.set_ylabel("true-positive rate")
        axes.legend(fontsize="x-small")
        return figure


def _shadow_notes(ctx: AuditContext) -> list[str]:
    """What the reader should know about the shadow bank: a size capped by the population, or
    given shadows that learned the classes a class request forgets."""
    from unlearn_audit.context import shadow_pool

    bank = ctx.shadows
    assert bank is not None
    notes = []
    pool, size, wanted = shadow_pool(ctx.splits, ctx.dataset.labels)
    imitated = "retain" if ctx.is_class_request else "the original's members"
    if not bank.given and size < wanted:
        notes.append(
            f"each shadow model trained on {size} samples, half of the {len(pool)} population "
            f"samples it could draw from, not the {wanted} of {imitated}: they may generalise "
            "differently from the models they stand for (a larger --population-size lifts "
            "the cap)"
        )
    if bank.given and ctx.is_class_request:
        labels = ctx.dataset.labels
        forgotten = sum(
            bool(np.isin(labels[ids], ctx.splits.forget_classes).any()) for ids in bank.in_ids
        )
        if forgotten:
            notes.append(
                f"{forgotten} of the {len(bank.models)} given shadow models trained on the "
                "forgotten classes, so they stand for the original's world, not the retrained "
                "one: the per-example attacks may place even a true retrain far from 0.5 "
                "(train shadows without those classes, as the audit does)"
            )
    return notes


def _reader(
    ctx: AuditContext, split: str, view: View = "clean"
) -> Callable[[LoadedModel], Outputs]:
    """A model's outputs on ``split`` through ``view``."""
    return lambda model: ctx.outputs(model, split, view)


def _roc_points(members: np.ndarray, nonmembers: np.ndarray) -> Roc:
    from unlearn_audit.functional.mia import roc

    fpr, tpr, _ = roc(members, nonmembers)
    keep = np.unique(np.linspace(0, len(fpr) - 1, min(len(fpr), ROC_POINTS)).astype(int))
    return Roc(fpr[keep].tolist(), tpr[keep].tolist())


def _attack_result(members: np.ndarray, nonmembers: np.ndarray, seed: int) -> AttackResult:
    from unlearn_audit.functional.mia import auc, auc_interval, tpr_at_fpr

    value = auc(members, nonmembers)
    low, high = auc_interval(members, nonmembers, n_resamples=BOOTSTRAP_RESAMPLES, seed=seed)
    tpr_at = {}
    for fpr in FPRS:
        found = tpr_at_fpr(members, nonmembers, fpr)
        fields = {f.name: getattr(found, f.name) for f in dataclasses.fields(TprAtFpr)}
        tpr_at[f"{fpr:g}"] = TprAtFpr(**_finite_fields(fields))
    return AttackResult(Estimate.of(value, low, high), tpr_at, _roc_points(members, nonmembers))


def _finite_fields(values: dict[str, Any]) -> dict[str, Any]:
    return {
        k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in values.items()
    }


@dataclass(frozen=True)
class _RoleAttacks:
    """Every attack on one model: attack -> result, its LiRA scores of the forget samples (for
    the most exposed ones) and its retain-set exposure."""

    attacks: dict[str, AttackResult]
    lira_forget: list[float | None]
    retain: AttackResult


def _role_reads(ctx: AuditContext) -> list[tuple[str, View]]:
    """Every (split, view) the check reads."""
    kind = ctx.splits.request.kind
    splits = [
        s for read in MembershipCheck.needs.reads for s in read.splits(ctx.splits.names(), kind)
    ]
    views: tuple[View, ...] = ("clean", "trigger") if ctx.forget_triggered else ("clean",)
    return [(split, view) for split in dict.fromkeys(splits) for view in views]


# fitted Shokri attacks of this process, oldest first (key: see MembershipCheck._fit_shokri)
_SHOKRI_ATTACKS: dict[str, Any] = {}
_SHOKRI_CACHE_SIZE = 4


@register_check
class MembershipCheck(Check):
    name = "membership"
    description = (
        "shadow-model (Shokri), per-example (offline LiRA, offline RMIA) and loss-threshold attacks"
    )
    needs = Needs(
        shadows=True,
        references=True,
        reads=(
            Read("forget"),
            Read("unseen_forget"),
            Read("population"),  # RMIA's population samples z (read by representation too)
            Read("population", models="shadows"),
            Read("forget", models="shadows"),
            Read("unseen_forget", models="shadows"),
            # with a trigger: the forget set as the original learned it, and unseen samples
            # through the same trigger
            *(
                Read(split, "trigger", models)
                for split in ("forget", "unseen_forget")
                for models in ("audited", "shadows")
            ),
            # retain-set exposure: retain against unseen samples, shadows as out models
            Read("retain"),
            Read("unseen_retain"),
            Read("retain", models="shadows"),
            Read("unseen_retain", models="shadows"),
        ),
    )
    evidence = MembershipEvidence

    def run(self, ctx: AuditContext) -> CheckResult:
        bank = ctx.shadows
        assert bank is not None
        nonmember_split, unseen_of = self._nonmembers(ctx)
        attack = self._fit_shokri(ctx)
        roles = ctx.roles()
        per_role = {
            role: self._role_attacks(ctx, role, model, attack, unseen_of) for role, model in roles
        }
        attacks = {
            name: {role: found.attacks[name] for role, found in per_role.items()}
            for name in (*ATTACKS, *([AS_TRAINED] if ctx.forget_triggered else []))
        }
        lira_forget = {
            role: np.array([np.nan if s is None else s for s in found.lira_forget], dtype=float)
            for role, found in per_role.items()
        }
        evidence = MembershipEvidence(
            attacks=attacks,
            nonmembers=nonmember_split,
            shadows=len(bank.models),
            most_exposed_forget=self._exposed(ctx, lira_forget),
            retain_exposure=RetainExposure(
                nonmembers=Read("unseen_retain").splits(
                    ctx.splits.names(), ctx.splits.request.kind
                )[0],
                lira={role: found.retain for role, found in per_role.items()},
            ),
        )
        notes = _shadow_notes(ctx)
        if not any(is_reference(role) for role, _ in roles):
            notes.append("no reference: the attacks have no yardstick")
        return CheckResult(name=self.name, evidence=evidence, notes=notes)

    @staticmethod
    def _nonmembers(ctx: AuditContext) -> tuple[str, Callable[[LoadedModel], Outputs]]:
        """The unseen samples the forget set is scored against, by name, and a model's outputs
        on them: test (random and id requests), or on a class request the test samples of the
        forgotten classes together with the population's samples of those classes that no
        shadow trained on. Audit-trained shadows leave those classes out, so no model that is
        compared trained on them; on digits that is 85 samples instead of 45, and the interval
        of a true retrain's AUC narrows with them."""
        (split,) = Read("unseen_forget").splits(ctx.splits.names(), ctx.splits.request.kind)
        test = _reader(ctx, split)
        bank = ctx.shadows
        assert bank is not None
        population = ctx.splits.population
        extra = np.setdiff1d(
            population[np.isin(ctx.dataset.labels[population], ctx.splits.forget_classes)],
            np.concatenate([np.empty(0, dtype=np.int64), *bank.in_ids]),
        )
        if not ctx.is_class_request or len(extra) == 0:
            return split, test
        return "unseen_forget_class", lambda model: test(model).join(
            ctx.outputs(model, "population").take(extra)
        )

    def _fit_shokri(self, ctx: AuditContext) -> Any:
        """The Shokri attack of the shadow bank, fitted once for the same shadows (their
        outputs on the population: weights, data, ids, layers, code), seed and attack code:
        kept in the store as arrays (it depends on nothing the next audit changes), and in
        this process (the demo audits every method against one bank)."""
        from unlearn_audit._hashing import code_fingerprint, fingerprint_ids, fingerprint_json
        from unlearn_audit.functional import mia

        bank = ctx.shadows
        assert bank is not None
        population = ctx.splits.fingerprints["population"]
        parts = {
            "outputs": [ctx.collector.entry(m, population, "clean") for m in bank.models],
            "members": [fingerprint_ids(ids) for ids in bank.in_ids],
            "num_classes": ctx.dataset.num_classes,
            "seed": ctx.config.seed,
            "code": code_fingerprint(__file__, mia.__file__),
        }
        key = fingerprint_json(parts)
        if key not in _SHOKRI_ATTACKS:
            while len(_SHOKRI_ATTACKS) >= _SHOKRI_CACHE_SIZE:
                _SHOKRI_ATTACKS.pop(next(iter(_SHOKRI_ATTACKS)))
            arrays, _, _ = ctx.store.get_or_compute_arrays(
                "attack_models", parts, lambda: self._fit_shokri_now(ctx).to_arrays()
            )
            _SHOKRI_ATTACKS[key] = mia.ShokriAttack.from_arrays(arrays)
        return _SHOKRI_ATTACKS[key]

    def _fit_shokri_now(self, ctx: AuditContext) -> Any:
        from unlearn_audit.functional.mia import fit_shokri_attack, shokri_features

        bank = ctx.shadows
        assert bank is not None
        rows: dict[str, list[np.ndarray]] = {"in_x": [], "in_y": [], "out_x": [], "out_y": []}
        for model, in_ids in zip(bank.models, bank.in_ids, strict=True):
            pop = ctx.outputs(model, "population")
            member = np.isin(pop.ids, in_ids)
            features = shokri_features(pop.probs, pop.labels)
            rows["in_x"].append(features[member])
            rows["in_y"].append(pop.labels[member])
            rows["out_x"].append(features[~member])
            rows["out_y"].append(pop.labels[~member])
        stacked = {key: np.concatenate(parts) for key, parts in rows.items()}
        return fit_shokri_attack(
            stacked["in_x"],
            stacked["in_y"],
            stacked["out_x"],
            stacked["out_y"],
            num_classes=ctx.dataset.num_classes,
            seed=ctx.config.seed,
        )

    @staticmethod
    def _out_models(ctx: AuditContext, role: str) -> list[LoadedModel]:
        """The models "out" for forget and unseen samples when scoring ``role``: every shadow
        and every other reference; in the null audit a reference also counts the stand-in (a
        retrain too), so that each retrain there is scored against the others, as the
        references of the audit itself are (with two references the yardstick would else be
        scored against the shadows alone, which train on a fraction of the data: on digits
        179 samples each against the references' 902)."""
        bank = ctx.shadows
        assert bank is not None
        others = [r for i, r in enumerate(ctx.references) if reference_role(i) != role]
        if ctx.unlearned_is_retrain and role != "unlearned":
            others.append(ctx.unlearned)
        return [*bank.models, *others]

    @staticmethod
    def _lira_scores(
        model: LoadedModel,
        outs: list[LoadedModel],
        read: Callable[[LoadedModel], Outputs],
        target: int | None = None,
    ) -> np.ndarray:
        """Offline LiRA scores of ``model`` on the samples ``read`` gives each model's outputs
        of, against ``outs``: scored for the true labels, or for class ``target`` on the
        samples of other classes."""
        from unlearn_audit.functional.mia import lira_offline_scores, logit_confidence

        labels = read(model).labels
        keep = np.ones(len(labels), dtype=bool) if target is None else labels != target
        scored = labels[keep] if target is None else np.full(int(keep.sum()), target)
        confidence = [logit_confidence(read(m).logits[keep], scored) for m in (model, *outs)]
        return lira_offline_scores(confidence[0], np.stack(confidence[1:]))

    def _lira(
        self,
        ctx: AuditContext,
        model: LoadedModel,
        role: str,
        unseen_of: Callable[[LoadedModel], Outputs],
    ) -> tuple[np.ndarray, np.ndarray]:
        outs = self._out_models(ctx, role)
        return (
            self._lira_scores(model, outs, _reader(ctx, "forget")),
            self._lira_scores(model, outs, unseen_of),
        )

    def _role_attacks(
        self,
        ctx: AuditContext,
        role: str,
        model: LoadedModel,
        attack: Any,
        unseen_of: Callable[[LoadedModel], Outputs],
    ) -> _RoleAttacks:
        """Every attack on one model: the original's and each reference's are kept in the store
        (see :meth:`AuditContext.kept`: they depend on their outputs, the out models', the
        shadows' members, the request and trigger and the attacks' settings and code)."""
        from unlearn_audit._codec import from_json, to_json
        from unlearn_audit._hashing import code_fingerprint, fingerprint_ids
        from unlearn_audit.functional import mia, stats

        def compute() -> _RoleAttacks:
            from unlearn_audit.functional.mia import loss_threshold_scores, shokri_features

            forget, unseen = ctx.outputs(model, "forget"), unseen_of(model)
            shokri = (
                attack.score(shokri_features(forget.probs, forget.labels), forget.labels),
                attack.score(shokri_features(unseen.probs, unseen.labels), unseen.labels),
            )
            scores = {
                "shokri": shokri,
                "lira": self._lira(ctx, model, role, unseen_of),
                "rmia": self._rmia(ctx, model, role, unseen_of),
                "loss": (
                    loss_threshold_scores(forget.losses),
                    loss_threshold_scores(unseen.losses),
                ),
            }
            if ctx.forget_triggered:
                scores[AS_TRAINED] = self._lira_as_trained(ctx, model, role)
            results = {
                name: _attack_result(members, nonmembers, ctx.config.seed)
                for name, (members, nonmembers) in scores.items()
            }
            results["shokri"] = dataclasses.replace(
                results["shokri"], member_rate=rate(shokri[0] > 0.5)
            )
            return _RoleAttacks(
                attacks=results,
                lira_forget=to_json(scores["lira"][0]),
                retain=self._retain_exposure(ctx, model),
            )

        bank = ctx.shadows
        assert bank is not None
        stored = ctx.kept(
            "membership_results",
            [model, *self._out_models(ctx, role)],
            _role_reads(ctx),
            lambda: to_json(compute()),
            shadow_members=[fingerprint_ids(ids) for ids in bank.in_ids],
            forget_classes=[int(c) for c in ctx.splits.forget_classes],
            trigger=ctx.trigger.to_dict() if ctx.forget_triggered and ctx.trigger else None,
            settings=[BOOTSTRAP_RESAMPLES, list(FPRS), ROC_POINTS],
            code=code_fingerprint(__file__, mia.__file__, stats.__file__),
        )
        return from_json(_RoleAttacks, stored)  # type: ignore[no-any-return]

    def _retain_exposure(self, ctx: AuditContext, model: LoadedModel) -> AttackResult:
        """Offline LiRA of ``model`` on retain against unseen samples of the same classes, with
        the shadows as out models (the references trained on retain: they are "in")."""
        bank = ctx.shadows
        assert bank is not None
        (unseen,) = Read("unseen_retain").splits(ctx.splits.names(), ctx.splits.request.kind)
        return _attack_result(
            self._lira_scores(model, bank.models, _reader(ctx, "retain")),
            self._lira_scores(model, bank.models, _reader(ctx, unseen)),
            ctx.config.seed,
        )

    def _lira_as_trained(
        self, ctx: AuditContext, model: LoadedModel, role: str
    ) -> tuple[np.ndarray, np.ndarray]:
        """Offline LiRA on the triggered forget samples scored for the trigger's target (how
        the original learned them) against triggered unseen samples (test, or its samples of
        the forgotten classes), both without the samples whose true class is the target; out
        models as for :meth:`_lira`."""
        assert ctx.trigger is not None
        outs, target = self._out_models(ctx, role), ctx.trigger.target
        (unseen,) = Read("unseen_forget").splits(ctx.splits.names(), ctx.splits.request.kind)
        return (
            self._lira_scores(model, outs, _reader(ctx, "forget", "trigger"), target),
            self._lira_scores(model, outs, _reader(ctx, unseen, "trigger"), target),
        )

    def _rmia(
        self,
        ctx: AuditContext,
        model: LoadedModel,
        role: str,
        unseen_of: Callable[[LoadedModel], Outputs],
    ) -> tuple[np.ndarray, np.ndarray]:
        """Offline RMIA on the true-class probabilities: forget and unseen samples against the
        population, each sample's p(.) from the models that never trained on it (the shadows
        and the other references; a shadow is left out for the population samples it
        trained on, and a sample every shadow trained on, with no other out model, is left
        out of z)."""
        from unlearn_audit.functional.mia import rmia_offline_scores

        bank = ctx.shadows
        assert bank is not None
        outs = self._out_models(ctx, role)

        def true_class(m: LoadedModel, read: Callable[[LoadedModel], Outputs]) -> np.ndarray:
            out = read(m)
            return out.probs[np.arange(len(out.labels)), out.labels]

        population = ctx.outputs(model, "population")
        in_population = _reader(ctx, "population")
        out_z = np.stack([true_class(m, in_population) for m in outs])
        for k, in_ids in enumerate(bank.in_ids):  # shadows are "in" for their own halves
            out_z[k, np.isin(population.ids, in_ids)] = np.nan
        # population samples every out model trained on have no p(z): not part of z
        seen = np.isfinite(out_z).any(axis=0)
        target_z, out_z = true_class(model, in_population)[seen], out_z[:, seen]
        result = []
        for read in (_reader(ctx, "forget"), unseen_of):
            out_x = np.stack([true_class(m, read) for m in outs])
            result.append(rmia_offline_scores(true_class(model, read), out_x, target_z, out_z))
        return result[0], result[1]

    def _exposed(self, ctx: AuditContext, lira_forget: dict[str, np.ndarray]) -> Exposed:
        scores = lira_forget["unlearned"]
        order = np.argsort(-scores)
        limit = len(order) if ctx.config.per_sample else min(EXPOSED, len(order))
        top = order[:limit]
        roles = [r for r in ("unlearned", "original", "reference") if r in lira_forget]
        return Exposed(
            ids=ctx.splits.forget[top].tolist(),
            labels=ctx.dataset.labels[ctx.splits.forget[top]].tolist(),
            scores={role: lira_forget[role][top].tolist() for role in roles},
        )
