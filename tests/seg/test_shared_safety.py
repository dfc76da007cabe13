"""Safe for a whole class: threads stand in for students sharing one server's models.

Two promises, checked on real models (SegLab's shipped FCN-8s, torchvision's ResNet-18 and
AlexNet), never mocks:

- library code never changes a network it is handed, so one student's hooks never fire in
  another's forward pass and no flag flips under anyone's feet;
- a seeded computation gives bit-identical numbers alone and while other threads draw random
  numbers, build networks (whose initialisation draws from torch's global generator) and run
  seeded trainings of their own.

Python switches threads every 5 ms by default; here every 0.1 ms, so that the interleavings a
busy server produces over an hour show up in a few repetitions.
"""

import sys
import tempfile
import threading
from collections.abc import Callable

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

import seg
from seg import convolutionalize, live, rng, train
from seg.models import registry
from seg.models.renet import ReNetLayer
from seg.models.segmenter import for_inference, to_tensor
from seg.receptive_field import empirical, explain_pixel, theoretical


@pytest.fixture(autouse=True)
def often_switching():
    threads, interval = torch.get_num_threads(), sys.getswitchinterval()
    torch.set_num_threads(1)
    sys.setswitchinterval(1e-4)
    yield
    sys.setswitchinterval(interval)
    torch.set_num_threads(threads)


def in_threads(*students: Callable[[], object]) -> list:
    """Run each function in a thread of its own, all at once; their results in order."""
    results, errors = [None] * len(students), []

    def run(i):
        try:
            results[i] = students[i]()
        except BaseException as error:  # noqa: BLE001 - reported by the test thread
            errors.append(error)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(students))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return results


def alone(function: Callable[[], object]):
    """`function()` in a thread of its own with nobody else running: the serial answer."""
    return in_threads(function)[0]


def beside(background: list[Callable[[], object]], function: Callable[[], object]):
    """`function()` in a thread while each background function runs in a loop in its own."""
    stop = threading.Event()

    def loop(work):
        while not stop.is_set():
            work()

    threads = [threading.Thread(target=loop, args=(work,)) for work in background]
    for thread in threads:
        thread.start()
    try:
        return alone(function)
    finally:
        stop.set()
        for thread in threads:
            thread.join()


@pytest.fixture(scope="module")
def fcn8s():
    return seg.models.load("fcn8s", device="cpu")


@pytest.fixture(scope="module")
def resnet18():
    return rng.build(torchvision.models.resnet18, seed=0).eval()


# --- Nothing shared is changed ------------------------------------------------------------------

def test_theoretical_on_the_shared_fcn8s_while_three_students_predict(fcn8s):
    expected = alone(lambda: theoretical(fcn8s.module, (128, 128)))
    pool5 = next(layer for layer in expected if layer.name == "encoder.4.pool")
    assert pool5.size == (212, 212)  # VGG-16's pool5 (seen as 20 px when others predicted)
    picture = seg.synthetic.scene(1, height=64, width=64).image
    predicting = [lambda: fcn8s.predict(picture)] * 3
    tables = beside(predicting, lambda: [theoretical(fcn8s.module, (128, 128)) for _ in range(20)])
    assert sum(table != expected for table in tables) == 0


def test_two_students_read_their_own_stage_maps_from_one_shared_resnet18(resnet18):
    pictures = [torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(i))
                for i in (1, 2)]
    names = ["layer1", "layer2", "layer3", "layer4"]
    expected = [alone(lambda x=x: live.feature_maps(resnet18, x, names)) for x in pictures]

    def student(i):
        return [live.feature_maps(resnet18, pictures[i], names) for _ in range(8)]

    for i, calls in enumerate(in_threads(lambda: student(0), lambda: student(1))):
        wrong = [any(not np.array_equal(maps[n], expected[i][n]) for n in names) for maps in calls]
        assert sum(wrong) == 0


def test_two_students_get_their_own_layer_tables_from_one_shared_alexnet():
    alexnet = live.paper_alexnet()  # the meta device: shapes without weights, built in 1 ms

    def table(size):
        """The rows, or the rows that ran and the message when the size does not fit."""
        try:
            return live.layer_table(alexnet, (size, size))
        except live.ShapeMismatch as mismatch:
            return mismatch.rows, str(mismatch)

    sizes = (227, 259)  # the paper's size, and one whose pool5 is too large for fc6
    expected = {size: alone(lambda s=size: table(s)) for size in sizes}
    assert isinstance(expected[227], list) and isinstance(expected[259], tuple)
    tables = in_threads(*[lambda s=size: [table(s) for _ in range(10)] for size in sizes])
    for size, calls in zip(sizes, tables):
        assert sum(got != expected[size] for got in calls) == 0


