import importlib.util
import os
import pickle
from collections import Counter

import numpy as np
import pytest

from modeling_skeletonclip.pose_dataset import load_pose_dataset, safe_load_pickle
from modeling_skeletonclip.synthetic_poses import SYNTHETIC_CLASS_NAMES, make_synthetic_poses, write_synthetic_poses

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def small():
    return make_synthetic_poses(num_train_per_class=3, num_val_per_class=2, seed=0)


def test_deterministic(small):
    again = make_synthetic_poses(num_train_per_class=3, num_val_per_class=2, seed=0)
    assert pickle.dumps(small) == pickle.dumps(again)
    other = make_synthetic_poses(num_train_per_class=3, num_val_per_class=2, seed=1)
    assert not np.array_equal(small["annotations"][0]["keypoint"], other["annotations"][0]["keypoint"]) or \
        small["annotations"][0]["keypoint"].shape != other["annotations"][0]["keypoint"].shape
    # more clips per class do not change the earlier ones
    bigger = make_synthetic_poses(num_train_per_class=4, num_val_per_class=2, seed=0)
    by_dir = {a["frame_dir"]: a for a in bigger["annotations"]}
    for a in small["annotations"]:
        np.testing.assert_array_equal(a["keypoint"], by_dir[a["frame_dir"]]["keypoint"])


def test_format_balance_and_splits(small):
    names = SYNTHETIC_CLASS_NAMES
    assert len(names) >= 10 and len(set(names)) == len(names)
    train, val = small["split"]["train"], small["split"]["val"]
    assert set(small["split"]) == {"train", "val"}
    assert not set(train) & set(val)
    anns = {a["frame_dir"]: a for a in small["annotations"]}
    assert len(anns) == len(small["annotations"]) == len(train) + len(val)
    assert Counter(anns[f]["label"] for f in train) == {k: 3 for k in range(len(names))}
    assert Counter(anns[f]["label"] for f in val) == {k: 2 for k in range(len(names))}
    persons = Counter()
    for a in small["annotations"]:
        m, t, v, c = a["keypoint"].shape
        assert v == 17 and c == 2 and 30 <= t <= 90 and m in (1, 2)
        assert a["keypoint_score"].shape == (m, t, v)
        assert a["total_frames"] == t and tuple(a["img_shape"]) == (480, 640)
        sc = a["keypoint_score"].astype(np.float32)
        present = sc > 0
        assert ((sc >= 0.3) | ~present).all() and (sc <= 1).all()
        assert (a["keypoint"][~present] == 0).all()  # missing joints: coordinates 0, score 0
        assert present.mean() > 0.95
        kp = a["keypoint"].astype(np.float32)[present]
        assert (kp[:, 0] > -100).all() and (kp[:, 0] < 740).all() and (kp[:, 1] > -50).all() and (kp[:, 1] < 500).all()
        persons[m] += 1
        if "other person" in SYNTHETIC_CLASS_NAMES[a["label"]] or SYNTHETIC_CLASS_NAMES[a["label"]] == "shake hands":
            assert m == 2


def test_motion_is_class_specific(small):
    """Sanity: the moving joints differ by class (raising an arm moves a wrist far above the shoulders)."""
    anns = [a for a in small["annotations"] if SYNTHETIC_CLASS_NAMES[a["label"]] == "raise one arm"]
    for a in anns:
        kp = a["keypoint"].astype(np.float32)  # [M, T, 17, 2]; a bystander may come first
        ok = (kp[..., [9, 10], 1] > 0).all(-1) & (kp[..., [5, 6], 1] > 0).all(-1)
        wrist_above = kp[..., [9, 10], 1].min(-1) < kp[..., [5, 6], 1].min(-1) - 20
        assert (wrist_above & ok).any()


def test_write_and_load(tmp_path):
    path = write_synthetic_poses(tmp_path / "syn" / "poses.pkl")
    assert os.path.getsize(path) < 5 * 2**20
    label_map = tmp_path / "syn" / "labels.txt"
    assert label_map.read_text().splitlines() == SYNTHETIC_CLASS_NAMES
    data = safe_load_pickle(path)  # no globals beyond numpy
    assert len(data["split"]["train"]) == 30 * len(SYNTHETIC_CLASS_NAMES)
    dd = load_pose_dataset(path, label_map=str(label_map), cache_dir=str(tmp_path / "cache"))
    assert set(dd) == {"train", "val"}
    assert dd["train"].num_rows == 30 * len(SYNTHETIC_CLASS_NAMES)
    assert dd["val"].num_rows == 10 * len(SYNTHETIC_CLASS_NAMES)
    assert dd["train"].features["label"].names == SYNTHETIC_CLASS_NAMES
    row = dd["val"].with_format("numpy")[5]
    m, t = int(row["num_person"]), int(row["total_frames"])
    assert row["keypoint"].shape == (m * t, 17, 2) and row["keypoint"].dtype == np.float32


def test_cli(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("make_synthetic_poses", os.path.join(REPO, "scripts", "make_synthetic_poses.py"))
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    out = tmp_path / "cli" / "poses.pkl"
    cli.main(["--output", str(out), "--num-train-per-class", "2", "--num-val-per-class", "1", "--seed", "3"])
    assert "Wrote" in capsys.readouterr().out
    data = safe_load_pickle(str(out))
    expected = make_synthetic_poses(num_train_per_class=2, num_val_per_class=1, seed=3)
    assert pickle.dumps(data) == pickle.dumps(expected)
    assert (tmp_path / "cli" / "labels.txt").read_text().splitlines() == SYNTHETIC_CLASS_NAMES


def test_classes_interleave_so_the_first_rows_cover_every_class():
    from modeling_skeletonclip.synthetic_poses import SYNTHETIC_CLASS_NAMES, make_synthetic_poses

    data = make_synthetic_poses(num_train_per_class=2, num_val_per_class=2)
    by_dir = {a["frame_dir"]: a["label"] for a in data["annotations"]}
    n = len(SYNTHETIC_CLASS_NAMES)
    for split in ("train", "val"):
        assert sorted(by_dir[d] for d in data["split"][split][:n]) == list(range(n))
