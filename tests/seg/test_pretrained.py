"""seg.models.pretrained without the network: a temporary torch.hub cache holding real state
dicts of freshly initialised torchvision networks, and downloads from file:// URLs.

A cached file must hash to the prefix in its name, and random weights cannot hash to
torchvision's: `stand_in` saves them under a name carrying their own prefix and points the
network's weights entry at that name, so the real loader and the real check run on them."""

import hashlib
import shutil
import time

import pytest
import torch
import torch.hub
import torchvision
from torchvision.models import segmentation
from torchvision.models._api import Weights, WeightsEnum

import seg
import seg.models.pretrained as pretrained
from seg.models import checkpoints
from seg.models.pretrained import WeightsUnavailable


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """An empty torch.hub cache under TORCH_HOME=tmp_path, deleted afterwards (files are big)."""
    monkeypatch.setattr(torch.hub, "_hub_dir", None)  # forget any earlier torch.hub.set_dir
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    yield tmp_path / "hub" / "checkpoints"
    shutil.rmtree(tmp_path, ignore_errors=True)


def fresh(name):
    """A randomly initialised torchvision network of the same architecture as `name`'s weights."""
    torch.manual_seed(0)
    builder, weights = {**pretrained.TORCHVISION_SEGMENTERS, **pretrained.TORCHVISION_CLASSIFIERS}[name]
    kwargs = {"weights": None, "num_classes": len(weights.meta["categories"])}
    if name in pretrained.TORCHVISION_SEGMENTERS:
        kwargs["weights_backbone"] = None
        kwargs["aux_loss"] = name != "lraspp_mobilenet_v3_large"
    return builder(**kwargs).eval()


def stand_in(name, state_dict, monkeypatch, folder=None, *,
             base="https://download.pytorch.org/models/"):
    """Save `state_dict` as `<name>-<first 8 hex of its SHA-256>.pth` in `folder` (default: the
    torch.hub cache) and make it `name`'s published file for this test: its weights entry keeps
    torchvision's classes, preprocessing and metrics, with the URL `base` + that file name (a
    `file://` folder makes `download` fetch it from there). Returns (path, sha256)."""
    folder = folder or pretrained.cache_path(name).parent
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / f"{name}.partial"
    torch.save(state_dict, partial)
    digest = hashlib.sha256(partial.read_bytes()).hexdigest()
    path = partial.rename(folder / f"{name}-{digest[:8]}.pth")
    table = (pretrained.TORCHVISION_SEGMENTERS if name in pretrained.TORCHVISION_SEGMENTERS
             else pretrained.TORCHVISION_CLASSIFIERS)
    builder, published = table[name]
    weights = WeightsEnum(f"StandIn_{name}", {"V1": Weights(
        url=f"{base}{path.name}",
        transforms=published.transforms, meta=published.meta)}).V1
    monkeypatch.setitem(table, name, (builder, weights))
    return path, digest


def flip(path, count=64):
    """Invert `count` bytes in the middle of the file at `path` (its size stays the same)."""
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle:middle + count] = bytes(b ^ 0xFF for b in data[middle:middle + count])
    path.write_bytes(bytes(data))


def test_tables_name_the_torchvision_weights():
    assert set(pretrained.TORCHVISION_SEGMENTERS) == {
        "fcn_resnet50", "deeplabv3_resnet50", "deeplabv3_mobilenet_v3_large",
        "lraspp_mobilenet_v3_large"}
    assert set(pretrained.TORCHVISION_CLASSIFIERS) == {"alexnet", "vgg16", "resnet18", "resnet50"}
    builder, weights = pretrained.TORCHVISION_SEGMENTERS["fcn_resnet50"]
    assert builder is segmentation.fcn_resnet50
    assert weights is segmentation.FCN_ResNet50_Weights.COCO_WITH_VOC_LABELS_V1
    assert pretrained.TORCHVISION_CLASSIFIERS["alexnet"][1] is \
        torchvision.models.AlexNet_Weights.IMAGENET1K_V1


def test_cache_path_follows_torch_home_and_set_dir(hub, tmp_path, monkeypatch):
    assert pretrained.cache_path("alexnet") == hub / "alexnet-owt-7be5be79.pth"
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    torch.hub.set_dir(tmp_path / "elsewhere")
    assert pretrained.cache_path("lraspp_mobilenet_v3_large") == (
        tmp_path / "elsewhere" / "checkpoints" / "lraspp_mobilenet_v3_large-d234d4ea.pth")