def test_two_students_get_their_own_coarse_maps_from_one_shared_net():
    classifier = rng.build(registry.build, "alexnet_small", in_size=32, seed=0).eval()
    net, _ = convolutionalize.convolutionalize(classifier)
    pictures = [np.random.default_rng(i).integers(0, 256, (160, 224, 3), dtype=np.uint8)
                for i in (0, 1)]
    expected = [alone(lambda p=p: convolutionalize.coarse_map(net, p)) for p in pictures]

    def student(i):
        return [convolutionalize.coarse_map(net, pictures[i]) for _ in range(10)]

    for i, calls in enumerate(in_threads(lambda: student(0), lambda: student(1))):
        assert sum(not (torch.equal(c.probs, expected[i].probs) and c.stride == expected[i].stride
                        and c.window == expected[i].window) for c in calls) == 0


class _Head(nn.Module):
    """A classifier and a segmenter at once (logits (N, K) from `forward`, a score map from
    `scores`), with batch norm and dropout, whose flags a mode switch would flip."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                      nn.MaxPool2d(2))
        self.classifier = nn.Sequential(nn.Dropout(0.5), nn.Linear(8 * 16 * 16, 8))
        self.in_size = 32

    def forward(self, x):
        return self.classifier(torch.flatten(self.features(x), 1))


def _state(module: nn.Module) -> list:
    """Everything a request could change and another thread would see: each submodule's
    training flag and hooks, each tensor's identity and version (bumped by in-place changes)."""
    state = []
    for name, m in module.named_modules():
        hooks = [len(getattr(m, registry_name)) for registry_name in (
            "_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")]
        state.append((name, m.training, hooks, sorted(vars(m))))
    state += [(name, id(t), t._version) for name, t in module.state_dict(keep_vars=True).items()]
    return state


def _calls(module: nn.Module, segmenter) -> dict[str, Callable[[], object]]:
    x, y = torch.randn(4, 3, 32, 32), torch.randint(0, 8, (4,))
    picture = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    net = nn.Sequential(module.features, nn.Conv2d(8, 8, 16))  # what convolutionalize makes
    return {
        "theoretical": lambda: theoretical(module, (32, 32)),
        "empirical": lambda: empirical(module.features, x[0], 4, 4),
        "explain_pixel": lambda: explain_pixel(segmenter, picture, 10, 20),
        "feature_maps": lambda: live.feature_maps(module, x[:1], ["features.1", "classifier.1"]),
        "layer_table": lambda: live.layer_table(module, (32, 32)),
        "loss_and_error": lambda: live.loss_and_error(module, x, y),
        "accuracy": lambda: train.accuracy(module, x, y),
        "convolutionalize": lambda: convolutionalize.convolutionalize(module),
        "equivalence_error": lambda: convolutionalize.equivalence_error(module, net),
        "coarse_map": lambda: convolutionalize.coarse_map(net, picture),
        "first_layer_filters": lambda: live.first_layer_filters(module),
    }


@pytest.mark.parametrize("name", list(_calls(_Head(), None)))
def test_no_call_changes_the_module_it_is_given_not_even_for_a_moment(name, fcn8s):
    module = rng.build(_Head, seed=0).train()
    module.features[1].eval()  # a mixed state, which a restore-afterwards could get wrong
    segmenter = seg.models.Segmenter("fcn8s", fcn8s.module, fcn8s.classes, fcn8s.source)
    watched = {"head": module, "fcn8s": fcn8s.module}
    before = {key: _state(m) for key, m in watched.items()}
    values = {key: [t.clone() for t in m.state_dict().values()] for key, m in watched.items()}
    changed, stop = [], threading.Event()

    def watch():  # another student, looking at the shared modules while the call runs
        while not stop.is_set():
            changed.extend(key for key, m in watched.items() if _state(m) != before[key])

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        for _ in range(3):
            _calls(module, segmenter)[name]()
    finally:
        stop.set()
        watcher.join()
    assert not changed
    for key, m in watched.items():
        assert _state(m) == before[key]
        assert all(torch.equal(a, b) for a, b in zip(values[key], m.state_dict().values()))


def test_for_inference_copies_share_the_weights_and_drop_the_hooks():
    net = rng.build(_Head, seed=0).train()
    net.features[0].register_forward_hook(lambda *args: pytest.fail("the original's hook ran"))
    own = for_inference(net)
    assert own is not net and not own.training and net.training
    assert all(a is b for a, b in zip(own.parameters(), net.parameters()))
    with torch.no_grad():
        own(torch.zeros(1, 3, 32, 32))
    resting = net.eval()
    assert for_inference(resting) is resting and for_inference(resting, private=True) is not resting


