"""`skeletonclip visualize`: the files it writes for a clip of a synthetic pose pickle and of a real video (real
MediaPipe), checked against the model's own heatmap preparation, the independent heatmap oracle, the pipeline's
ranking and the model's PACL frame weights; and its one-line errors."""

import json
import os

import numpy as np
import pytest
import torch
from helpers import reference_heatmaps, tiny_recognition_pipeline, write_astronaut_video
from PIL import Image

from modeling_skeletonclip import PoseClipTransform, PoseDataError, SkeletonClipModel, load_pose_dataset
from modeling_skeletonclip.cli import main
from modeling_skeletonclip.clip_dataset import PoseClipDataset
from modeling_skeletonclip.synthetic_poses import write_synthetic_poses
from modeling_skeletonclip.visualize import PERSON_COLORS, colorize, heatmap_grid_values

pytestmark = pytest.mark.usefixtures("torch_one_thread")

# The PACL model's heatmaps differ from every default: limbs and joints, its own sizes and sigma.
PACL_HEATMAPS = {"train_size": [16, 16], "eval_size": [20, 20], "sigma": 0.8, "with_joints": True,
                 "with_limbs": True}
TWO_PERSON_INDEX = 12  # val clip 12 of the synthetic set: "shake hands", two persons


@pytest.fixture(scope="module")
def poses(tmp_path_factory):
    folder = tmp_path_factory.mktemp("poses")
    path = write_synthetic_poses(str(folder / "poses.pkl"), num_train_per_class=1, num_val_per_class=1)
    args = ["--train_file", path, "--label_map", str(folder / "labels.txt"), "--dataset_cache_dir",
            str(folder / "cache")]
    dataset = load_pose_dataset(path, label_map=str(folder / "labels.txt"), cache_dir=str(folder / "cache"))
    return {"path": path, "args": args, "dataset": dataset}


@pytest.fixture(scope="module")
def models(tmp_path_factory, minilm_tokenizer):
    """Tiny saved models: "pacl" (its own heatmap config) and "itc"."""
    folder = tmp_path_factory.mktemp("models")
    tiny_recognition_pipeline(minilm_tokenizer, objective="pacl", heatmap_config=PACL_HEATMAPS).save_pretrained(
        str(folder / "pacl"))
    tiny_recognition_pipeline(minilm_tokenizer).save_pretrained(str(folder / "itc"))
    return {"pacl": str(folder / "pacl"), "itc": str(folder / "itc")}


def run_visualize(capsys, *argv):
    status = main(["visualize", *argv])
    out, err = capsys.readouterr()
    assert status == 0, err
    written = [line[len("Wrote "):] for line in out.splitlines() if line.startswith("Wrote ")]
    assert written and all(os.path.isfile(path) for path in written)
    return written


