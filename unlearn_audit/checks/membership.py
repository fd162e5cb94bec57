"""membership (seed 004; Shokri et al. 2017; Carlini et al. 2022): can an attacker tell the
forget set apart from samples the model never saw?

Three attacks, all fitted on the same shadow bank (models of the original's architecture and
recipe trained on random halves of the population):

- ``shokri``: one attack classifier per class on the sorted softmax vector and the true-class
  probability, trained on shadow in/out outputs; its member rate on forget is what the seed
  papers call "MIA accuracy".
- ``lira``: offline per-example attack. Every shadow and every (other) reference is "out" for
  every forget and test sample, so each sample's out-distribution of the logit-scaled
  confidence is fitted and the audited model is scored by how far above it it sits.
- ``loss``: a plain loss threshold, the floor any attack must beat.

Each attack scores forget samples (members of the original) against unseen samples of the same
classes (test; the forget-class part of test for class requests) for the original, the
unlearned model and the references, with AUC (bootstrap interval), TPR at 1% and 0.1% FPR
(realised FPR, counts, and "unresolved" when the sample is too small for the rate).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from unlearn_audit.checks.base import (
    Check,
    CheckResult,
    Needs,
    interval,
    rate,
    reference_role,
    register_check,
)
from unlearn_audit.functional.mia import (
    auc,
    fit_shokri_attack,
    lira_offline_scores,
    logit_confidence,
    loss_threshold_scores,
    roc,
    shokri_features,
    tpr_at_fpr,
)
from unlearn_audit.functional.stats import bootstrap_interval

if TYPE_CHECKING:
    from unlearn_audit.context import AuditContext
    from unlearn_audit.models.checkpoints import LoadedModel

ATTACKS = ("shokri", "lira", "loss")
FPRS = {"tpr_at_1pct": 0.01, "tpr_at_0.1pct": 0.001}
BOOTSTRAP_RESAMPLES = 400
ROC_POINTS = 200
EXPOSED = 10


def _roc_points(members: np.ndarray, nonmembers: np.ndarray) -> dict[str, list[float]]:
    fpr, tpr, _ = roc(members, nonmembers)
    keep = np.unique(np.linspace(0, len(fpr) - 1, min(len(fpr), ROC_POINTS)).astype(int))
    return {"fpr": fpr[keep].tolist(), "tpr": tpr[keep].tolist()}


def _attack_summary(members: np.ndarray, nonmembers: np.ndarray, seed: int) -> dict[str, Any]:
    value = auc(members, nonmembers)
    low, high = bootstrap_interval(
        auc, members, nonmembers, n_resamples=BOOTSTRAP_RESAMPLES, seed=seed
    )
    summary: dict[str, Any] = {"auc": interval(value, low, high)}
    for key, fpr in FPRS.items():
        summary[key] = tpr_at_fpr(members, nonmembers, fpr).to_dict()
    return summary


@register_check
class MembershipCheck(Check):
    name = "membership"
    description = "shadow-model (Shokri), per-example (offline LiRA) and loss-threshold attacks"
    needs = Needs(shadows=True, references=True)

    def run(self, ctx: AuditContext) -> CheckResult:
        bank = ctx.shadows
        assert bank is not None
        nonmember_split = "test_forget_class" if ctx.is_class_request else "test"
        attack = self._fit_shokri(ctx)
        roles = ctx.roles()
        metrics: dict[str, Any] = {attack_name: {} for attack_name in ATTACKS}
        figures: dict[str, Any] = {"roc": {attack_name: {} for attack_name in ATTACKS}}
        lira_forget: dict[str, np.ndarray] = {}
        for role, model in roles:
            forget, unseen = ctx.outputs(model, "forget"), ctx.outputs(model, nonmember_split)
            scores = {
                "shokri": (
                    attack.score(shokri_features(forget.probs, forget.labels), forget.labels),
                    attack.score(shokri_features(unseen.probs, unseen.labels), unseen.labels),
                ),
                "lira": self._lira(ctx, model, role, nonmember_split),
                "loss": (
                    loss_threshold_scores(forget.losses),
                    loss_threshold_scores(unseen.losses),
                ),
            }
            lira_forget[role] = scores["lira"][0]
            for name, (members, nonmembers) in scores.items():
                metrics[name][role] = _attack_summary(members, nonmembers, ctx.config.seed)
                figures["roc"][name][role] = _roc_points(members, nonmembers)
            metrics["shokri"][role]["member_rate"] = rate(scores["shokri"][0] > 0.5)
        refs = [role for role, _ in roles if role.startswith("reference")]
        metrics["reference_auc"] = {
            name: float(np.mean([metrics[name][r]["auc"]["value"] for r in refs])) if refs else None
            for name in ATTACKS
        }
        metrics["nonmembers"] = nonmember_split
        metrics["shadows"] = len(bank.models)
        per_sample = self._exposed(ctx, lira_forget)
        notes = []
        if not refs:
            notes.append("no reference: the attacks have no yardstick")
        return CheckResult(
            name=self.name, metrics=metrics, per_sample=per_sample, figures=figures, notes=notes
        )

    def _fit_shokri(self, ctx: AuditContext) -> Any:
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

    def _lira(
        self, ctx: AuditContext, model: LoadedModel, role: str, nonmember_split: str
    ) -> tuple[np.ndarray, np.ndarray]:
        bank = ctx.shadows
        assert bank is not None
        # every shadow and every other reference is "out" for forget and unseen samples
        outs = [
            *bank.models,
            *(r for i, r in enumerate(ctx.references) if reference_role(i) != role),
        ]
        result = []
        for split in ("forget", nonmember_split):
            target = ctx.outputs(model, split)
            out_conf = np.stack(
                [logit_confidence(ctx.outputs(m, split).logits, target.labels) for m in outs]
            )
            result.append(
                lira_offline_scores(logit_confidence(target.logits, target.labels), out_conf)
            )
        return result[0], result[1]

    def _exposed(self, ctx: AuditContext, lira_forget: dict[str, np.ndarray]) -> dict[str, Any]:
        scores = lira_forget["unlearned"]
        order = np.argsort(-scores)
        limit = len(order) if ctx.config.per_sample else min(EXPOSED, len(order))
        top = order[:limit]
        exposed = {
            "ids": ctx.splits.forget[top].tolist(),
            "labels": ctx.dataset.labels[ctx.splits.forget[top]].tolist(),
            "unlearned": scores[top].tolist(),
            "original": lira_forget["original"][top].tolist(),
        }
        if "reference" in lira_forget:
            exposed["reference"] = lira_forget["reference"][top].tolist()
        return {"most_exposed_forget": exposed}
