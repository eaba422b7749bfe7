"""Pose extraction end to end on real video files (the astronaut photo, `tests/helpers.py`) with the real MediaPipe
estimator: inputs -> pose pickle -> `load_pose_dataset`, failures, resuming, shards and their merge, the command."""

import csv
import json
import os
import pickle
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from helpers import (
    ASTRONAUT_FACE,
    ASTRONAUT_SHOULDERS,
    REPO_ROOT,
    astronaut_frame_placements,
    write_astronaut_video,
    write_rotated_video,
    astronaut_frames,
    write_video,
)

from modeling_skeletonclip import load_pose_dataset, safe_load_pickle
from modeling_skeletonclip.cli import main as skeletonclip
from modeling_skeletonclip.extract_poses import (
    ExtractionInputError,
    NoPersonError,
    assign_splits,
    extract_poses,
    list_videos,
    merge_pose_pickles,
    shard_output_path,
    video_annotation,
)


# class -> [(file name, frames)]; short clips keep MediaPipe quick
CLASS_VIDEOS = {"jump": [("a.mp4", 8), ("b.avi", 6)], "wave": [("c.mp4", 7), ("sub/d.mp4", 6)]}
FRAMES = {f"{c}/{os.path.splitext(n)[0]}": k for c, videos in CLASS_VIDEOS.items() for n, k in videos}


def make_class_folders(root):
    for label, videos in CLASS_VIDEOS.items():
        for name, num_frames in videos:
            path = root / label / name
            path.parent.mkdir(parents=True, exist_ok=True)
            write_astronaut_video(str(path), num_frames=num_frames)
    return root


def inside(point, box, placement, margin=6.0):
    """Whether a frame pixel lies in a photo region `box` placed by `placement`, give or take `margin` pixels."""
    scale, x0, y0 = placement
    x, y = point
    return (x0 + scale * box[0] - margin <= x <= x0 + scale * box[2] + margin
            and y0 + scale * box[1] - margin <= y <= y0 + scale * box[3] + margin)


