"""Every shipped checkpoint loads, is the file its card describes, and still earns its model
card on scenes it never saw; a damaged copy is refused before it is read."""

import json
import shutil

import pytest
import torch

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


@pytest.mark.parametrize("name", SHIPPED)
def test_every_card_records_the_sha256_of_its_checkpoint(name):
    card = checkpoints.read_card(name)
    assert card["sha256"] == checkpoints.file_sha256(checkpoints.checkpoint_path(name))
    assert card["file_bytes"] == checkpoints.checkpoint_path(name).stat().st_size


def copy_of(name, folder):
    """A copy of shipped checkpoint `name` and its card in `folder`; returns the .pt path."""
    for path in (checkpoints.checkpoint_path(name), checkpoints.card_path(name)):
        shutil.copy2(path, folder / path.name)
    return checkpoints.checkpoint_path(name, folder)


def flip(path, count=64):
    """Invert `count` bytes in the middle of the file at `path` (its size stays the same)."""
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle:middle + count] = bytes(b ^ 0xFF for b in data[middle:middle + count])
    path.write_bytes(bytes(data))


def test_a_copy_with_64_flipped_bytes_is_refused_with_a_sentence(tmp_path):
    path = copy_of("fcn8s", tmp_path)
    flip(path)
    assert "state_dict" in torch.load(path, weights_only=True)  # torch alone would not notice
    with pytest.raises(checkpoints.CheckpointError) as error:
        seg.models.load("fcn8s", device="cpu", weights_dir=tmp_path)
    message = str(error.value)
    assert message.startswith(f"The checkpoint {path} is damaged: its bytes changed after it "
                              "was made")
    assert "python -m seg train fcn8s" in message and len(message) < 400


def test_a_damaged_shipped_checkpoint_would_be_restored_from_git():
    advice = checkpoints._how_to_restore(checkpoints.checkpoint_path("segnet"))
    assert "`git checkout -- weights/segnet.pt weights/segnet.json`" in advice


def test_an_intact_copy_loads_and_is_hashed_once_per_process(tmp_path):
    path = copy_of("renet", tmp_path)
    first = seg.models.load("renet", device="cpu", weights_dir=tmp_path)
    second = seg.models.load("renet", device="cpu", weights_dir=tmp_path)
    assert first.source == second.source == "seglab"
    assert checkpoints.HASHED[str(path.resolve())] == 1
    shutil.copy2(checkpoints.checkpoint_path("renet"), path)  # restored: a new version
    path.touch()
    seg.models.load("renet", device="cpu", weights_dir=tmp_path)
    assert checkpoints.HASHED[str(path.resolve())] == 2


def test_a_checkpoint_without_a_recorded_hash_is_refused(tmp_path):
    path = copy_of("renet", tmp_path)
    card = json.loads((tmp_path / "renet.json").read_text())
    del card["sha256"]
    (tmp_path / "renet.json").write_text(json.dumps(card))
    with pytest.raises(checkpoints.CheckpointError, match=f"{path} cannot be checked.*SHA-256"):
        seg.models.load("renet", device="cpu", weights_dir=tmp_path)


def test_all_checkpoints_together_stay_under_30_mb():
    assert sum(p.stat().st_size for p in checkpoints.WEIGHTS_DIR.glob("*.pt")) <= 30_000_000


@pytest.mark.parametrize("name", SHIPPED)
def test_checkpoint_reaches_90_percent_of_its_card_on_fresh_scenes(name):
    segmenter = seg.models.load(name, device="cpu")
    assert segmenter.source == "seglab"
    stated = segmenter.card["evaluation"]["miou"]
    measured = evaluate(segmenter, num_scenes=FRESH_COUNT, first=FRESH_FIRST).miou
    assert measured >= 0.9 * stated, f"{name}: {measured:.3f} on fresh scenes vs card {stated:.3f}"
