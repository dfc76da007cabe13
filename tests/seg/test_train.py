"""Training, checkpoints and the CLI: real (tiny) runs, no mocks."""

import json

import numpy as np
import pytest
import torch

import seg
from seg import train
from seg.__main__ import main
from seg.models import checkpoints
from seg.models.segmenter import to_tensor


def test_a_short_segmentation_run_lowers_the_loss():
    torch.manual_seed(0)
    net = seg.models.build("deeplab_v1_largefov")
    batches = train.segmentation_batches(batch_size=4, crop=64, scene_size=96, pool_size=8)
    losses = train.fit(net, batches, steps=40, lr=3e-3, device="cpu")
    assert len(losses) == 40
    assert np.mean(losses[-8:]) < 0.8 * np.mean(losses[:8])


def test_a_short_classification_run_lowers_the_loss_and_the_callback_sees_every_step():
    x, y = train.patch_dataset(128, patch=32, scene_size=96)
    assert x.shape == (128, 3, 32, 32) and y.shape == (128,)
    net = seg.models.build("alexnet_small", in_size=32)
    seen = []
    losses = train.fit(net, train.tensor_batches(x, y, 32), steps=30, lr=2e-3, device="cpu",
                       callback=lambda info: seen.append(info.step))
    assert seen == list(range(1, 31))
    assert np.mean(losses[-5:]) < np.mean(losses[:5])
    assert 0 <= train.accuracy(net, x, y) <= 1


def test_callback_can_stop_training_early():
    x, y = train.patch_dataset(64, patch=32, scene_size=96)
    net = seg.models.build("alexnet_small", in_size=32)
    losses = train.fit(net, train.tensor_batches(x, y, 16), steps=50, device="cpu",
                       callback=lambda info: info.step == 5)
    assert len(losses) == 5


def test_training_and_evaluation_seeds_never_meet():
    train_seeds = {seg.synthetic.train_seed(i) for i in range(0, 900_000, 997)}
    eval_seeds = {seg.synthetic.eval_seed(i) for i in range(10_000)}
    assert not train_seeds & eval_seeds


def test_checkpoint_round_trip_keeps_the_predictions(tmp_path):
    net = seg.models.build("renet").eval()
    checkpoints.save_checkpoint(net, "renet", {}, {"note": "test"}, tmp_path)
    card = json.loads((tmp_path / "renet.json").read_text())
    assert card["file_bytes"] == (tmp_path / "renet.pt").stat().st_size
    loaded = seg.models.load("renet", device="cpu", weights_dir=tmp_path)
    assert loaded.source == "seglab" and loaded.card["note"] == "test"
    image = seg.synthetic.scene(0, height=64, width=64).image
    half = seg.models.Segmenter("renet", net.half().float(), seg.synthetic.CLASSES, "seglab")
    assert torch.allclose(loaded.predict(image).probs, half.predict(image).probs, atol=1e-5)


def test_a_corrupt_checkpoint_gives_a_clear_error_naming_the_file(tmp_path):
    path = tmp_path / "fcn8s.pt"
    net = seg.models.build("fcn8s")
    checkpoints.save_checkpoint(net, "fcn8s", {}, {}, tmp_path)
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(checkpoints.CheckpointError, match=r"fcn8s\.pt.*damaged"):
        seg.models.load("fcn8s", device="cpu", weights_dir=tmp_path)


def test_a_mismatched_checkpoint_names_the_file_and_one_tensor(tmp_path):
    checkpoints.save_checkpoint(seg.models.build("fcn32s"), "fcn8s", {}, {}, tmp_path)
    with pytest.raises(checkpoints.CheckpointError, match=r"fcn8s\.pt does not fit") as error:
        seg.models.load("fcn8s", device="cpu", weights_dir=tmp_path)
    assert len(str(error.value)) < 400, "one sentence, not a stack of size messages"


def test_a_file_that_is_not_a_checkpoint_is_refused(tmp_path):
    torch.save({"weights": torch.zeros(3)}, tmp_path / "segnet.pt")
    with pytest.raises(checkpoints.CheckpointError, match="not a SegLab checkpoint"):
        seg.models.load("segnet", device="cpu", weights_dir=tmp_path)


def test_cli_train_then_eval_end_to_end(tmp_path, capsys):
    assert main(["train", "renet", "--steps", "3", "--crop", "64", "--batch-size", "2",
                 "--eval-scenes", "2", "--out", str(tmp_path), "--quiet"]) == 0
    card = json.loads((tmp_path / "renet.json").read_text())
    assert card["training"]["steps"] == 3
    assert card["command"].startswith("python -m seg train renet --steps 3")
    assert set(card["evaluation"]["iou"]) == set(seg.synthetic.CLASSES)
    assert main(["eval", "renet", "--scenes", "2", "--weights", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "mIoU" in out and "model card" in out and "(+0.000)" in out


def test_cli_list_and_weights_status(capsys, tmp_path):
    assert main(["list"]) == 0
    assert "deeplab_v1_largefov" in capsys.readouterr().out
    previous = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path))
    try:
        assert main(["weights", "status"]) == 0
    finally:
        torch.hub.set_dir(previous)
    out = capsys.readouterr().out
    assert "fcn_resnet50" in out and str(tmp_path) in out


@pytest.mark.parametrize("steps", [1, 2, 3, 10, 11])
def test_one_cycle_schedule_handles_short_runs(steps):
    x, y = torch.randn(8, 3, 8, 8), torch.randint(0, 2, (8,))
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(192, 2))
    seen = []
    losses = train.fit(net, train.tensor_batches(x, y, 4), steps=steps, lr=1e-2, device="cpu",
                       callback=lambda info: seen.append(info.lr))
    assert len(losses) == steps and all(np.isfinite(losses))
    assert max(seen) <= 1e-2 + 1e-12


def test_inputs_are_contiguous_nchw_so_onednn_backward_does_not_corrupt_the_heap():
    # A channels-last input made the backward of a 4 → 8 channel 1×1 stride-2 convolution
    # corrupt the heap in oneDNN on an AMD EPYC (torch 2.14 and 2.15): the process aborted.
    images = np.random.default_rng(0).integers(0, 256, (2, 8, 8, 3), dtype=np.uint8)
    x = train.normalise(images)
    single = to_tensor(images[0])
    assert x.is_contiguous() and single.is_contiguous()
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1),
                              torch.nn.Conv2d(4, 8, 1, stride=2, bias=False))
    for batch in (x, single, x.requires_grad_()):
        for _ in range(3):
            net(batch).sum().backward()
    assert net[1].weight.grad.isfinite().all()


def test_cli_ceiling_prints_a_row_per_stride(capsys):
    assert main(["ceiling", "--strides", "32", "8", "--scenes", "2", "--size", "64"]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert rows[0].split()[0] == "stride" and rows[0].split()[-1] == "mIoU"
    coarse, fine = float(rows[1].split()[-1]), float(rows[2].split()[-1])
    assert rows[1].split()[0] == "32" and rows[2].split()[0] == "8"
    assert 0 < coarse < fine <= 1