def test_nothing_cached_means_build_refuses_with_a_sentence(hub):
    assert not pretrained.is_cached("lraspp_mobilenet_v3_large")
    with pytest.raises(WeightsUnavailable, match="not on this computer.*python -m seg weights"):
        pretrained.build("lraspp_mobilenet_v3_large")
    rows = pretrained.status()
    assert [row.name for row in rows][:4] == list(pretrained.TORCHVISION_SEGMENTERS)
    assert len(rows) == 8 and not any(row.cached for row in rows)
    assert all(row.size_mb is None and row.path.parent == hub for row in rows)
    assert not hub.exists()  # asking never creates anything


def test_unknown_name_lists_the_choices():
    with pytest.raises(ValueError, match="choose one of alexnet, deeplabv3_mobilenet_v3_large"):
        pretrained.cache_path("fcn_resnet101")


@pytest.mark.parametrize("name", ["lraspp_mobilenet_v3_large", "deeplabv3_mobilenet_v3_large",
                                  "resnet18"])
def test_build_loads_the_cached_file_like_torchvision(hub, monkeypatch, name):
    reference = fresh(name)
    stand_in(name, reference.state_dict(), monkeypatch)
    assert pretrained.is_cached(name)

    module, weights = pretrained.build(name)
    assert weights is {**pretrained.TORCHVISION_SEGMENTERS,
                       **pretrained.TORCHVISION_CLASSIFIERS}[name][1]
    assert not module.training
    image = torch.rand(1, 3, 64, 64)  # (N, 3, H, W)
    with torch.no_grad():
        got, want = module(image), reference(image)
    if isinstance(want, dict):
        assert got.keys() == want.keys()
        got, want = got["out"], want["out"]
        assert got.shape == (1, 21, 64, 64)
    torch.testing.assert_close(got, want, rtol=0, atol=0)

    (row,) = [row for row in pretrained.status() if row.name == name]
    assert row.cached and row.size_mb == pytest.approx(
        pretrained.cache_path(name).stat().st_size / 2**20)


def test_a_cached_file_with_64_flipped_bytes_is_refused_with_a_sentence(hub, monkeypatch):
    name = "lraspp_mobilenet_v3_large"
    reference = fresh(name)
    path, _ = stand_in(name, reference.state_dict(), monkeypatch)
    intact = path.read_bytes()
    flip(path)
    assert torch.load(path, weights_only=True).keys() == reference.state_dict().keys()  # silent
    with pytest.raises(WeightsUnavailable) as error:
        pretrained.build(name)
    message = str(error.value)
    assert message.startswith(f"The weights file {path} is damaged: its bytes changed after "
                              "it was downloaded")
    assert f"python -m seg weights download {name}" in message
    with pytest.raises(WeightsUnavailable, match="damaged"):  # refused by seg.models too
        seg.models.load(name, device="cpu")

    path.write_bytes(intact)  # a good copy again: a new version of the file, checked again
    module, _ = pretrained.build(name)
    image = torch.rand(1, 3, 64, 64)  # (N, 3, H, W)
    with torch.no_grad():
        torch.testing.assert_close(module(image)["out"], reference(image)["out"], rtol=0, atol=0)


def test_other_bytes_under_torchvisions_own_file_name_are_refused(hub):
    name = "lraspp_mobilenet_v3_large"
    hub.mkdir(parents=True)
    path = pretrained.cache_path(name)
    torch.save(fresh(name).state_dict(), path)  # fits the network, but is not the published file
    with pytest.raises(WeightsUnavailable, match=f"{path} is damaged.*its name says d234d4ea"):
        pretrained.build(name)


def test_a_cached_file_is_hashed_once_per_process(hub, monkeypatch):
    name = "resnet18"
    path, _ = stand_in(name, fresh(name).state_dict(), monkeypatch)
    for _ in range(3):
        pretrained.build(name)
    assert checkpoints.HASHED[str(path.resolve())] == 1


