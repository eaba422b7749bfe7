"""`skeletonclip predict --video`: a trained model on real video files (PyAV decoding, the real MediaPipe model),
predictions and timelines as JSON/CSV, annotated videos, failures named, bad arguments as one line."""

import csv
import json
import os

import numpy as np
import pytest

from helpers import tiny_training_run, write_astronaut_video
from modeling_skeletonclip.cli import main
from modeling_skeletonclip.video_io import probe_video, read_frames


@pytest.fixture(scope="module")
def trained_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("model")
    run_args = tiny_training_run(str(folder))
    assert main(["train", *run_args(str(folder / "run"), "--num_train_epochs", "1")]) == 0
    return str(folder / "run")


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("videos")
    os.makedirs(folder / "walk")
    write_astronaut_video(str(folder / "walk" / "one.mp4"), num_frames=20, fps=10)
    (folder / "walk" / "broken.mp4").write_bytes(os.urandom(2000))
    return str(folder)


@pytest.fixture(scope="module")
def timeline_run(trained_model, videos, tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    argv = ["predict", "--model_name_or_path", trained_model, "--video", videos, "--output_dir", str(out),
            "--window", "1s", "--stride", "0.5s", "--top_k", "3", "--save_video"]
    assert main(argv) == 0
    with open(out / "predictions.json") as f:
        return str(out), json.load(f)


def test_a_folder_gives_a_timeline_per_video_and_names_the_broken_one(timeline_run, videos):
    _, result = timeline_run
    assert [v["video"] for v in result["videos"]] == [os.path.join(videos, "walk", "one.mp4")]
    assert [f["video"] for f in result["failed"]] == [os.path.join(videos, "walk", "broken.mp4")]
    assert "not a readable video file" in result["failed"][0]["reason"]
    windows = result["videos"][0]["windows"]
    assert [(w["start_frame"], w["end_frame"]) for w in windows] == [(0, 10), (5, 15), (10, 20)]
    assert [(w["start"], w["end"]) for w in windows] == [(0.0, 1.0), (0.5, 1.5), (1.0, 2.0)]
    for window in windows:
        scores = [p["score"] for p in window["predictions"]]
        assert len(scores) == 3 and scores == sorted(scores, reverse=True) and 0 < sum(scores) <= 1


def test_the_timeline_is_the_pipelines_on_the_videos_poses(timeline_run, trained_model, videos):
    from transformers import pipeline

    from modeling_skeletonclip.extract_poses import video_annotation

    _, result = timeline_run
    annotation = video_annotation(os.path.join(videos, "walk", "one.mp4"))
    pipe = pipeline("skeleton-action-recognition", model=trained_model, trust_remote_code=True)
    expected = pipe(annotation, window="1s", stride="0.5s", top_k=3)
    got = result["videos"][0]["windows"]
    assert [[p["label"] for p in w["predictions"]] for w in got] == [
        [p["label"] for p in w["predictions"]] for w in expected
    ]
    np.testing.assert_allclose(
        [[p["score"] for p in w["predictions"]] for w in got],
        [[p["score"] for p in w["predictions"]] for w in expected], rtol=1e-5,
    )


def test_the_annotated_video_is_the_source_with_skeletons_drawn(timeline_run, videos):
    out, result = timeline_run
    path = result["videos"][0]["annotated_video"]
    assert path == os.path.join(out, "walk_one_annotated.mp4")
    source = os.path.join(videos, "walk", "one.mp4")
    assert (probe_video(path).num_frames, probe_video(path).width) == (probe_video(source).num_frames, 320)
    changed = [np.abs(a.image.astype(int) - b.image).mean() for a, b in zip(read_frames(path), read_frames(source))]
    assert min(changed) > 0.5  # every frame carries drawing (skeleton and the label panel)
    first = next(read_frames(path)).image
    assert (first[:12, :40].max(axis=-1) < 40).mean() > 0.3  # the dark label panel in the corner


def test_csv_rows_are_one_per_window(trained_model, videos, tmp_path):
    video = os.path.join(videos, "walk", "one.mp4")
    assert main(["predict", "--model_name_or_path", trained_model, "--video", video, "--output_dir", str(tmp_path),
                 "--predictions_format", "csv", "--top_k", "2"]) == 0
    with open(tmp_path / "predictions.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 1 and rows[0]["video"] == video
    assert (rows[0]["start_frame"], rows[0]["end_frame"]) == ("0", "20")
    assert float(rows[0]["top1_score"]) >= float(rows[0]["top2_score"]) > 0


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--stride", "5"], "--stride needs --window"),
        (["--window", "two"], "--window must be a number of frames (a positive int) or of seconds"),
        (["--estimator", "nope"], "--estimator nope"),
        (["--estimator", "yolo"], "needs weights=<path>"),
    ],
)
def test_bad_arguments_are_one_line(trained_model, videos, tmp_path, capsys, extra, message):
    argv = ["predict", "--model_name_or_path", trained_model, "--video", videos, "--output_dir", str(tmp_path), *extra]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_a_missing_model_folder_is_named(videos, tmp_path, capsys):
    missing = str(tmp_path / "no_model")
    assert main(["predict", "--model_name_or_path", missing, "--video", videos, "--output_dir", str(tmp_path)]) == 2
    assert missing in capsys.readouterr().err
