"""Every shipped checkpoint loads and still earns its model card on scenes it never saw."""

import json

import pytest

import seg
from seg.models import checkpoints
from seg.train import evaluate

SHIPPED = sorted(p.stem for p in checkpoints.WEIGHTS_DIR.glob("*.pt"))
#: Held-out scenes the cards did not use (cards: eval_seed(0..255)).
FRESH_FIRST, FRESH_COUNT = 5_000, 32


def test_every_seglab_segmenter_has_a_checkpoint_and_a_card():
    seglab = seg.models.list_models(task="segmentation", family="seglab")
    assert set(SHIPPED) <= set(seglab)
    for name in SHIPPED:
        card = json.loads(checkpoints.card_path(name).read_text())
        assert card["command"].startswith(f"python -m seg train {name}")
        assert card["file_bytes"] <= 5_000_000
        assert set(card["evaluation"]["iou"]) == set(seg.synthetic.CLASSES)


def test_all_checkpoints_together_stay_under_30_mb():
    assert sum(p.stat().st_size for p in checkpoints.WEIGHTS_DIR.glob("*.pt")) <= 30_000_000


@pytest.mark.parametrize("name", SHIPPED)
def test_checkpoint_reaches_90_percent_of_its_card_on_fresh_scenes(name):
    segmenter = seg.models.load(name, device="cpu")
    assert segmenter.source == "seglab"
    stated = segmenter.card["evaluation"]["miou"]
    measured = evaluate(segmenter, num_scenes=FRESH_COUNT, first=FRESH_FIRST).miou
    assert measured >= 0.9 * stated, f"{name}: {measured:.3f} on fresh scenes vs card {stated:.3f}"