# --- Seeded means reproducible, alone or beside others ------------------------------------------

def _drawing():
    torch.rand(256)


def _building():
    nn.Conv2d(3, 8, 3), nn.Linear(32, 32)  # default initialisation: the global generator


def _training_another_seed():
    live.race(("tanh",), steps=2, seed=7, train_size=32, validation=0, batch_size=16)


OTHERS = [_drawing, _building, _training_another_seed]


def _fit_with_dropout():
    x, y = train.patch_dataset(32, patch=32, scene_size=96, seed=1)
    net = rng.build(registry.build, "alexnet_small", in_size=32, dropout=0.5, seed=1)
    return train.fit(net, train.tensor_batches(x, y, 16, seed=1), steps=3, device="cpu", seed=1)


def _train_segmenter():
    with tempfile.TemporaryDirectory() as folder:
        segmenter, _ = train.train_segmenter("fcn32s", steps=2, crop=32, batch_size=2,
                                             device="cpu", out_dir=folder, eval_scenes=1,
                                             progress=False, command="test", pool_size=4)
        return [p.detach().clone() for p in segmenter.module.parameters()]


TRAINERS = {
    "race": lambda: live.race(("relu", "tanh"), steps=3, train_size=32, validation=16,
                              batch_size=16).loss,
    "regularised": lambda: live.regularised(dropout=0.5, train_size=32, validation=16, steps=3,
                                            batch_size=16, evaluations=1).loss,
    "depth_race": lambda: live.depth_race((2,), steps=2, width=4, batch_size=8, train_size=16,
                                          window=1).loss,
    "gradient_norms": lambda: live.gradient_norms(4, residual=True, batch=8, width=4).tolist(),
    "fit": _fit_with_dropout,
    "train_patch_classifier": lambda: convolutionalize.train_patch_classifier(
        steps=3, patches=32, device="cpu").losses,
    "train_segmenter": _train_segmenter,
    "a fresh ReNet layer": lambda: list(rng.build(ReNetLayer, 3, 8, 4, seed=0).parameters()),
}


def _same(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return torch.equal(a, b)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(u, v) for u, v in zip(a, b))
    return a == b


@pytest.mark.parametrize("name", list(TRAINERS))
def test_a_seeded_trainer_gives_the_same_numbers_beside_others(name):
    expected = alone(TRAINERS[name])
    assert _same(beside(OTHERS, TRAINERS[name]), expected)


def test_seeded_is_torch_manual_seed_without_the_global_generator():
    # Every SegLab network comes out as `torch.manual_seed(seed); build()` run alone would make it.
    for model in registry.list_models(family="seglab"):
        kwargs = {"depth": 3} if model in ("plain_net", "resnet_small") else {}
        torch.manual_seed(5)
        reference = registry.build(model, **kwargs)
        state = torch.random.get_rng_state()
        seeded = rng.build(registry.build, model, **kwargs, seed=5)
        assert torch.equal(torch.random.get_rng_state(), state)  # neither read nor reseeded
        assert _same(list(seeded.state_dict().values()), list(reference.state_dict().values()))
    torch.manual_seed(5)
    x = torch.ones(64, requires_grad=True)
    reference = (F.dropout(x, 0.5, True), torch.rand(3), torch.randint(9, (3,)), torch.randperm(5))
    with rng.Seeded(5):
        seeded = (F.dropout(x, 0.5, True), torch.rand(3), torch.randint(9, (3,)), torch.randperm(5))
    assert _same(seeded, reference)


def test_a_seeded_block_leaves_other_threads_draws_alone():
    def serial():
        torch.manual_seed(3)
        return torch.cat([torch.rand(4) for _ in range(200)])

    def seeded_elsewhere():
        with rng.Seeded(0):
            return torch.cat([torch.rand(4) for _ in range(200)])

    expected = serial()
    theirs, mine = in_threads(seeded_elsewhere, serial)
    assert torch.equal(mine, expected)
    assert torch.equal(theirs, torch.rand(800, generator=torch.Generator().manual_seed(0)))


def test_unseedable_draws_are_refused_not_silently_global():
    q = torch.randn(1, 1, 4, 8)
    attention = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu
    with rng.Seeded(0):
        attention(q, q, q, dropout_p=0.0)  # draws nothing: allowed
        with pytest.raises(NotImplementedError, match="global generator"):
            attention(q, q, q, dropout_p=0.5)
        first = torch.native_dropout(torch.ones(100), 0.5, True)  # CUDA's fused dropout's op
    with rng.Seeded(0):
        second = torch.native_dropout(torch.ones(100), 0.5, True)
    assert _same(first, second) and set(first[0].tolist()) == {0.0, 2.0}
