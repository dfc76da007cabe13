"""The registry and `Segmenter.predict`'s contract, parametrised over every registered model.

torchvision's segmenters are tested through the real loader: a state dict of the real
architecture is placed in a temporary torch hub cache under the file name torchvision's weights
enum expects (no network, no mock of the loader).
"""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import seg
from seg.models import pretrained
from tests.seg.test_pretrained import stand_in

SAMPLES = Path(__file__).resolve().parents[2] / "app" / "samples"

SEGMENTERS = seg.models.list_models(task="segmentation")
CLASSIFIERS = seg.models.list_models(task="classification")
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    """A torch hub cache holding a (randomly initialised) state dict for every torchvision
    segmenter, each under its own hash in its file name (stand_in), as the load-time check requires."""
    directory = tmp_path_factory.mktemp("hub")
    previous = torch.hub.get_dir()
    torch.hub.set_dir(str(directory))
    with pytest.MonkeyPatch.context() as patch:
        for name in pretrained.TORCHVISION_SEGMENTERS:
            builder, weights = pretrained.TORCHVISION_SEGMENTERS[name]
            torch.manual_seed(0)
            module = builder(weights=None, weights_backbone=None,
                             num_classes=len(weights.meta["categories"]),
                             aux_loss=name != "lraspp_mobilenet_v3_large")
            stand_in(name, module.state_dict(), patch)
        yield directory
    torch.hub.set_dir(previous)


def test_list_models_has_every_model_of_the_lessons():
    expected = {"fcn32s", "fcn16s", "fcn8s", "segnet", "deeplab_v1_largefov", "renet",
                "fcn_resnet50", "deeplabv3_resnet50", "deeplabv3_mobilenet_v3_large",
                "lraspp_mobilenet_v3_large", "alexnet_small", "plain_net", "resnet_small"}
    assert expected <= set(seg.models.list_models())
    assert set(SEGMENTERS) | set(CLASSIFIERS) == set(seg.models.list_models())


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", SEGMENTERS)
def test_predict_contract(name, device, hub):
    segmenter = seg.models.load(name, device=device)
    image = seg.synthetic.scene(3, height=70, width=90).image  # sides divide by no stride
    prediction = segmenter.predict(image)
    c = len(segmenter.classes)
    assert prediction.probs.shape == (c, 70, 90) and prediction.probs.dtype == torch.float32
    assert prediction.probs.device.type == "cpu"
    assert prediction.labels.shape == (70, 90) and prediction.labels.dtype == torch.int64
    assert torch.allclose(prediction.probs.sum(0), torch.ones(70, 90), atol=1e-4)
    assert torch.equal(prediction.labels, prediction.probs.argmax(0))
    assert prediction.classes == segmenter.classes and prediction.model == name
    expected = "pretrained" if seg.models.entry(name).family == "torchvision" else (
        "seglab" if seg.models.checkpoints.has_checkpoint(name) else "untrained")
    assert prediction.source == expected
    again = segmenter.predict(image)
    assert torch.equal(prediction.probs, again.probs), "eval mode must be deterministic"


def test_torchvision_model_without_cached_weights_is_refused_with_a_sentence(tmp_path):
    previous = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path))
    try:
        with pytest.raises(pretrained.WeightsUnavailable, match="python -m seg weights"):
            seg.models.load("lraspp_mobilenet_v3_large", device="cpu")
    finally:
        torch.hub.set_dir(previous)


def test_pretrained_predict_equals_the_bare_torchvision_forward(hub):
    segmenter = seg.models.load("lraspp_mobilenet_v3_large", device="cpu")
    image = seg.synthetic.scene(5, height=96, width=128).image
    x = seg.models.segmenter.to_tensor(image)
    with torch.inference_mode():
        bare = segmenter.module(x)["out"].softmax(1)[0]
    assert torch.allclose(segmenter.predict(image).probs, bare, atol=1e-5)


def test_large_images_are_downscaled_for_inference_and_answered_at_full_size():
    segmenter = seg.models.load("renet", device="cpu")
    segmenter.max_side = 64
    image = seg.synthetic.scene(1, height=200, width=120).image
    prediction = segmenter.predict(image)
    assert prediction.labels.shape == (200, 120)


def test_extras_are_returned_on_request():
    prediction = seg.models.load("fcn8s", device="cpu").predict(
        seg.synthetic.scene(2, height=64, width=64).image, extras=True)
    assert {"score_pool5", "score_pool4", "score_pool3"} <= set(prediction.extras)
    assert prediction.extras["score_pool5"].shape[-2:] == (2, 2)  # stride 32


