"""render_heatmaps against the per-point numpy reference (pyskl GeneratePoseTarget semantics, SPEC §2)."""

import math

import numpy as np
import pytest
import torch

from modeling_skeletonclip import heatmaps as heatmaps_module
from helpers import reference_heatmaps
from modeling_skeletonclip.heatmaps import heatmap_channel_permutation, mirror_heatmaps, render_heatmaps
from modeling_skeletonclip.pose_layouts import COCO17, limb_flip_permutation

TOL = 1e-5


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # small tensors: thread start-up would dominate (and stalls badly on a busy machine)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make_inputs(seed, n=2, m=2, t=3, v=17, size=(20, 24), spread=None, nan=True):
    """Random float32 keypoints/scores with the awkward cases mixed in."""
    rng = np.random.default_rng(seed)
    height, width = size
    if spread is None:  # anywhere in the image and a few pixels beyond, negative included
        kp = rng.uniform(0, 1, size=(n, m, t, v, 2))
        kp = kp * np.array([width + 8, height + 8]) - 4
    else:  # a small skeleton somewhere inside a larger image
        centre = rng.uniform(spread, np.array([width, height]) - spread, size=(n, m, t, 1, 2))
        kp = centre + rng.uniform(-spread / 2, spread / 2, size=(n, m, t, v, 2))
    kp = kp.astype(np.float32)
    scores = rng.uniform(0, 1, size=(n, m, t, v)).astype(np.float32)
    # scores below / at eps
    low = rng.random(scores.shape) < 0.1
    scores[low] = rng.choice(np.array([0.0, 5e-4, 9.9e-4, 1e-3, 2e-3], dtype=np.float32), size=int(low.sum()))
    if v == 17:  # zero-length and sub-pixel limbs (COCO limbs (0, 5), (5, 7), (11, 12))
        kp[..., 5, :] = np.where(rng.random((n, m, t, 1)) < 0.4, kp[..., 0, :], kp[..., 5, :])
        kp[..., 7, :] = kp[..., 5, :] + rng.uniform(-0.7, 0.7, size=(n, m, t, 2)).astype(np.float32)
        kp[..., 12, :] = kp[..., 11, :]
    else:  # limbs (0, 1), (1, 2) of the custom layout below
        kp[..., 1, :] = np.where(rng.random((n, m, t, 1)) < 0.4, kp[..., 0, :], kp[..., 1, :])
        kp[..., 2, :] = kp[..., 1, :] + rng.uniform(-0.7, 0.7, size=(n, m, t, 2)).astype(np.float32)
    # points exactly on x == 0 (kept by the flip), negative coordinates (truncation toward zero)
    kp[..., 3, 0] = 0
    kp[..., 4, 0] = rng.uniform(-3, 0, size=(n, m, t)).astype(np.float32)
    # the second person overlaps the first in sample 0
    if m > 1:
        kp[0, 1] = kp[0, 0] + rng.normal(0, 1, size=kp[0, 0].shape).astype(np.float32)
    if nan:
        kp[0, 0, 0, v // 2, 0] = np.nan
        kp[-1, -1, -1, v - 1] = np.nan
    return kp, scores


MODES = {
    "joints": dict(with_joints=True, with_limbs=False),
    "limbs": dict(with_joints=False, with_limbs=True),
    "both": dict(with_joints=True, with_limbs=True),
}


def render(kp, scores, **kwargs):
    out = render_heatmaps(torch.from_numpy(kp), torch.from_numpy(scores), **kwargs)
    return out.float().numpy()


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("mode", sorted(MODES))
@pytest.mark.parametrize("flip", [False, True])
def test_matches_reference(seed, mode, flip):
    kp, scores = make_inputs(seed)
    kwargs = dict(size=(20, 24), sigma=0.6, flip_double=flip, **MODES[mode])
    ref = reference_heatmaps(kp, scores, **kwargs)
    out = render(kp, scores, **kwargs)
    assert out.shape == ref.shape
    assert np.isfinite(out).all()
    assert np.abs(out - ref).max() <= TOL
    assert (ref > 0).any()


@pytest.mark.parametrize("seed", [3, 4])
def test_matches_reference_small_skeleton_large_image(seed):
    # limb windows much smaller than the image: the local-window limb path (not the whole-image one)
    kp, scores = make_inputs(seed, size=(64, 72), spread=16)
    kwargs = dict(size=(64, 72), sigma=0.6, with_limbs=True, flip_double=True)
    ref = reference_heatmaps(kp, scores, **kwargs)
    assert np.abs(render(kp, scores, **kwargs) - ref).max() <= TOL


@pytest.mark.parametrize("sigma", [0.3, 1.5])
def test_matches_reference_other_sigma_and_no_score(sigma):
    kp, scores = make_inputs(5, size=(24, 20))
    for use_score in (True, False):
        kwargs = dict(size=(24, 20), sigma=sigma, with_limbs=True, use_score=use_score)
        ref = reference_heatmaps(kp, scores, **kwargs)
        assert np.abs(render(kp, scores, **kwargs) - ref).max() <= TOL


def test_custom_layout_limbs_and_permutation():
    kp, scores = make_inputs(6, v=5, size=(16, 16))
    limbs = [(0, 1), (1, 2), (3, 4), (2, 2), (0, 2), (1, 1)]  # closed under the flip (1 <-> 2, 3 <-> 4)
    perm = [0, 2, 1, 4, 3]
    kwargs = dict(size=(16, 16), with_limbs=True, limbs=limbs, flip_double=True, flip_permutation=perm)
    ref = reference_heatmaps(kp, scores, **kwargs)
    out = render(kp, scores, **kwargs)
    assert out.shape == (2, 2, 5 + 6, 3, 16, 16)
    assert np.abs(out - ref).max() <= TOL
    assert limb_flip_permutation(limbs, perm) == [4, 1, 2, 5, 0, 3]


def test_limbs_not_closed_under_the_flip_are_an_error():
    kp, scores = make_inputs(6, v=5, size=(16, 16))
    limbs = [(0, 1), (1, 2), (3, 4)]  # (0, 1) mirrors to (0, 2), which is no limb
    kwargs = dict(size=(16, 16), with_limbs=True, limbs=limbs, flip_permutation=[0, 2, 1, 4, 3])
    render(kp, scores, **kwargs)  # without a flip the limbs are fine
    for flip in (dict(flip_double=True), dict(mirrored=torch.tensor([True, False]))):
        with pytest.raises(ValueError, match=r"limb \(0, 1\) mirrors to \(0, 2\), which is not among its limbs"):
            render(kp, scores, **kwargs, **flip)
    # joints alone need no limb permutation
    assert render(kp, scores, size=(16, 16), flip_double=True, flip_permutation=[0, 2, 1, 4, 3]).shape[1] == 2


# pyskl's GeneratePoseTarget defaults: its COCO skeleton order and its left/right channel lists.
PYSKL_SKELETONS = ((0, 1), (0, 2), (1, 3), (2, 4), (0, 5), (5, 7), (7, 9), (0, 6), (6, 8), (8, 10), (5, 11),
                   (11, 13), (13, 15), (6, 12), (12, 14), (14, 16), (11, 12))
PYSKL_LEFT_KP, PYSKL_RIGHT_KP = (1, 3, 5, 7, 9, 11, 13, 15), (2, 4, 6, 8, 10, 12, 14, 16)
PYSKL_LEFT_LIMB, PYSKL_RIGHT_LIMB = (0, 2, 4, 5, 6, 10, 11, 12), (1, 3, 7, 8, 9, 13, 14, 15)


def pyskl_double(heatmap, left, right):
    """pyskl's `GeneratePoseTarget.__call__` with `double=True` on a volume [T, C, H, W]: the volume and its flip."""
    indices = np.arange(heatmap.shape[1], dtype=np.int64)
    for l, r in zip(left, right):  # noqa: E741
        indices[l] = r
        indices[r] = l
    return np.concatenate([heatmap, heatmap[..., ::-1][:, indices]])


def border_keypoints(width=24, height=20):
    """Two persons, two frames, with joints on and near the borders: x = 0 with score 0 (pyskl's missing joint),
    x = 0 with a score, x in (0, 1), x = W - 1, x just below W, beyond W, and a zero-length limb."""
    rng = np.random.default_rng(12)
    kp = (rng.uniform(0, 1, size=(1, 2, 2, 17, 2)) * [width, height]).astype(np.float32)
    scores = rng.uniform(0.2, 1, size=(1, 2, 2, 17)).astype(np.float32)
    kp[0, 0, :, 1] = [0.0, 0.0]
    scores[0, 0, :, 1] = 0.0  # missing (coordinates 0, score 0)
    kp[0, 0, 0, 3, 0] = 0.0  # at x = 0 with a score: drawn at column 0, mirrored to column W - 1
    kp[0, 0, 1, 4, 0] = 0.3
    kp[0, 0, 0, 5, 0] = width - 1
    kp[0, 0, 1, 6, 0] = width - 0.4
    kp[0, 1, 0, 9, 0] = width + 0.5
    kp[0, 1, 1, 7] = kp[0, 1, 1, 5]  # limb (5, 7) of length 0: drawn as joint 5
    kp[0, 1, :, 10, 0] = 10.5  # its window [8, 13) mirrors to [10, 15), not the window [9, 14) of x = 12.5
    return kp, scores


@pytest.mark.parametrize("mode", ["joints", "limbs"])
def test_flip_double_is_pyskls_mirrored_volume(mode):
    """View 1 of flip_double against pyskl's own rule, written out here: render once (the numpy reference renderer,
    in pyskl's skeleton order for limbs), then `heatmap[..., ::-1][:, indices]` with pyskl's left/right lists."""
    height, width = 20, 24
    kp, scores = border_keypoints(width, height)
    if mode == "joints":
        options = dict(with_joints=True, with_limbs=False)
        volume = reference_heatmaps(kp, scores, size=(height, width), **options)[0]  # [C, T, H, W]
        expected = pyskl_double(volume.transpose(1, 0, 2, 3), PYSKL_LEFT_KP, PYSKL_RIGHT_KP)
        to_ours = np.arange(17)
    else:
        options = dict(with_joints=False, with_limbs=True)
        volume = reference_heatmaps(kp, scores, size=(height, width), limbs=PYSKL_SKELETONS, **options)[0]
        expected = pyskl_double(volume.transpose(1, 0, 2, 3), PYSKL_LEFT_LIMB, PYSKL_RIGHT_LIMB)
        # this package's COCO17 limbs are pyskl's in another order
        to_ours = np.array([[sorted(limb) for limb in PYSKL_SKELETONS].index(sorted(limb)) for limb in COCO17.limbs])
    frames = kp.shape[2]
    expected = expected.reshape(2, frames, *expected.shape[1:])[:, :, to_ours].transpose(0, 2, 1, 3, 4)  # [2, C, T, H, W]
    out = render(kp, scores, size=(height, width), flip_double=True, **options)[0]  # [2, C, T, H, W]
    assert out.shape == expected.shape
    assert np.abs(out - expected).max() <= TOL
    assert (expected[1, :, :, :, -1] > 0).any()  # the joint at x = 0 with a score, mirrored to the last column
    # the same through `mirrored`, windowed and dense
    for dense in (False, True):
        mirrored = render(kp, scores, size=(height, width), mirrored=torch.tensor([True]), dense=dense, **options)
        assert np.array_equal(mirrored[0], out[1])

    # x -> W - x on the keypoints (pyskl's training Flip, the rule before rendering) is another volume: one
    # pixel off, everywhere a joint is drawn
    flipped = kp[:, :, :, COCO17.flip_permutation()].copy()
    x = flipped[..., 0]
    x[x != 0] = width - x[x != 0]
    old_rule = reference_heatmaps(flipped, scores[:, :, :, COCO17.flip_permutation()], size=(height, width),
                                  **options)[0]
    assert np.abs(old_rule - expected[1]).max() > 0.5
    # and rendering at x -> W - 1 - x (every joint, x = 0 included) is not the mirror either: pyskl's int()
    # windows are not mirror-symmetric (the difference lies at window edges, far above the float32 tolerance)
    flipped = kp[:, :, :, COCO17.flip_permutation()].copy()
    flipped[..., 0] = width - 1 - flipped[..., 0]
    shifted = reference_heatmaps(flipped, scores[:, :, :, COCO17.flip_permutation()], size=(height, width),
                                 **options)[0]
    assert np.abs(shifted - expected[1]).max() > 100 * TOL


def test_the_coco_limb_permutation_is_pyskls_left_right_lists():
    pyskl_perm = np.arange(len(PYSKL_SKELETONS))
    pyskl_perm[list(PYSKL_LEFT_LIMB)], pyskl_perm[list(PYSKL_RIGHT_LIMB)] = PYSKL_RIGHT_LIMB, PYSKL_LEFT_LIMB
    assert limb_flip_permutation(PYSKL_SKELETONS, COCO17.flip_permutation()) == pyskl_perm.tolist()
    assert COCO17.limb_flip_permutation() == limb_flip_permutation(COCO17.limbs, COCO17.flip_permutation())
    channels = heatmap_channel_permutation(17, COCO17.flip_permutation(), True, COCO17.limbs)
    assert channels == COCO17.flip_permutation() + [17 + k for k in COCO17.limb_flip_permutation()]


def test_mirrored_samples_and_flip_double_agree():
    kp, scores = make_inputs(13, n=3)
    kwargs = dict(size=(20, 24), with_limbs=True)
    doubled = render(kp, scores, flip_double=True, **kwargs)
    mask = torch.tensor([True, False, True])
    for dense in (False, True):
        out = render(kp, scores, mirrored=mask, dense=dense, **kwargs)
        for n in range(3):
            assert np.array_equal(out[n], doubled[n, 1 if mask[n] else 0]), (dense, n)
    # mirroring twice is the identity
    perm = heatmap_channel_permutation(17, COCO17.flip_permutation(), True, COCO17.limbs)
    once = torch.from_numpy(doubled[:, 1])
    assert torch.equal(mirror_heatmaps(once, perm), torch.from_numpy(doubled[:, 0]))
    with pytest.raises(ValueError, match=r"mirrored must be a bool tensor \[N\] = \[3\].*shape \(2,\)"):
        render(kp, scores, mirrored=torch.tensor([True, False]), **kwargs)
    with pytest.raises(ValueError, match=r"mirrored must be a bool tensor.*dtype torch.int64"):
        render(kp, scores, mirrored=torch.tensor([1, 0, 1]), **kwargs)


def test_no_scores_means_ones():
    kp, _ = make_inputs(7, nan=False)
    out = render_heatmaps(torch.from_numpy(kp), None, size=(20, 24))
    ones = render_heatmaps(torch.from_numpy(kp), torch.ones(kp.shape[:-1]), size=(20, 24))
    assert torch.equal(out, ones)


def test_bfloat16_output():
    kp, scores = make_inputs(8)
    kwargs = dict(size=(20, 24), with_limbs=True, flip_double=True)
    out32 = render_heatmaps(torch.from_numpy(kp), torch.from_numpy(scores), **kwargs)
    out16 = render_heatmaps(torch.from_numpy(kp), torch.from_numpy(scores), dtype=torch.bfloat16, **kwargs)
    assert out16.dtype == torch.bfloat16
    assert (out16.float() - out32).abs().max() <= 1e-2
    # computed in float32 and rounded once (rounding is monotonic, so max then round == round then max)
    assert torch.equal(out16, out32.to(torch.bfloat16))


@pytest.mark.parametrize("mode", sorted(MODES))
def test_chunking_does_not_change_results(mode, monkeypatch):
    kp, scores = make_inputs(9, n=3, t=4)
    kwargs = dict(size=(20, 24), flip_double=True, **MODES[mode])
    whole = render(kp, scores, max_points_per_chunk=10**9, **kwargs)
    for points in (1, 50, 17 * 2 * 4 + 1, 17 * 2 * 9):
        assert np.array_equal(render(kp, scores, max_points_per_chunk=points, **kwargs), whole), points
    # limb patches split into one segment at a time
    monkeypatch.setattr(heatmaps_module, "_DEFAULT_ELEMENT_BUDGET", 1)
    assert np.array_equal(render(kp, scores, **kwargs), whole)


def test_shapes_and_channel_order():
    kp, scores = make_inputs(10, nan=False)
    kp_t, sc_t = torch.from_numpy(kp), torch.from_numpy(scores)
    n_limbs = len(COCO17.limbs)
    joints = render_heatmaps(kp_t, sc_t, size=(20, 24))
    limbs = render_heatmaps(kp_t, sc_t, size=(20, 24), with_joints=False, with_limbs=True)
    both = render_heatmaps(kp_t, sc_t, size=(20, 24), with_limbs=True)
    flipped = render_heatmaps(kp_t, sc_t, size=(20, 24), with_limbs=True, flip_double=True)
    assert joints.shape == (2, 17, 3, 20, 24) and joints.dtype == torch.float32
    assert limbs.shape == (2, n_limbs, 3, 20, 24)
    assert both.shape == (2, 17 + n_limbs, 3, 20, 24)
    assert flipped.shape == (2, 2, 17 + n_limbs, 3, 20, 24)
    assert torch.equal(both[:, :17], joints) and torch.equal(both[:, 17:], limbs)
    assert torch.equal(flipped[:, 0], both)


def test_flip_view_is_mirrored_and_swapped():
    kp = torch.zeros(1, 1, 1, 17, 2)
    scores = torch.zeros(1, 1, 1, 17)
    kp[0, 0, 0, 5] = torch.tensor([10.0, 7.0])  # left shoulder
    scores[0, 0, 0, 5] = 0.9
    kp[0, 0, 0, 0] = torch.tensor([0.0, 4.0])  # nose at x == 0, drawn at column 0
    scores[0, 0, 0, 0] = 0.7
    out = render_heatmaps(kp, scores, size=(16, 32), flip_double=True)
    right = COCO17.flip_permutation()[5]
    assert right == 6
    # the rendered volume is mirrored: column x -> 31 - x
    assert out[0, 1, right, 0, 7, 31 - 10].item() == pytest.approx(0.9)
    assert out[0, 1, 5].abs().max().item() == 0.0
    assert out[0, 1, 0, 0, 4, 31].item() == pytest.approx(0.7)
    assert torch.equal(out[0, 1, 0], out[0, 0, 0].flip(-1))
    assert torch.equal(out[0, 1, right], out[0, 0, 5].flip(-1))


def test_hand_checked_joint_values():
    kp = torch.zeros(1, 1, 1, 1, 2)
    kp[..., 0], kp[..., 1] = 10.0, 20.0
    out = render_heatmaps(kp, torch.full((1, 1, 1, 1), 0.5), size=(32, 40))[0, 0, 0]
    assert out.shape == (32, 40)
    # x window [int(8.2), int(11.8) + 1) = [8, 12), y window [18, 22); value 0.5 * exp(-d^2 / 0.72)
    assert out[20, 10].item() == pytest.approx(0.5, rel=1e-6)
    assert out[20, 11].item() == pytest.approx(0.5 * math.exp(-1 / (2 * 0.36)), rel=1e-6)
    assert out[20, 9].item() == pytest.approx(0.5 * math.exp(-1 / (2 * 0.36)), rel=1e-6)
    assert out[20, 8].item() == pytest.approx(0.5 * math.exp(-4 / (2 * 0.36)), rel=1e-5)
    assert out[21, 11].item() == pytest.approx(0.5 * math.exp(-2 / (2 * 0.36)), rel=1e-5)
    assert out[20, 12].item() == 0.0  # outside the window although exp(-4 / 0.72) > 0
    assert out[22, 10].item() == 0.0
    assert out[20, 7].item() == 0.0
    assert out[18, 10].item() == pytest.approx(0.5 * math.exp(-4 / (2 * 0.36)), rel=1e-5)
    assert int((out > 0).sum()) == 4 * 4


def test_negative_coordinates_truncate_toward_zero():
    kp = torch.tensor([-2.5, 5.0]).view(1, 1, 1, 1, 2)
    out = render_heatmaps(kp, torch.ones(1, 1, 1, 1), size=(10, 10))[0, 0, 0]
    # x window [max(int(-4.3), 0), int(-0.7) + 1) = [0, 1): pyskl still draws column 0
    assert out[5, 0].item() == pytest.approx(math.exp(-6.25 / 0.72), rel=1e-5)
    assert out[:, 1:].abs().max().item() == 0.0


def test_low_scores_are_not_drawn():
    kp = torch.full((1, 1, 1, 2, 2), 5.0)
    out = render_heatmaps(kp, torch.tensor([9.9e-4, 1e-3]).view(1, 1, 1, 2), size=(10, 10))[0, :, 0]
    assert out[0].abs().max().item() == 0.0
    assert out[1, 5, 5].item() == pytest.approx(1e-3)


def test_hand_checked_limb_values():
    kp = torch.zeros(1, 1, 1, 4, 2)
    kp[0, 0, 0, 0] = torch.tensor([5.0, 10.0])
    kp[0, 0, 0, 1] = torch.tensor([15.0, 10.0])
    kp[0, 0, 0, 2] = torch.tensor([7.0, 7.0])
    kp[0, 0, 0, 3] = torch.tensor([7.5, 7.5])  # |AB|^2 = 0.5 < 1
    scores = torch.tensor([1.0, 0.8, 0.9, 0.4]).view(1, 1, 1, 4)
    out = render_heatmaps(kp, scores, size=(20, 20), with_joints=False, with_limbs=True, limbs=[(0, 1), (2, 3)])
    seg, short = out[0, 0, 0], out[0, 1, 0]
    assert seg[10, 10].item() == pytest.approx(0.8)  # on the segment, value min(1, 0.8)
    assert seg[11, 10].item() == pytest.approx(0.8 * math.exp(-1 / 0.72), rel=1e-5)
    assert seg[10, 3].item() == pytest.approx(0.8 * math.exp(-4 / 0.72), rel=1e-5)  # 2 px before A
    assert seg[11, 16].item() == pytest.approx(0.8 * math.exp(-2 / 0.72), rel=1e-5)  # past B
    assert seg[12, 16].item() == 0.0  # window ends at int(10 + 1.8) + 1 = 12
    assert seg[10, 2].item() == 0.0  # window starts at int(5 - 1.8) = 3
    # zero-length limb: the joint heatmap of A with A's score (0.9), not min(0.9, 0.4)
    assert short[7, 7].item() == pytest.approx(0.9)
    assert short[7, 8].item() == pytest.approx(0.9 * math.exp(-1 / 0.72), rel=1e-5)


def test_persons_combine_by_max():
    kp = torch.tensor([[4.0, 4.0], [5.0, 4.0]]).view(1, 2, 1, 1, 2)
    out = render_heatmaps(kp, torch.tensor([0.5, 0.6]).view(1, 2, 1, 1), size=(10, 10))[0, 0, 0]
    assert out[4, 4].item() == pytest.approx(max(0.5, 0.6 * math.exp(-1 / 0.72)))
    assert out[4, 5].item() == pytest.approx(0.6)


def test_non_finite_points_are_missing():
    kp, scores = make_inputs(11, nan=False)
    bad = kp.copy()
    bad[0, 0, 0, 3] = np.nan
    bad[1, 1, 2, 8, 1] = np.inf
    bad_scores = scores.copy()
    bad_scores[0, 1, 1, 2] = np.nan
    masked = scores.copy()
    masked[0, 0, 0, 3] = 0
    masked[1, 1, 2, 8] = 0
    masked[0, 1, 1, 2] = 0
    kwargs = dict(size=(20, 24), with_limbs=True, flip_double=True)
    out = render(bad, bad_scores, **kwargs)
    assert np.isfinite(out).all()
    assert np.array_equal(out, render(np.nan_to_num(bad, posinf=0.0), masked, **kwargs))


def test_far_away_coordinates():
    kp = torch.tensor([[1e20, 5.0], [5.0, 5.0], [-1e30, -1e30]]).view(1, 1, 1, 3, 2)
    out = render_heatmaps(kp, torch.ones(1, 1, 1, 3), size=(10, 10), with_limbs=True, limbs=[(0, 1), (2, 1), (0, 2)])
    assert torch.isfinite(out).all()
    assert out[0, 0].abs().max().item() == 0.0 and out[0, 2].abs().max().item() == 0.0
    assert out[0, 1, 0, 5, 5].item() == pytest.approx(1.0)


@pytest.mark.parametrize(
    "kp_shape, score_shape, match",
    [
        ((2, 1, 3, 17), None, r"\[N, M, T, V, 2\]"),
        ((2, 1, 3, 17, 3), None, r"\[N, M, T, V, 2\]"),
        ((1, 2, 1, 3, 17, 2), None, r"\[N, M, T, V, 2\]"),
        ((2, 1, 3, 17, 2), (2, 1, 3, 16), r"\[N, M, T, V\]"),
        ((2, 1, 3, 17, 2), (2, 1, 3, 17, 1), r"\[N, M, T, V\]"),
    ],
)
def test_bad_shapes(kp_shape, score_shape, match):
    scores = None if score_shape is None else torch.ones(score_shape)
    with pytest.raises(ValueError, match=match):
        render_heatmaps(torch.zeros(kp_shape), scores, size=(8, 8))


def test_bad_arguments():
    kp = torch.zeros(1, 1, 2, 5, 2)
    with pytest.raises(ValueError, match="flip_permutation"):
        render_heatmaps(kp, size=(8, 8), flip_double=True)
    with pytest.raises(ValueError, match="limbs"):
        render_heatmaps(kp, size=(8, 8), with_limbs=True)
    with pytest.raises(ValueError, match="limbs"):
        render_heatmaps(kp, size=(8, 8), with_limbs=True, limbs=[(0, 5)])
    with pytest.raises(ValueError, match="permutation"):
        render_heatmaps(kp, size=(8, 8), flip_double=True, flip_permutation=[0, 1, 1, 3, 4])
    with pytest.raises(ValueError, match="size"):
        render_heatmaps(kp, size=(0, 8))
    with pytest.raises(ValueError, match="Nothing to render"):
        render_heatmaps(kp, size=(8, 8), with_joints=False)


def test_empty_batch():
    out = render_heatmaps(torch.zeros(0, 2, 4, 17, 2), size=(8, 8), with_limbs=True, flip_double=True)
    assert out.shape == (0, 2, 17 + len(COCO17.limbs), 4, 8, 8)