def assert_on_the_astronaut(keypoint, score, placements):
    """keypoint [M, T, 17, 2], score [M, T, 17]: one person whose nose is in the face and shoulders in the shoulder
    band in every frame (placements of the kept frames), her left shoulder (COCO 5) right of the nose in the image
    and her right shoulder left of it. Her right shoulder sits a little above the band (MediaPipe puts it at photo
    row ~175), hence the wider margin there."""
    assert keypoint.shape[0] >= 1 and keypoint.shape[1] == len(placements)
    person = int(np.argmax(score.mean(axis=(1, 2))))
    for t, placement in enumerate(placements):
        assert score[person, t].mean() > 0.3, t
        assert inside(keypoint[person, t, 0], ASTRONAUT_FACE, placement), (t, keypoint[person, t, 0])
        for joint in (5, 6):
            assert inside(keypoint[person, t, joint], ASTRONAUT_SHOULDERS, placement, margin=16), \
                (t, keypoint[person, t, joint])
        nose, left, right = keypoint[person, t, [0, 5, 6]]
        assert right[0] < nose[0] < left[0] and nose[1] < min(left[1], right[1]), (t, nose, left, right)


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def assert_same(a, b, where="pickle"):
    """Equal values: the same types, dict keys in the same order, arrays with equal dtype, shape and values."""
    assert type(a) is type(b), (where, type(a), type(b))
    if isinstance(a, dict):
        assert list(a) == list(b), where
        for key in a:
            assert_same(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape, where
        np.testing.assert_array_equal(a, b, err_msg=where)
    else:
        assert a == b, where


def assert_same_pickle(path, reference):
    assert_same(safe_load_pickle(path), safe_load_pickle(reference))


@pytest.fixture(scope="module")
def class_run(tmp_path_factory):
    """The class-folder input extracted once (4 videos), shared by the tests that read or rerun it."""
    base = tmp_path_factory.mktemp("extract")
    videos = make_class_folders(base / "videos")
    output = base / "out" / "poses.pkl"
    report = extract_poses(videos, output, progress=False)
    reference = base / "reference.pkl"  # a copy: later tests rewrite the output
    reference.write_bytes(read_bytes(output))
    return {"videos": videos, "output": output, "report": report, "reference": reference}


def test_class_folders_round_trip_through_load_pose_dataset(class_run, tmp_path):
    output, report = class_run["output"], class_run["report"]
    assert report["written"] == 4 and report["extracted"] == 4 and report["reused"] == 0 and report["failed"] == []
    label_map = output.parent / "poses_label_map.txt"
    assert label_map.read_text() == "jump\nwave\n"
    assert json.loads((output.parent / "poses_report.json").read_text())["written"] == 4

    dataset = load_pose_dataset(output, label_map=label_map, cache_dir=str(tmp_path / "cache"))
    assert sorted(dataset) == ["train", "val"]
    assert dataset["train"].features["label"].names == ["jump", "wave"]
    rows = {r["frame_dir"]: r for split in dataset.values() for r in split.with_format("numpy")}
    assert sorted(rows) == sorted(FRAMES)
    # stratified: one val video per class of two
    assert sorted(dataset["val"]["label"]) == [0, 1] and sorted(dataset["train"]["label"]) == [0, 1]
    for frame_dir, row in rows.items():
        assert row["label"] == (0 if frame_dir.startswith("jump/") else 1)
        assert list(row["img_shape"]) == [240, 320] and list(row["original_shape"]) == [240, 320]
        assert row["total_frames"] == FRAMES[frame_dir]
        m, t = int(row["num_person"]), int(row["total_frames"])
        assert 1 <= m <= 2
        keypoint = row["keypoint"].reshape(m, t, 17, 2)
        score = row["keypoint_score"].reshape(m, t, 17)
        assert_on_the_astronaut(keypoint, score, astronaut_frame_placements(t))


def test_the_pickle_holds_pyskl_annotations_with_fps(class_run):
    data = safe_load_pickle(class_run["output"])
    assert set(data) == {"split", "annotations", "extraction"}
    assert list(data["split"]) == ["train", "val"]
    assert sorted(data["split"]["train"] + data["split"]["val"]) == sorted(FRAMES)
    assert all(members == sorted(members) for members in data["split"].values())  # in list order
    for ann in data["annotations"]:
        assert set(ann) == {"frame_dir", "label", "img_shape", "original_shape", "total_frames", "keypoint",
                            "keypoint_score", "fps"}
        m, t = ann["keypoint"].shape[:2]
        assert ann["keypoint"].dtype == np.float32 and ann["keypoint"].shape == (m, t, 17, 2)
        assert ann["keypoint_score"].dtype == np.float32 and ann["keypoint_score"].shape == (m, t, 17)
        assert 0 <= ann["keypoint_score"].min() and ann["keypoint_score"].max() <= 1
        assert ann["fps"] == 10.0 and ann["img_shape"] == (240, 320) and ann["total_frames"] == t
    assert data["extraction"]["videos"] == sorted(FRAMES)
    with open(class_run["output"], "rb") as f:  # plain pickle (pyskl's reader) reads it too
        assert pickle.load(f)["split"] == data["split"]


def test_a_rerun_reuses_every_part_and_writes_the_same_pickle(class_run):
    parts = class_run["output"].parent / "poses.pkl.parts"
    mtimes = {p.name: p.stat().st_mtime_ns for p in parts.iterdir()}
    assert len(mtimes) == 4
    report = extract_poses(class_run["videos"], class_run["output"], progress=False)
    assert report["extracted"] == 0 and report["reused"] == 4 and report["written"] == 4
    assert {p.name: p.stat().st_mtime_ns for p in parts.iterdir()} == mtimes
    assert read_bytes(class_run["output"]) == read_bytes(class_run["reference"])


def test_changed_settings_do_not_reuse_parts(class_run, tmp_path):
    # a copy of the parts under another output: the same settings reuse them, other settings do not
    import shutil

    output = tmp_path / "poses.pkl"
    shutil.copytree(str(class_run["output"]) + ".parts", str(output) + ".parts")
    report = extract_poses(class_run["videos"], output, progress=False, shard=(0, 2))
    assert report["reused"] == 2 and report["extracted"] == 0
    report = extract_poses(class_run["videos"], output, progress=False, shard=(0, 2), max_persons=1)
    assert report["reused"] == 0 and report["extracted"] == 2


def test_shards_merged_equal_the_unsharded_run(class_run, tmp_path, capsys):
    # the shards share the unsharded run's parts folder (OUTPUT.parts), as shards on one machine do
    output = class_run["output"]
    shards = [shard_output_path(str(output), i, 2) for i in range(2)]
    for i in range(2):
        report = extract_poses(class_run["videos"], output, progress=False, shard=(i, 2))
        assert report["output"] == shards[i] and report["videos"] == 2
    assert [a["frame_dir"] for a in safe_load_pickle(shards[0])["annotations"]] == sorted(FRAMES)[0::2]
    merged = tmp_path / "merged.pkl"
    skeletonclip(["merge-poses", shards[1], shards[0], "--output", str(merged)])
    assert "Wrote" in capsys.readouterr().out
    assert_same_pickle(merged, class_run["reference"])
    assert (tmp_path / "merged_label_map.txt").read_text() == "jump\nwave\n"


def test_merge_refuses_a_missing_and_a_doubled_video(class_run, tmp_path):
    output = class_run["output"]
    shard0 = shard_output_path(str(output), 0, 2)
    if not os.path.exists(shard0):
        extract_poses(class_run["videos"], output, progress=False, shard=(0, 2))
    with pytest.raises(ExtractionInputError, match=r"2 of the 4 videos are in none .*: jump/b, wave/sub/d\."):
        merge_pose_pickles([shard0], tmp_path / "m.pkl")
    with pytest.raises(ExtractionInputError, match=r"more than one .*: jump/a \(poses.shard-0-of-2.pkl, poses.pkl\)"):
        merge_pose_pickles([shard0, output], tmp_path / "m.pkl")
    with pytest.raises(ExtractionInputError, match="more than one"):
        merge_pose_pickles([shard0, shard0], tmp_path / "m.pkl")
    assert not (tmp_path / "m.pkl").exists()


def test_a_csv_list_with_splits_and_a_label_map(class_run, tmp_path):
    import shutil

    videos = class_run["videos"]
    listing = videos / "list.csv"
    with open(listing, "w", newline="") as f:
        csv.writer(f).writerows([["path", "label", "split"], ["wave/c.mp4", "wave", "xsub_train"],
                                 ["jump/a.mp4", "jump", "xsub_test"], [str(videos / "wave/sub/d.mp4"), "wave", "xsub_train"]])
    output = tmp_path / "listed.pkl"
    # the list's folder is the class run's root, so its parts (same paths and settings) are reused
    shutil.copytree(str(class_run["output"]) + ".parts", str(output) + ".parts")
    names = tmp_path / "names.txt"
    names.write_text("run\nwave\njump\n")
    report = extract_poses(listing, output, label_map=names, progress=False)
    assert report["reused"] == 3 and report["written"] == 3
    data = safe_load_pickle(output)
    assert data["split"] == {"xsub_train": ["wave/c", "wave/sub/d"], "xsub_test": ["jump/a"]}
    assert {a["frame_dir"]: a["label"] for a in data["annotations"]} == {"jump/a": 2, "wave/c": 1, "wave/sub/d": 1}
    assert (tmp_path / "listed_label_map.txt").read_text() == "run\nwave\njump\n"
    dataset = load_pose_dataset(output, label_map=tmp_path / "listed_label_map.txt", cache_dir=str(tmp_path / "c"))
    assert dataset["xsub_test"][0]["frame_dir"] == "jump/a" and dataset["xsub_test"][0]["label"] == 2
    # without --label_map: the sorted names of the list
    listing.write_text("jump/a.mp4,jump\nwave/c.mp4,wave\n")
    assert list_videos(listing).label_names == ["jump", "wave"]


def test_target_fps_and_a_rotated_video(tmp_path):
    path, placements = write_astronaut_video(str(tmp_path / "fast.mp4"), num_frames=12, fps=20)
    from modeling_skeletonclip.pose_estimators import build_pose_estimator

    estimator = build_pose_estimator("mediapipe")
    try:
        ann = video_annotation(path, estimator, target_fps=10, label=3, frame_dir="fast")
        assert ann["total_frames"] == 6 and ann["fps"] == 10.0 and ann["label"] == 3 and ann["frame_dir"] == "fast"
        assert_on_the_astronaut(ann["keypoint"], ann["keypoint_score"], placements[0::2])
        # a phone video: portrait frames stored turned, with display rotation; keypoints are upright pixels
        upright = astronaut_frames(4, width=240, height=320)  # [320, 240, 3]
        rotated = write_rotated_video(str(tmp_path / "phone.mp4"), upright, rotation=90)
        ann = video_annotation(rotated, estimator, target_fps=50)  # above the source rate: every frame
        assert ann["img_shape"] == (320, 240) and ann["original_shape"] == (320, 240)
        assert ann["total_frames"] == 4 and ann["fps"] == 10.0 and ann["frame_dir"] == "phone" and ann["label"] == -1
        assert_on_the_astronaut(ann["keypoint"], ann["keypoint_score"], astronaut_frame_placements(4, 240, 320))
    finally:
        estimator.close()


def test_failed_videos_are_reported_by_name_and_retried(tmp_path, capsys):
    folder = tmp_path / "clips"
    folder.mkdir()
    write_astronaut_video(str(folder / "good.mp4"), num_frames=5)
    write_astronaut_video(str(folder / "cut.mp4"), num_frames=30)
    whole = read_bytes(folder / "cut.mp4")
    (folder / "cut.mp4").write_bytes(whole[: len(whole) // 2])  # truncated
    (folder / "empty.mp4").write_bytes(b"")
    (folder / "noise.mp4").write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    write_video(str(folder / "grey.mp4"), [np.full((240, 320, 3), 90, np.uint8)] * 4)
    output = tmp_path / "poses.pkl"
    skeletonclip(["extract-poses", str(folder), str(output), "--no_progress"])  # exit status 0: no SystemExit
    out = capsys.readouterr().out
    assert "1 of 5 videos" in out and "4 video(s) failed" in out
    failed = ("cut.mp4", "empty.mp4", "grey.mp4", "noise.mp4")
    lines = [line for line in out.splitlines() if line.startswith("  ")]
    assert [line.split(": ")[0] for line in lines] == [f"  {folder / n}" for n in failed], out
    report = json.loads((tmp_path / "poses_report.json").read_text())
    assert [f["path"] for f in report["failed"]] == [str(folder / n) for n in failed]
    reasons = {f["frame_dir"]: f["reason"] for f in report["failed"]}
    assert reasons["grey"] == "no person found in any of its 4 frames."
    assert reasons["empty"] == "empty file (0 bytes)"
    assert all(reasons[k] and str(folder) not in reasons[k] for k in ("cut", "noise")), reasons
    assert lines == [f"  {folder / n}: {reasons[os.path.splitext(n)[0]]}" for n in failed]
    data = safe_load_pickle(output)
    assert data["split"] == {"test": ["good"]}  # unlabeled: one split
    assert [a["frame_dir"] for a in data["annotations"]] == ["good"] and data["annotations"][0]["label"] == 0
    assert (tmp_path / "poses_label_map.txt").read_text() == "unlabeled\n"
    assert sorted(data["extraction"]["failed"]) == ["cut", "empty", "grey", "noise"]
    # a rerun retries the failures and reuses the good video; --strict makes any failure exit 1
    with pytest.raises(SystemExit) as exit_info:
        skeletonclip(["extract-poses", str(folder), str(output), "--no_progress", "--strict"])
    assert exit_info.value.code == 1
    report = json.loads((tmp_path / "poses_report.json").read_text())
    assert report["reused"] == 1 and len(report["failed"]) == 4
    # fixed videos are picked up
    write_astronaut_video(str(folder / "empty.mp4"), num_frames=4)
    report = extract_poses(folder, output, progress=False)
    assert report["extracted"] == 1 and report["reused"] == 1 and report["written"] == 2
    assert safe_load_pickle(output)["split"] == {"test": ["empty", "good"]}


def test_no_video_extracted_exits_1_after_writing_the_pickle(tmp_path, capsys):
    touch(tmp_path / "clips" / "empty.mp4")
    with pytest.raises(SystemExit) as exit_info:
        skeletonclip(["extract-poses", str(tmp_path / "clips"), str(tmp_path / "poses.pkl"), "--no_progress"])
    assert exit_info.value.code == 1
    assert f"  {tmp_path / 'clips' / 'empty.mp4'}: empty file (0 bytes)" in capsys.readouterr().out.splitlines()
    assert safe_load_pickle(tmp_path / "poses.pkl")["annotations"] == []


def test_no_person_error_names_the_file(tmp_path):
    path = write_video(str(tmp_path / "grey.mp4"), [np.full((64, 64, 3), 90, np.uint8)] * 2)
    with pytest.raises(NoPersonError, match=r"grey\.mp4: no person found in any of its 2 frames"):
        video_annotation(path)


# ------------------------------------------------------------------------------------------------------------------
# The video list, without estimating
# ------------------------------------------------------------------------------------------------------------------


def touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def test_inputs_and_their_errors(tmp_path):
    root = tmp_path / "root"
    for name in ("b/x.mp4", "a/y.MOV", "a/deep/z.webm", "a/notes.txt", ".hidden/w.mp4"):
        touch(root / name)
    listed = list_videos(root)
    assert [v.frame_dir for v in listed.videos] == ["a/deep/z", "a/y", "b/x"]
    assert listed.label_names == ["a", "b"] and [listed.label(v) for v in listed.videos] == [0, 0, 1]
    with pytest.raises(ExtractionInputError, match=r"class\(es\) 'b' are not in --label_map"):
        list_videos(root, label_map=["a", "c"])

    touch(root / "b" / "x.avi")
    with pytest.raises(ExtractionInputError, match=r"b/x\.avi and .*b/x\.mp4 would both be frame_dir 'b/x'"):
        list_videos(root)
    (root / "b" / "x.avi").unlink()
    touch(root / "loose.mp4")
    with pytest.raises(ExtractionInputError, match="holds videos .*loose.mp4.* and class folders"):
        list_videos(root)
    (root / "loose.mp4").unlink()
    (root / "empty").mkdir()
    with pytest.raises(ExtractionInputError, match=r"class folder\(s\) empty hold no videos"):
        list_videos(root)
    with pytest.raises(ExtractionInputError, match="holds no videos"):
        list_videos(root / "empty")
    with pytest.raises(ExtractionInputError, match="does not exist"):
        list_videos(root / "nothing")
    single = list_videos(root / "b" / "x.mp4")
    assert [v.frame_dir for v in single.videos] == ["x"] and not single.labeled and single.label_names == ["unlabeled"]

    rows = tmp_path / "rows.json"
    rows.write_text(json.dumps([{"path": "root/b/x.mp4", "label": "b", "split": "s1"}, ["root/a/y.MOV", "a", "s2"]]))
    listed = list_videos(rows)
    assert [(v.frame_dir, v.label_name, v.split) for v in listed.videos] == [("root/a/y", "a", "s2"),
                                                                            ("root/b/x", "b", "s1")]
    assert assign_splits(listed) == {"s2": ["root/a/y"], "s1": ["root/b/x"]}
    rows.write_text(json.dumps([{"path": "root/b/x.mp4", "label": "b", "split": "s1"}, ["root/a/y.MOV", "a"]]))
    with pytest.raises(ExtractionInputError, match=r"rows.json, entry #1: has no split while other rows have one"):
        list_videos(rows)
    bad = tmp_path / "bad.csv"
    bad.write_text("root/b/x.mp4,b\nroot/a/y.MOV\n")
    with pytest.raises(ExtractionInputError, match=r"bad.csv, line 2: expected path,label\[,split\]"):
        list_videos(bad)


def test_the_stratified_split(tmp_path):
    counts = {"one": 1, "two": 2, "five": 5, "twelve": 12}
    for name, n in counts.items():
        for k in range(n):
            touch(tmp_path / name / f"{k:02d}.mp4")
    listed = list_videos(tmp_path)
    splits = assign_splits(listed, val_ratio=0.2, seed=0)
    val_per_class = {name: sum(fd.startswith(name + "/") for fd in splits["val"]) for name in counts}
    assert val_per_class == {"one": 0, "two": 1, "five": 1, "twelve": 2}
    assert sorted(splits["train"] + splits["val"]) == sorted(v.frame_dir for v in listed.videos)
    assert assign_splits(listed, val_ratio=0.2, seed=0) == splits  # seeded
    other = assign_splits(listed, val_ratio=0.2, seed=1)
    assert other != splits and len(other["val"]) == len(splits["val"])
    assert assign_splits(listed, val_ratio=0.0)["val"] == []
    train = assign_splits(listed, val_ratio=0.9)["train"]  # every class keeps one train video
    assert {name: sum(fd.startswith(name + "/") for fd in train) for name in counts} == dict.fromkeys(counts, 1)
    with pytest.raises(ExtractionInputError, match=r"--val_ratio must be in \[0, 1\)"):
        assign_splits(listed, val_ratio=1.0)


@pytest.mark.parametrize(
    "args, message",
    [
        (["nothing_here", "out.pkl"], "error: Input nothing_here does not exist."),
        (["{videos}", "out.pkl", "--shard", "2/2"], "error: --shard 2/2: needs 0 <= i < n."),
        (["{videos}", "out.pkl", "--shard", "two"], "error: --shard must be i/n (e.g. 0/4); got 'two'."),
        (["{videos}", "out.pkl", "--val_ratio", "1"], "error: --val_ratio must be in [0, 1); got 1.0."),
        (["{videos}", "out.pkl", "--estimator", "openpose"],
         "error: --estimator 'openpose' is unknown; choose from mediapipe, rtmlib, yolo."),
        (["{videos}", "out.pkl", "--num_workers", "0"], "error: --num_workers must be a positive integer; got 0."),
        (["{videos}", "out.pkl", "--target_fps", "-5"],
         "error: --target_fps: target_fps must be a positive number; got -5.0."),
        (["{videos}", "out.pkl", "--max_persons", "0"], "error: --max_persons must be a positive integer; got 0."),
    ],
)
def test_bad_arguments_are_one_line_and_exit_status_2(tmp_path, capsys, args, message):
    touch(tmp_path / "videos" / "jump" / "a.mp4")
    os.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        skeletonclip(["extract-poses"] + [a.format(videos=tmp_path / "videos") for a in args])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.splitlines() == [message]
    assert not (tmp_path / "out.pkl").exists()


def test_merge_of_a_foreign_pickle_is_one_line(tmp_path, capsys):
    from modeling_skeletonclip.synthetic_poses import write_synthetic_poses

    write_synthetic_poses(str(tmp_path / "poses.pkl"), num_train_per_class=1, num_val_per_class=1)
    with pytest.raises(SystemExit) as exit_info:
        skeletonclip(["merge-poses", str(tmp_path / "poses.pkl"), "--output", str(tmp_path / "m.pkl")])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: {tmp_path / 'poses.pkl'} was not written by extract-poses (it has no 'extraction' record of its "
        f"video list)."
    ]


# ------------------------------------------------------------------------------------------------------------------
# Processes (each starts Python with the package and MediaPipe)
# ------------------------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_resume_after_a_kill_equals_an_uninterrupted_run(class_run, tmp_path):
    output = tmp_path / "poses.pkl"
    parts = tmp_path / "poses.pkl.parts"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([REPO_ROOT, os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.Popen([sys.executable, "-m", "modeling_skeletonclip", "extract-poses", str(class_run["videos"]),
                             str(output), "--no_progress"], env=env, cwd=str(tmp_path),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while not (parts.is_dir() and any(p.suffix == ".pkl" for p in parts.iterdir())):
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stderr.close()
    assert not output.exists()
    done = sum(p.suffix == ".pkl" for p in parts.iterdir())
    assert 1 <= done < 4
    report = extract_poses(class_run["videos"], output, progress=False)
    assert report["reused"] == done and report["extracted"] == 4 - done
    assert_same_pickle(output, class_run["reference"])


@pytest.mark.slow
def test_two_workers_write_the_same_pickle(class_run, tmp_path):
    output = tmp_path / "poses.pkl"
    report = extract_poses(class_run["videos"], output, num_workers=2, progress=False)
    assert report["extracted"] == 4
    assert_same_pickle(output, class_run["reference"])