@pytest.mark.parametrize("device", DEVICES)
def test_a_pickled_prediction_carries_cpu_probabilities_and_labels(device):
    import pickle

    prediction = seg.models.load("fcn8s", device=device).predict(
        seg.synthetic.scene(4, height=64, width=96).image)
    data = pickle.dumps(prediction)  # as app.cache stores it
    copy = pickle.loads(data)
    assert copy._logits.device.type == "cpu" and copy._logits.dtype == torch.float16
    assert copy.probs.dtype == torch.float32 and copy.probs.shape == prediction.probs.shape
    assert torch.allclose(copy.probs, prediction.probs, atol=2e-3)
    assert torch.equal(copy.labels, prediction.labels) and copy.labels.dtype == torch.int64
    assert copy.source == prediction.source and copy.classes == prediction.classes


def test_a_pickled_prediction_of_a_large_photo_is_compact():
    import pickle

    segmenter = seg.models.load("fcn8s", device="cpu")
    segmenter.max_side = 128  # a small working size keeps the test fast; the ratio is the point
    photo = np.asarray(Image.open(SAMPLES / "chelsea.jpg").convert("RGB").resize((512, 340)))
    prediction = segmenter.predict(photo)
    full = prediction.probs.numel() * 4  # float32 probabilities at the picture's size
    data = pickle.dumps(prediction)
    # labels as bytes at 512×340 plus float16 scores at 128×85: under a sixth of the float32
    assert len(data) < full / 6
    assert torch.equal(pickle.loads(data).labels, prediction.labels)


def test_a_prediction_made_from_probabilities_alone_derives_its_labels():
    from seg.models.segmenter import Prediction

    probs = torch.rand(5, 8, 8, generator=torch.Generator().manual_seed(1)).softmax(0)
    prediction = Prediction(probs=probs, classes=list("abcde"), source="seglab", model="m")
    assert torch.equal(prediction.labels, probs.argmax(0))
    with pytest.raises(ValueError, match="probs or logits"):
        Prediction(classes=["a"], source="seglab")


def test_load_refuses_classifiers_and_unknown_names():
    with pytest.raises(ValueError, match="classifier"):
        seg.models.load("resnet_small")
    with pytest.raises(KeyError, match="choose one of"):
        seg.models.load("unet")


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_classifier_builders_give_logits(name):
    module = seg.models.build(name, num_classes=5, **({"in_size": 32} if "alexnet" in name
                                                      else {"depth": 6}))
    x = torch.randn(2, 3, 32, 32)
    assert module.eval()(x).shape == (2, 5)


def test_build_refuses_torchvision_names():
    with pytest.raises(ValueError, match="torchvision"):
        seg.models.build("fcn_resnet50")


def test_reading_the_package_does_not_import_torchvision_until_needed():
    import subprocess
    import sys

    code = ("import sys, seg; seg.synthetic.scene(0, height=32, width=32); "
            "print('torchvision' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_probabilities_are_at_the_input_size_on_non_square_photos():
    segmenter = seg.models.load("deeplab_v1_largefov", device="cpu")
    image = np.random.default_rng(0).integers(0, 256, (45, 77, 3), dtype=np.uint8)
    assert segmenter.predict(image).probs.shape[1:] == (45, 77)


@pytest.mark.parametrize("shape", [(21, 52, 52), (8, 16, 24), (1, 3, 3)])
def test_channel_argmax_equals_torch_argmax_ties_included(shape):
    from seg.models.segmenter import channel_argmax

    scores = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
    scores[:, 0, 0] = 0.25  # every class tied: argmax answers the first
    assert torch.equal(channel_argmax(scores), scores.argmax(0))


def test_a_copy_sharing_weights_changes_its_layers_alone_and_predicts_alike():
    shared = seg.models.load("deeplab_v1_largefov", device="cpu")
    mine = seg.models.sharing_weights(shared)
    assert mine is not shared and mine.module is not shared.module
    assert all(a is b for a, b in zip(mine.module.parameters(), shared.module.parameters()))
    image = seg.synthetic.scene(3, height=64, width=64).image
    assert torch.equal(mine.predict(image).labels, shared.predict(image).labels)
    mine.module.set_fc6_dilation(4)
    assert shared.module.fc.fc6.dilation == (12, 12) and mine.module.fc.fc6.dilation == (4, 4)
