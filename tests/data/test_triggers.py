from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from unlearn_audit.data.datasets import Dataset
from unlearn_audit.data.splits import ForgetRequest, make_splits
from unlearn_audit.data.triggers import Trigger, load_trigger
from unlearn_audit.errors import ConfigError
from unlearn_audit.models.checkpoints import load_checkpoint, save_checkpoint
from unlearn_audit.store import Store
from unlearn_audit.train import default_recipe, train_classifier


def test_patch_is_placed_in_nchw() -> None:
    trigger = Trigger(kind="patch", size=(2, 3), row=1, col=4, target=0, value=1.0)
    x = torch.zeros(2, 3, 8, 8)
    out = trigger.apply(x)
    assert torch.equal(x, torch.zeros(2, 3, 8, 8)), "the input is not modified"
    expected = torch.zeros(8, 8)
    expected[1:3, 4:7] = 1.0
    for image in out:
        for channel in image:  # every channel, rows then columns (not NHWC)
            assert torch.equal(channel, expected)
    assert np.array_equal(trigger.mask((3, 8, 8)), expected.numpy().astype(bool))


def test_blend_mixes_with_alpha_and_patterns() -> None:
    trigger = Trigger(
        kind="blend", size=(2, 2), row=0, col=0, target=1, pattern="checkerboard", alpha=0.25
    )
    x = torch.full((1, 1, 4, 4), 0.8)
    out = trigger.apply(x)
    assert out[0, 0, 0, 0] == pytest.approx(0.6)  # 0.75 * 0.8 + 0.25 * 0
    assert out[0, 0, 0, 1] == pytest.approx(0.85)  # 0.75 * 0.8 + 0.25 * 1
    assert out[0, 0, 3, 3] == pytest.approx(0.8)
    per_channel = Trigger(
        kind="patch", size=1, row=0, col=0, target=0, pattern=[[[0.1]], [[0.2]], [[0.3]]]
    )
    assert per_channel.apply(torch.zeros(1, 3, 2, 2))[0, :, 0, 0].tolist() == pytest.approx(
        [0.1, 0.2, 0.3]
    )


def test_json_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    path.write_text(
        json.dumps(
            {
                "kind": "blend",
                "size": 3,
                "row": 1,
                "col": 1,
                "pattern": [[0, 1, 0], [1, 0, 1], [0, 1, 0]],
                "target": 2,
            }
        )
    )
    trigger = load_trigger(path)
    assert trigger.alpha == 0.2 and trigger.size == (3, 3)
    assert Trigger.from_dict(json.loads(json.dumps(trigger.to_dict()))) == trigger


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({"kind": "star", "size": 2, "row": 0, "col": 0, "target": 0}, "trigger kind"),
        ({"kind": "patch", "size": 0, "row": 0, "col": 0, "target": 0}, "trigger size"),
        ({"kind": "patch", "size": 2, "row": -1, "col": 0, "target": 0}, "trigger row"),
        ({"kind": "patch", "size": 2, "row": 0, "col": 0, "target": 0, "value": 2}, "value"),
        ({"kind": "patch", "size": 2, "row": 0, "col": 0, "target": 0, "alpha": 0.5}, "alpha"),
        ({"kind": "patch", "size": 2, "row": 0, "col": 0, "target": 0, "pattern": [[1]]}, "shape"),
        ({"kind": "patch", "size": 2, "row": 0, "col": 0, "target": 0, "colour": 1}, "unknown"),
        ({"kind": "patch", "size": 2, "row": 0}, "missing"),
    ],
)
def test_bad_triggers(data: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        Trigger.from_dict(data)


def test_trigger_must_fit_the_images(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="outside the 8x8 images"):
        Trigger(kind="patch", size=3, row=6, col=0, target=0).check_fits((1, 8, 8), 10)
    with pytest.raises(ConfigError, match="not a class"):
        Trigger(kind="patch", size=3, row=0, col=0, target=10).check_fits((1, 8, 8), 10)
    with pytest.raises(ConfigError, match="3 channels but the images have 1"):
        Trigger(
            kind="patch", size=1, row=0, col=0, target=0, pattern=[[[0.1]], [[0.2]], [[0.3]]]
        ).check_fits((1, 8, 8), 10)
    with pytest.raises(ConfigError, match="does not exist"):
        load_trigger(tmp_path / "none.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_trigger(tmp_path / "bad.json")


def test_backdoor_training_plants_the_trigger(
    digits: Dataset, tmp_path: Path, session_store: Store
) -> None:
    # the models of the audit's backdoor test and the session's original (the store's)
    trigger = Trigger(kind="patch", size=2, row=0, col=0, target=0)
    splits = make_splits(digits, ForgetRequest.random(0.1, seed=1))
    recipe = default_recipe("digits", "small-cnn")
    backdoored = train_classifier(
        digits,
        arch="small-cnn",
        recipe=recipe,
        trigger=trigger,
        poison_ids=splits.forget,
        store=session_store,
        progress=False,
    )
    clean = train_classifier(
        digits, arch="small-cnn", recipe=recipe, store=session_store, progress=False
    )
    others = splits.test[digits.labels[splits.test] != 0]
    x, _ = digits.load(others)
    with torch.no_grad():
        hit_backdoored = (backdoored.module(trigger.apply(x)).argmax(1) == 0).float().mean()
        hit_clean = (clean.module(trigger.apply(x)).argmax(1) == 0).float().mean()
    assert hit_backdoored > 0.9 and hit_clean < 0.2
    info = load_checkpoint(save_checkpoint(backdoored, tmp_path / "bd.safetensors")).info
    assert Trigger.from_dict(info.extra["trigger"]) == trigger
    assert info.extra["poisoned"]["count"] == len(splits.forget)


def test_backdoor_needs_member_poison_ids(digits: Dataset) -> None:
    trigger = Trigger(kind="patch", size=2, row=0, col=0, target=0)
    with pytest.raises(ConfigError, match="needs the samples"):
        train_classifier(digits, arch="mlp", trigger=trigger, progress=False)
    with pytest.raises(ConfigError, match="must be members"):
        train_classifier(
            digits, arch="mlp", trigger=trigger, poison_ids=digits.heldout_ids[:5], progress=False
        )