def test_truncated_file_is_named_in_the_error(hub, monkeypatch):
    name = "lraspp_mobilenet_v3_large"
    path, _ = stand_in(name, fresh(name).state_dict(), monkeypatch)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(WeightsUnavailable, match=f"{path}.*damaged.*download it again"):
        pretrained.build(name)


def test_weights_of_another_network_are_refused(hub, monkeypatch):
    stand_in("lraspp_mobilenet_v3_large", torch.nn.Conv2d(3, 21, 1).state_dict(), monkeypatch)
    with pytest.raises(WeightsUnavailable, match="does not belong to lraspp_mobilenet_v3_large"):
        pretrained.build("lraspp_mobilenet_v3_large")


def test_download_verifies_the_hash_reports_progress_and_builds(hub, tmp_path, monkeypatch):
    name = "lraspp_mobilenet_v3_large"
    reference = fresh(name)
    source, digest = stand_in(name, reference.state_dict(), monkeypatch, tmp_path / "mirror")
    calls = []

    path = pretrained.download(name, progress=lambda done, total: calls.append((done, total)),
                               url=source.as_uri())
    assert path == pretrained.cache_path(name)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
    size = source.stat().st_size
    assert len(calls) > 1 and calls[-1] == (size, size)
    assert all(a[0] < b[0] for a, b in zip(calls, calls[1:]))
    assert [p.name for p in hub.iterdir()] == [path.name]  # no temporary file left behind

    module, _ = pretrained.build(name)
    assert checkpoints.HASHED[str(path.resolve())] == 0  # the download's own check counted
    image = torch.rand(1, 3, 64, 64)  # (N, 3, H, W)
    with torch.no_grad():
        torch.testing.assert_close(module(image)["out"], reference(image)["out"], rtol=0, atol=0)
    # Cached now: no network is touched, even with an address that would refuse.
    assert pretrained.download(name, url="http://127.0.0.1:9/x-d234d4ea.pth") == path


def test_download_with_a_wrong_hash_keeps_nothing(hub, tmp_path, monkeypatch):
    name = "lraspp_mobilenet_v3_large"
    source, _ = stand_in(name, fresh(name).state_dict(), monkeypatch, tmp_path / "mirror")
    flip(source)
    with pytest.raises(WeightsUnavailable, match="corrupted.*deleted"):
        pretrained.download(name, url=source.as_uri())
    assert not pretrained.is_cached(name)
    assert list(hub.iterdir()) == []


def test_download_without_a_connection_fails_fast_and_says_what_to_do(hub):
    started = time.perf_counter()
    with pytest.raises(WeightsUnavailable) as error:
        pretrained.download("resnet18", url="http://127.0.0.1:9/resnet18-f37072fd.pth",
                            timeout=2.0)
    assert time.perf_counter() - started < 5.0
    message = str(error.value)
    assert message.startswith("No internet connection: could not download the weights of "
                              "resnet18 from 127.0.0.1")
    assert "python -m seg weights download" in message
    assert not pretrained.is_cached("resnet18") and list(hub.iterdir()) == []


def test_published_metrics_categories_and_preprocessing():
    assert pretrained.published_metrics("lraspp_mobilenet_v3_large") == {
        "COCO-val2017-VOC-labels": {"miou": 57.9, "pixel_acc": 91.2}}
    assert pretrained.published_metrics("alexnet") == {
        "ImageNet-1K": {"acc@1": 56.522, "acc@5": 79.066}}
    voc = pretrained.categories("fcn_resnet50")
    assert len(voc) == 21 and voc[0] == "__background__" and voc[15] == "person"
    assert len(pretrained.categories("resnet50")) == 1000
    seg_pre, cls_pre = pretrained.transforms("deeplabv3_resnet50"), pretrained.transforms("vgg16")
    assert seg_pre.resize_size == 520 and seg_pre.crop_size is None
    assert (cls_pre.resize_size, cls_pre.crop_size) == (256, 224)
    assert cls_pre.mean == (0.485, 0.456, 0.406) and cls_pre.std == (0.229, 0.224, 0.225)


def test_cli_status_says_what_each_download_weighs(hub, capsys):
    from seg.__main__ import main

    assert main(["weights", "status"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split()[-2:] == ["download", "MB"]
    (vgg16,) = [line for line in lines if line.startswith("vgg16 ")]
    assert vgg16.split()[-3:] == ["no", "-", "527.8"]