def png(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def gif_frames(path) -> int:
    with Image.open(path) as image:
        return image.n_frames


def grid_shape(count, tile_h, tile_w, columns, gap=2):
    rows = -(-count // columns)
    return rows * tile_h + (rows - 1) * gap, columns * tile_w + (columns - 1) * gap


def has_color(image, color) -> bool:
    return bool(np.all(image == np.asarray(color, dtype=np.uint8), axis=-1).any())


def test_a_pickle_clip_with_a_pacl_model(poses, models, tmp_path, capsys):
    from transformers import pipeline

    out = tmp_path / "out"
    written = run_visualize(capsys, *poses["args"], "--split", "val", "--index", str(TWO_PERSON_INDEX),
                            "--model_name_or_path", models["pacl"], "--output_dir", str(out), "--num_frames", "6",
                            "--gif_frames", "10", "--tile_size", "128")
    names = {os.path.basename(path) for path in written}
    assert {"keypoints.png", "keypoints.gif", "frame_weights.png", "frame_weights.json"} <= names
    for view in ("train", "test", "test_flip"):
        assert {f"heatmaps_{view}{ext}" for ext in (".npy", ".png", "_channels.png", ".gif")} <= names

    split = poses["dataset"]["val"]
    row = split.with_format("numpy")[TWO_PERSON_INDEX]
    h, w = (float(v) for v in row["img_shape"])
    tile_h, tile_w = round(h * 128 / max(h, w)), round(w * 128 / max(h, w))

    # Keypoints: 6 of 70 frames, 4 a row, both persons drawn in their own colours on the blank canvas; 10 GIF frames.
    keypoints = png(out / "keypoints.png")
    assert keypoints.shape[:2] == grid_shape(6, tile_h, tile_w, 4)
    assert has_color(keypoints, PERSON_COLORS[0]) and has_color(keypoints, PERSON_COLORS[1])
    assert not has_color(keypoints, PERSON_COLORS[2])
    assert gif_frames(out / "keypoints.gif") == 10

    # The volumes are what the model itself renders from each view: train = the training command's augmentation
    # of this clip (PoseClipDataset with seed 42, epoch 0), test = the pipeline's first clip and its mirror.
    model = SkeletonClipModel.from_pretrained(models["pacl"])
    config = model.config
    transform = PoseClipTransform("train", seed=42, clip_len=8, train_size=(16, 16), eval_size=(20, 20),
                                  layout=config.heatmap_config.layout)
    train = PoseClipDataset(split, transform, seed=42)[TWO_PERSON_INDEX]
    recognizer = pipeline("skeleton-action-recognition", model=model, tokenizer=model.tokenizer)
    test = next(iter(recognizer.preprocess(row, flip=True)))  # [1, 2, M, 8, V, 2]
    with torch.no_grad():
        model.train()
        expected_train, _ = model.prepare_heatmaps(torch.from_numpy(train["keypoints"])[None],
                                                   torch.from_numpy(train["keypoint_scores"])[None])
        model.eval()
        expected_test, _ = model.prepare_heatmaps(test["keypoints"], test["keypoint_scores"],
                                                  mirrored=test["mirrored"])
    expected = {"train": expected_train[0], "test": expected_test[0], "test_flip": expected_test[1]}
    for view, volume in expected.items():
        saved = np.load(out / f"heatmaps_{view}.npy")
        size = 16 if view == "train" else 20
        assert saved.shape == (34, 8, size, size) and saved.dtype == np.float32
        assert torch.equal(torch.from_numpy(saved), volume), view
        assert saved.max() > 0.5
        # The PNG shows these values: 8 frames in a row, each pixel a 6x6 (16 px) or 5x5 (20 px) block.
        image = png(out / f"heatmaps_{view}.png")
        assert image.shape[:2] == grid_shape(8, 96 if size == 16 else 100, 96 if size == 16 else 100, 8)
        sums = volume.numpy().sum(axis=0)
        np.testing.assert_array_equal(image, colorize(heatmap_grid_values(volume.numpy()), max(1.0, sums.max())))
        channels = png(out / f"heatmaps_{view}_channels.png")  # 34 channels, 6 a row, a 16 px caption on each
        tile = 96 if size == 16 else 100
        assert channels.shape[:2] == grid_shape(34, tile + 16, tile, 6)
        assert gif_frames(out / f"heatmaps_{view}.gif") == 8
    assert not np.array_equal(np.load(out / "heatmaps_test.npy"), np.load(out / "heatmaps_test_flip.npy"))

    # Frame weights: the pipeline's 5 best classes, each a softmax over the temporal steps, as the model computes.
    data = json.load(open(out / "frame_weights.json"))
    ranked = recognizer(row, top_k=5)
    assert data["labels"] == [p["label"] for p in ranked]
    np.testing.assert_allclose(data["scores"], [p["score"] for p in ranked], rtol=1e-5)
    weights = np.asarray(data["weights"])
    assert weights.shape == (5, 4)  # 8 frames, temporal stride 2
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, rtol=1e-5)
    clip = PoseClipTransform("test", num_clips=1, clip_len=8, eval_size=(20, 20))(row)
    tokens = model.tokenizer(data["labels"], padding=True, return_tensors="pt")
    with torch.no_grad():
        texts = torch.nn.functional.normalize(model.get_text_features(**tokens).pooler_output, dim=-1)
        _, own = model.score_all_classes(keypoints=torch.from_numpy(clip["keypoints"])[None],
                                         keypoint_scores=torch.from_numpy(clip["keypoint_scores"])[None],
                                         class_text_embeds=texts, output_frame_weights=True)
    np.testing.assert_allclose(weights, own[0].numpy(), rtol=1e-5, atol=1e-7)
    assert [len(frames) for frames in data["source_frames"]] == [2, 2, 2, 2]
    plot = png(out / "frame_weights.png")
    assert plot.shape[:2] == (320, 700) and len(np.unique(plot.reshape(-1, 3), axis=0)) > 10


def test_candidate_labels_choose_the_plotted_texts(poses, models, tmp_path):
    from modeling_skeletonclip.visualize import clip_from_pose_file, load_recognizer, write_frame_weights

    clip = clip_from_pose_file(poses["path"], split="val", index=0, cache_dir=poses["args"][-1])
    labels = ["wave hand", "jump up", "sit down"]
    write_frame_weights(load_recognizer(models["pacl"]), clip, str(tmp_path), clip_len=8, candidate_labels=labels)
    data = json.load(open(tmp_path / "frame_weights.json"))
    assert sorted(data["labels"]) == sorted(labels)
    assert data["scores"] == sorted(data["scores"], reverse=True)
    np.testing.assert_allclose(np.asarray(data["weights"]).sum(axis=1), 1.0, rtol=1e-5)


def test_frame_dir_with_the_preset_renders_what_the_oracle_renders(poses, tmp_path, capsys):
    out = tmp_path / "out"
    written = run_visualize(capsys, *poses["args"], "--frame_dir", "synth_val_c03_0000", "--preset", "small",
                            "--output_dir", str(out))
    assert not any("frame_weights" in path for path in written)  # no model, no weights
    row = poses["dataset"]["val"].with_format("numpy")[3]
    assert row["frame_dir"] == "synth_val_c03_0000"
    # The small preset: 32 frames, 24x24 joint heatmaps, sigma 0.6; the test view against the numpy oracle.
    clip = PoseClipTransform("test", num_clips=1, clip_len=32, eval_size=(24, 24))(row)
    oracle = reference_heatmaps(clip["keypoints"], clip["keypoint_scores"], size=(24, 24), sigma=0.6)[0]
    saved = np.load(out / "heatmaps_test.npy")
    assert saved.shape == (17, 32, 24, 24)
    np.testing.assert_allclose(saved, oracle, atol=1e-5)
    assert np.load(out / "heatmaps_train.npy").shape == (17, 32, 24, 24)
    keypoints = png(out / "keypoints.png")
    assert has_color(keypoints, PERSON_COLORS[0]) and not has_color(keypoints, PERSON_COLORS[1])  # one person
    assert gif_frames(out / "keypoints.gif") == min(48, int(row["total_frames"]))  # at most 48 frames shown


def test_a_real_video_with_mediapipe(tmp_path, capsys):
    video, _ = write_astronaut_video(str(tmp_path / "astronaut.mp4"), num_frames=12, fps=10)
    out = tmp_path / "out"
    run_visualize(capsys, "--video", video, "--preset", "small", "--output_dir", str(out))
    keypoints = png(out / "keypoints.png")
    assert keypoints.shape[:2] == grid_shape(8, 192, 256, 4)  # 320x240 frames at 256 px, 8 of 12 frames
    assert has_color(keypoints, PERSON_COLORS[0])  # MediaPipe's person, drawn
    assert keypoints[:192, :256].std() > 20  # the video's frame, not a blank canvas
    assert gif_frames(out / "keypoints.gif") == 12
    test = np.load(out / "heatmaps_test.npy")
    assert test.shape == (17, 32, 24, 24) and test.max() > 0.1


def test_an_annotation_dict_with_missing_joints(models, tmp_path):
    """The Python API on a pipeline-style annotation: joints at (0, 0) without scores are missing, left out of the
    images, and render nothing; the test views are the pipeline's."""
    from transformers import pipeline

    from modeling_skeletonclip.visualize import clip_from_annotation, visualize_clip

    rng = np.random.default_rng(0)
    keypoint = (rng.random((10, 17, 2)) * [60, 80] + [20, 10]).astype(np.float32)  # [T, V, 2], one person
    keypoint[:, 9:] = 0  # wrists, hips, knees, ankles missing throughout
    keypoint[4] = 0  # frame 4: nobody
    annotation = {"keypoint": keypoint, "img_shape": (100, 100), "frame_dir": "by hand"}
    clip = clip_from_annotation(annotation)
    assert clip.keypoint.shape == (1, 10, 17, 2) and clip.keypoint_score[0, :, 9:].max() == 0
    model = SkeletonClipModel.from_pretrained(models["itc"])
    recognizer = pipeline("skeleton-action-recognition", model=model, tokenizer=model.tokenizer)
    out = tmp_path / "out"
    written = visualize_clip(clip, str(out), model.config.heatmap_config, clip_len=8, recognizer=recognizer,
                             num_frames=10, columns=5, tile_size=100)
    assert not any("frame_weights" in path for path in written)  # not PACL: no weights by default

    keypoints = png(out / "keypoints.png")
    assert keypoints.shape[:2] == grid_shape(10, 100, 100, 5)
    tiles = [keypoints[r * 102 : r * 102 + 100, c * 102 : c * 102 + 100] for r in range(2) for c in range(5)]
    assert has_color(tiles[0], PERSON_COLORS[0]) and not has_color(tiles[4], PERSON_COLORS[0])  # frame 4: empty

    test = next(iter(recognizer.preprocess(annotation, flip=True)))
    with torch.no_grad():
        expected, _ = model.prepare_heatmaps(test["keypoints"], test["keypoint_scores"],
                                             mirrored=test["mirrored"])  # [2, 17, 8, 16, 16]
    for view, volume in zip(("test", "test_flip"), expected):
        saved = np.load(out / f"heatmaps_{view}.npy")
        assert torch.equal(torch.from_numpy(saved), volume)
        assert saved[9:].max() == 0 and saved[:9].max() > 0.5  # the missing joints render nothing


def test_a_bad_annotation_names_the_field():
    from modeling_skeletonclip.visualize import clip_from_annotation

    with pytest.raises(PoseDataError, match=r"^Annotation 'a': field 'keypoint' must hold real numbers"):
        clip_from_annotation({"frame_dir": "a", "keypoint": [["x", "y"]], "img_shape": (10, 10)})
    with pytest.raises(PoseDataError, match=r"^Annotation 'b': field 'keypoint_score' must be \[M, T, V\]"):
        clip_from_annotation({"frame_dir": "b", "keypoint": np.zeros((3, 17, 2)), "keypoint_score": np.ones(5),
                              "img_shape": (10, 10)})
    with pytest.raises(PoseDataError, match=r"^Annotation 'c': no field 'img_shape'"):
        clip_from_annotation({"frame_dir": "c", "keypoint": np.zeros((3, 17, 2))})


def test_an_unreadable_video_is_one_line_naming_it(tmp_path, capsys):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(os.urandom(2000))
    assert main(["visualize", "--video", str(broken), "--preset", "small", "--output_dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and str(broken) in err[0]


@pytest.mark.parametrize("flag", [["--frame_weights"], ["--candidate_labels", "labels.txt"]])
def test_frame_weights_of_a_non_pacl_model_are_one_line(poses, models, tmp_path, capsys, monkeypatch, flag):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "labels.txt").write_text("jump up\n")
    status = main(["visualize", *poses["args"], "--split", "val", "--index", "0", "--model_name_or_path",
                   models["itc"], *flag, "--output_dir", str(tmp_path / "out")])
    assert status == 2
    assert capsys.readouterr().err.splitlines() == [
        "error: Frame weights (--frame_weights, --candidate_labels) need a PACL model (objective 'pacl'); this is "
        "a model with objective 'itc'."
    ]
    assert not (tmp_path / "out").exists()  # refused before anything is read or written


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--train_file", "{tmp}/nope.pkl", "--split", "val", "--index", "0"],
         "--train_file {tmp}/nope.pkl does not exist."),
        (["--video", "{tmp}/nope.mp4"], "--video {tmp}/nope.mp4 does not exist."),
        (["{poses}", "--split", "val", "--index", "13"],
         "--index 13 is out of range: split 'val' of {path} has 13 clips (indices 0..12)."),
        (["{poses}", "--split", "test", "--index", "0"],
         "{path}: no split named ['test']; the file has splits ['train', 'val']."),
        (["{poses}", "--frame_dir", "synth_val_c3_0000"],
         "--frame_dir 'synth_val_c3_0000' is not in any split (train, val) of {path}; the closest is "
         "'synth_val_c03_0000'."),
        (["{poses}", "--split", "val", "--frame_dir", "nothing like it"],
         "--frame_dir 'nothing like it' is not in split 'val' of {path}."),
        (["{poses}", "--index", "0"], "--index needs --split (the split the index counts in)."),
        (["{poses}", "--split", "val"], "Choose the clip with --split NAME --index I, or with --frame_dir NAME."),
        (["{poses}", "--split", "val", "--index", "0", "--model_name_or_path", "{tmp}"],
         "--model_name_or_path {tmp}: no config.json; a folder saved by `skeletonclip train` (or save_pretrained) "
         "goes here."),
        (["{poses}", "--split", "val", "--index", "0", "--model_name_or_path", "{tmp}/bert"],
         "--model_name_or_path {tmp}/bert: config.json describes a 'bert' model, not a SkeletonCLIP one "
         "('skeleton_clip')."),
        ([], "Give the clip as --train_file PKL (with --split/--index or --frame_dir) or as --video FILE, not both."),
    ],
)
def test_bad_input_is_one_line(poses, tmp_path, capsys, argv, message):
    def fill(text):
        return text.format(tmp=tmp_path, path=poses["path"])

    (tmp_path / "bert").mkdir()
    (tmp_path / "bert" / "config.json").write_text('{"model_type": "bert"}')
    args = []
    for arg in argv:
        args += poses["args"] if arg == "{poses}" else [fill(arg)]
    assert main(["visualize", *args, "--output_dir", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.splitlines() == [f"error: {fill(message)}"]
