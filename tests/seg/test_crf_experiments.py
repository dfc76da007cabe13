"""The CRF lessons' experiments against direct computations (numpy, enumeration, autograd)."""

import itertools

import numpy as np
import pytest
import torch

import seg
from seg.crf import dense_crf, experiments, kl_divergence


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """The lattice is slower with two threads on a shared 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def scene():
    return seg.synthetic.scene(7, height=64, width=64)


@pytest.fixture(scope="module")
def probs(scene):
    """Made-up network probabilities that are right more often than not, (8, 64, 64)."""
    g = torch.Generator().manual_seed(0)
    logits = 1.5 * torch.nn.functional.one_hot(torch.from_numpy(scene.labels), 8).permute(2, 0, 1)
    return torch.softmax(logits + torch.randn(8, 64, 64, generator=g), 0)


@pytest.fixture(scope="module")
def deeplab():
    return seg.models.load("deeplab_v1_largefov", device="cpu")


def busy_row(scene) -> int:
    """The row of the scene with the most classes (ties: the first)."""
    return int(np.argmax([len(np.unique(r)) for r in scene.labels]))


def test_noisy_row_groups_the_probabilities_and_adds_seeded_noise(scene, probs):
    r = busy_row(scene)
    row = experiments.noisy_row(scene.image, probs, r, truth=scene.labels,
                                classes=seg.synthetic.CLASSES, noise=0.0)
    present = np.unique(scene.labels[r])
    assert len(present) > 4 and row.num_labels == 4 and row.labels[-1] == experiments.OTHER
    # The three most frequent true classes alone, everything else in "other".
    counts = np.bincount(scene.labels[r], minlength=8)
    assert [m[0] for m in row.members[:3]] == list(np.argsort(-counts, kind="stable")[:3])
    assert sorted(sum(row.members, ())) == list(range(8))
    expected = np.stack([probs[list(m), r, :].double().sum(0).numpy() for m in row.members], 1)
    np.testing.assert_allclose(row.clean.numpy(), np.log(np.maximum(expected, 1e-5)), rtol=1e-12)
    assert torch.equal(row.scores, row.clean)  # noise 0
    label_of = {c: k for k, m in enumerate(row.members) for c in m}
    assert row.target.tolist() == [label_of[c] for c in scene.labels[r]]
    np.testing.assert_array_equal(row.pixels, scene.image[r])

    noisy = experiments.noisy_row(scene.image, probs, r, truth=scene.labels,
                                  classes=seg.synthetic.CLASSES, noise=2.0, seed=3)
    again = experiments.noisy_row(scene.image, probs, r, truth=scene.labels,
                                  classes=seg.synthetic.CLASSES, noise=2.0, seed=3)
    assert torch.equal(noisy.scores, again.scores)
    assert (noisy.scores - noisy.clean).std() == pytest.approx(2.0, rel=0.2)


def test_noisy_row_from_truth_and_without_truth(scene, probs):
    r = busy_row(scene)
    row = experiments.noisy_row(scene.image, probs, r, truth=scene.labels, scores_from="truth",
                                classes=seg.synthetic.CLASSES, noise=0.0)
    assert torch.equal(row.clean.argmax(1), row.target)
    assert row.clean.exp().sum(1).numpy() == pytest.approx(np.ones(64))
    # Without truth the network's clean answer is the target, its classes the labels.
    photo = experiments.noisy_row(scene.image, probs, r, classes=seg.synthetic.CLASSES, noise=0.5)
    assert not photo.target_is_truth
    assert torch.equal(photo.target, photo.clean.argmax(1))
    # A row of one class still gets two labels to choose from.
    sky = experiments.noisy_row(scene.image, probs, 0, truth=np.zeros((64, 64), np.int64),
                                classes=seg.synthetic.CLASSES)
    assert sky.num_labels == 2 and sky.labels[0] == "sky"
    with pytest.raises(ValueError, match="true labels"):
        experiments.noisy_row(scene.image, probs, r, classes="abcdefgh", scores_from="truth")


def enumerate_log_z_and_best(x: np.ndarray, a: np.ndarray):
    """log Z and the best labelling of Σ_t x_t(y_t) + Σ_t A[y_{t-1}, y_t], one labelling at a time."""
    t, k = x.shape
    scores = {y: sum(x[i, y[i]] for i in range(t)) + sum(a[y[i - 1], y[i]] for i in range(1, t))
              for y in itertools.product(range(k), repeat=t)}
    values = np.array(list(scores.values()))
    return np.log(np.exp(values - values.max()).sum()) + values.max(), max(scores, key=scores.get)


def test_decode_row_forward_brute_force_and_viterbi_agree_with_enumeration(scene, probs):
    row = experiments.noisy_row(scene.image, probs, busy_row(scene), truth=scene.labels,
                                classes=seg.synthetic.CLASSES, noise=1.0, seed=1)
    a = torch.tensor([[2.0, -1.0, 0.5, 0.0], [0.0, 1.5, -0.5, 0.3], [0.2, 0.0, 2.5, -1.0],
                      [0.0, 0.4, 0.0, 1.0]], dtype=torch.float64)
    summary = experiments.decode_row(experiments.chain_crf(a), row, segment=(10, 6))
    log_z, best = enumerate_log_z_and_best(row.scores[10:16].numpy(), a.numpy())
    assert summary.segment_log_z == pytest.approx(log_z, abs=1e-10)
    assert summary.segment_log_z_brute_force == pytest.approx(log_z, abs=1e-10)
    assert summary.labellings == 4 ** 6
    # Viterbi on the whole row vs enumeration on a short piece of it: check the piece by itself.
    short = experiments.NoisyRow(**{**row.__dict__, "scores": row.scores[10:16],
                                    "target": row.target[10:16]})
    assert tuple(experiments.decode_row(experiments.chain_crf(a), short,
                                        segment=(0, 6)).viterbi.tolist()) == best
    assert summary.argmax_accuracy == pytest.approx(
        float((row.scores.argmax(1) == row.target).double().mean()))
    # Without transitions the chain decides every pixel alone: Viterbi is the argmax.
    alone = experiments.decode_row(experiments.chain_crf(torch.zeros(4, 4)), row, segment=(0, 3))
    assert torch.equal(alone.viterbi, row.scores.argmax(1))
    with pytest.raises(ValueError, match="does not fit"):
        experiments.decode_row(experiments.chain_crf(a), row, segment=(60, 8))


def test_fit_chain_climbs_resumes_exactly_and_reports_the_autograd_gradient(scene, probs):
    row = experiments.noisy_row(scene.image, probs, busy_row(scene), truth=scene.labels,
                                classes=seg.synthetic.CLASSES, noise=1.5, seed=2)
    a = 1.0 * torch.eye(4)
    fit = experiments.fit_chain(row, a, steps=12)
    curve = np.array(fit.log_likelihoods)
    assert fit.steps == 12 and np.all(np.diff(curve) >= 0) and curve[-1] > curve[0] + 1
    first = experiments.fit_chain(row, a, steps=5)
    resumed = experiments.fit_chain(row, None, steps=7, resume=first)
    assert resumed.log_likelihoods == pytest.approx(fit.log_likelihoods, abs=1e-9)
    assert torch.allclose(resumed.transitions, fit.transitions, atol=1e-9)
    # The reported gradient (empirical - expected counts) is autograd's d log p / dA.
    crf = fit.crf()
    (-crf.nll(row.scores, row.target)).backward()
    assert torch.allclose(fit.gradient, crf.transitions.grad, atol=1e-8)
    assert fit.log_likelihoods[-1] == pytest.approx(crf.log_likelihood(row.scores, row.target))
    assert torch.equal(fit.viterbi, crf.viterbi(row.scores)[0])


def test_crf_on_prediction_keeps_every_iteration_of_dense_crf(scene, probs):
    params = dict(w1=5.0, theta_alpha=30.0, theta_beta=8.0, w2=3.0, theta_gamma=3.0)
    run = experiments.crf_on_prediction(scene.image, probs, iterations=4, truth=scene.labels,
                                        **params)
    qs = []
    final = dense_crf(scene.image, probs, iterations=4, callback=lambda s, q: qs.append(q.clone()),
                      **params)
    assert run.iterations == 4 and run.params == params
    np.testing.assert_array_equal(run.labels[0], probs.argmax(0).numpy())
    np.testing.assert_array_equal(run.labels[-1], final.argmax(0).numpy())
    np.testing.assert_allclose(run.confidence[2], qs[2].amax(0).numpy(), rtol=1e-6)
    assert np.isnan(run.kl[0])
    assert run.kl[3] == pytest.approx(kl_divergence(qs[3], qs[2]), rel=1e-6)
    crf = seg.crf.DenseCRF(scene.image, probs, **params)
    assert run.free_energy[1] == pytest.approx(crf.free_energy(qs[1]), rel=1e-5)
    assert run.miou == pytest.approx([seg.metrics.miou(q.argmax(0), scene.labels, 8) for q in qs])
    assert not run.changed(0).any()
    np.testing.assert_array_equal(run.changed(4), final.argmax(0).numpy() != run.labels[0])


def test_with_output_stride_never_changes_the_shared_segmenter(scene, deeplab):
    before = deeplab.predict(scene.image, extras=True)
    coarse = experiments.with_output_stride(deeplab, 32)
    assert coarse.module.output_stride == 32 and deeplab.module.output_stride == 8
    assert coarse.predict(scene.image, extras=True).extras["scores"].shape[1:] == (2, 2)
    after = deeplab.predict(scene.image, extras=True)
    assert after.extras["scores"].shape[1:] == (8, 8)
    assert torch.equal(after.probs, before.probs)


@pytest.mark.parametrize("output_stride", [8, 16])
def test_deeplab_pipeline_stages_match_the_segmenter_and_dense_crf(scene, deeplab, output_stride):
    net = experiments.with_output_stride(deeplab, output_stride)
    image = scene.image[:56, :40]  # not a multiple of the stride: padded, then cropped
    stages = experiments.deeplab_pipeline(net, image, iterations=3)
    prediction = net.predict(image)
    size = -(-56 // output_stride), -(-40 // output_stride)
    assert tuple(stages.scores.shape) == (8, *size) and stages.output_stride == output_stride
    assert torch.allclose(stages.probs, prediction.probs, atol=1e-5)
    assert torch.allclose(stages.crf_probs, dense_crf(image, stages.probs, iterations=3), atol=1e-6)
    assert torch.equal(stages.labels, stages.crf_probs.argmax(0))
    off = experiments.deeplab_pipeline(net, image, iterations=0)
    assert off.crf_probs is None and torch.equal(off.labels, stages.probs.argmax(0))


def test_crf_miou_table_equals_a_direct_computation(deeplab):
    scenes = experiments.held_out_scenes(2, size=64)
    assert [s.seed for s in scenes] == [seg.synthetic.eval_seed(0), seg.synthetic.eval_seed(1)]
    table = experiments.crf_miou_table(deeplab, scenes, iterations=3, w1=6.0)
    before, after, truth = [], [], []
    for s in scenes:
        p = deeplab.predict(s.image)
        before.append(p.labels.numpy())
        after.append(dense_crf(s.image, p.probs, iterations=3, w1=6.0).argmax(0).numpy())
        truth.append(s.labels)
    # The data set's mIoU: all scenes' pixels together (= the summed confusion matrices).
    stacked = [np.concatenate(x) for x in (before, after, truth)]
    assert table.miou_without == pytest.approx(seg.metrics.miou(stacked[0], stacked[2], 8))
    assert table.miou_with == pytest.approx(seg.metrics.miou(stacked[1], stacked[2], 8))
    assert table.accuracy_with == pytest.approx((stacked[1] == stacked[2]).mean())
    assert table.rows[1]["mIoU with CRF"] == pytest.approx(seg.metrics.miou(after[1], truth[1], 8))
    assert table.rows[0]["pixels changed"] == pytest.approx((before[0] != after[0]).mean())
    assert table.params["w1"] == 6.0
    assert table.gain == pytest.approx(table.miou_with - table.miou_without)


def test_working_image_keeps_small_pictures_and_shrinks_large_ones(scene):
    np.testing.assert_array_equal(experiments.working_image(scene.image), scene.image)
    assert experiments.working_image(np.zeros((1000, 500, 3), np.uint8)).shape == (384, 192, 3)
