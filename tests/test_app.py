"""The web demo (app.py): its functions on a real video with tiny saved models (PACL contrastive and classifier),
the message when no model is there, and the page itself in a real headless Chromium (upload, run, ranked labels)."""

import builtins
import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import numpy as np
import pytest

from helpers import REPO_ROOT, tiny_training_run, write_astronaut_video
from modeling_skeletonclip.cli import main
from modeling_skeletonclip.video_io import probe_video


def _load_app():
    spec = importlib.util.spec_from_file_location("skeletonclip_demo_app", os.path.join(REPO_ROOT, "app.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


app = _load_app()


@pytest.fixture(scope="module")
def saved_models(tmp_path_factory):
    """Tiny models saved by `skeletonclip train`: "pacl" (contrastive, PACL objective) and "classifier"."""
    folder = tmp_path_factory.mktemp("models")
    run_args = tiny_training_run(str(folder))
    common = ("--num_train_epochs", "1")
    assert main(["train", *run_args(str(folder / "pacl"), *common, "--objective", "pacl")]) == 0
    assert main(["train", *run_args(str(folder / "classifier"), *common, "--model_type", "classifier")]) == 0
    return {"pacl": str(folder / "pacl"), "classifier": str(folder / "classifier")}


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("videos") / "astronaut.mp4")
    write_astronaut_video(path, num_frames=30, fps=10)  # 3 s: two 2 s windows, 1 s apart
    return path


@pytest.fixture(scope="module")
def recognizers(saved_models):
    return {kind: app.load_recognizer(path) for kind, path in saved_models.items()}


def test_labels_split_on_commas_and_lines_without_blanks_or_repeats():
    assert app.parse_labels(" jump up, sit  down\n\nwave hand,\njump up ,") == ["jump up", "sit down", "wave hand"]
    assert app.parse_labels("") == app.parse_labels(None) == []


def test_pacl_model_gives_the_pipelines_ranking_timeline_and_frame_weights(recognizers, saved_models, video,
                                                                          tmp_path):
    from transformers import pipeline

    from modeling_skeletonclip.extract_poses import video_annotation

    labels = ["jump up", "sit down", "wave hand", "kick something"]
    annotated, scores, timeline_fig, weights_fig = app.predict_video(
        recognizers["pacl"], video, "jump up, sit down\nwave hand, kick something", output_dir=str(tmp_path))

    # The annotated video: every source frame, same size, in the output folder.
    source, drawn = probe_video(video), probe_video(annotated)
    assert os.path.dirname(annotated) == str(tmp_path)
    assert (drawn.num_frames, drawn.width, drawn.height) == (source.num_frames, source.width, source.height)

    # Ranking and timeline: the pipeline's, loaded afresh, on the same video.
    pipe = pipeline("skeleton-action-recognition", model=saved_models["pacl"], trust_remote_code=True)
    annotation = video_annotation(video)
    expected = pipe(annotation, candidate_labels=labels, top_k=app.TOP_K)
    assert list(scores) == [p["label"] for p in expected]  # top 4 of 4 labels, best first
    np.testing.assert_allclose(list(scores.values()), [p["score"] for p in expected], rtol=1e-5)
    windows = pipe(annotation, candidate_labels=labels, top_k=len(labels), window="2s", stride="1s")
    shown = [p["label"] for p in expected[: app.TIMELINE_CLASSES]]
    lines = timeline_fig.axes[0].get_lines()
    assert [line.get_label() for line in lines] == shown
    for line in lines:
        np.testing.assert_allclose(line.get_xdata(), [1.0, 2.0])  # middles of [0, 2) and [1, 3)
        np.testing.assert_allclose(
            line.get_ydata(),
            [next(p["score"] for p in w["predictions"] if p["label"] == line.get_label()) for w in windows],
            rtol=1e-5,
        )

    # Frame weights: PACL's softmax over the clip's temporal steps, one curve per shown class, each summing to 1.
    assert weights_fig is not None
    curves = weights_fig.axes[0].get_lines()
    assert [curve.get_label() for curve in curves] == shown
    for curve in curves:
        weights = np.asarray(curve.get_ydata())
        assert len(weights) >= 2 and np.all(weights > 0)
        np.testing.assert_allclose(weights.sum(), 1.0, rtol=1e-5)


def test_an_empty_label_list_is_refused_and_a_blank_one_means_the_models_classes(recognizers, video, tmp_path):
    with pytest.raises(ValueError, match="hold no class names"):
        app.predict_video(recognizers["pacl"], video, " , ,\n", output_dir=str(tmp_path))
    _, scores, _, _ = app.predict_video(recognizers["pacl"], video, "", output_dir=str(tmp_path))
    assert len(scores) == app.TOP_K and set(scores) <= set(app.model_classes(recognizers["pacl"]))


def test_classifier_scores_its_own_classes_and_has_no_frame_weights(recognizers, video, tmp_path):
    _, scores, timeline_fig, weights_fig = app.predict_video(
        recognizers["classifier"], video, "not a class", output_dir=str(tmp_path))
    classes = app.model_classes(recognizers["classifier"])
    assert len(scores) == app.TOP_K and set(scores) <= set(classes)
    assert list(scores.values()) == sorted(scores.values(), reverse=True)
    assert weights_fig is None and len(timeline_fig.axes[0].get_lines()) == app.TIMELINE_CLASSES


def test_an_unreadable_video_is_a_one_line_error_naming_it(recognizers, tmp_path):
    from modeling_skeletonclip.video_io import VideoDecodeError

    broken = tmp_path / "broken.mp4"
    broken.write_bytes(os.urandom(2000))
    with pytest.raises(VideoDecodeError) as err:
        app.predict_video(recognizers["pacl"], str(broken), output_dir=str(tmp_path / "out"))
    assert str(broken) in str(err.value) and "\n" not in str(err.value)


def test_a_video_longer_than_the_limit_is_refused_before_decoding(recognizers, video, tmp_path):
    with pytest.raises(ValueError) as err:
        app.predict_video(recognizers["pacl"], video, output_dir=str(tmp_path / "out"), max_seconds=2.5)
    assert str(err.value) == ("astronaut.mp4 is 3.0 s long; this demo takes videos of up to 2.5 s (trim it, or start "
                              "the demo with --max_seconds 4).")
    assert not os.path.exists(tmp_path / "out")


def test_a_contrastive_model_loads_without_asking_on_stdin(saved_models, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("asked on stdin")

    monkeypatch.setattr(builtins, "input", refuse)
    recognizer = app.load_recognizer(saved_models["pacl"])
    assert recognizer.is_contrastive and recognizer.tokenizer is not None


def test_without_a_model_the_page_and_the_console_say_to_run_the_main_command(tmp_path, capsys):
    with pytest.raises(app.ModelNotFoundError) as err:
        app.load_recognizer(str(tmp_path / "runs" / "synthetic_demo"))
    assert app.MAIN_COMMAND in str(err.value) and str(tmp_path) in str(err.value)
    demo = app.build_demo(str(tmp_path / "nothing"))
    assert app.MAIN_COMMAND in capsys.readouterr().err
    texts = [getattr(block, "value", None) for block in demo.blocks.values()]
    assert any(isinstance(text, str) and app.MAIN_COMMAND in text for text in texts)


def test_the_sample_video_is_written_once_into_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SKELETONCLIP_CACHE", str(tmp_path / "cache"))
    path = app.sample_video_path()
    assert path == str(tmp_path / "cache" / "samples" / "astronaut.mp4")
    info = probe_video(path)
    assert (info.num_frames, info.width, info.height, info.fps) == (30, 320, 240, 10)
    written = os.path.getmtime(path)
    assert app.sample_video_path() == path and os.path.getmtime(path) == written
    assert os.listdir(os.path.dirname(path)) == ["astronaut.mp4"]  # no partial file left


# -- the page in a real browser ---------------------------------------------------------------------------------

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--window-size=1280,1600"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_page(url, server, timeout=90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"app.py exited with status {server.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"app.py did not serve {url} within {timeout} s")


@pytest.mark.skipif(not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)),
                    reason=f"needs Debian's chromium and chromium-driver ({CHROMIUM}, {CHROMEDRIVER})")
def test_the_page_uploads_a_video_and_shows_the_ranked_classes(saved_models, video, tmp_path):
    from selenium import webdriver
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    port = _free_port()
    # The sample video's cache lies outside the server's temporary and working folders, as ~/.cache does.
    for name in ("cache", "server_tmp", "cwd"):
        os.makedirs(tmp_path / name)
    env = {**os.environ, "SKELETONCLIP_CACHE": str(tmp_path / "cache"), "TMPDIR": str(tmp_path / "server_tmp"),
           "PYTHONPATH": os.pathsep.join([REPO_ROOT, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    upload = str(tmp_path / "uploaded_clip.mp4")
    shutil.copy(video, upload)
    log = open(tmp_path / "app.log", "w")
    server = subprocess.Popen(
        [sys.executable, os.path.join(REPO_ROOT, "app.py"), "--model", saved_models["pacl"], "--host", "127.0.0.1",
         "--port", str(port)], stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
        cwd=tmp_path / "cwd",
    )
    profile = tempfile.mkdtemp(prefix="chromium-profile-", dir=tmp_path)
    classes = app.model_classes(app.load_recognizer(saved_models["pacl"]))
    driver = None

    def ranked(d):
        text = d.find_element(By.ID, "ranked-labels").text
        return [name for name in classes if name in text]

    def annotated_video_of(stem):
        return lambda d: any(f"{stem}_skeletons" in (v.get_attribute("src") or "")
                             for v in d.find_elements(By.CSS_SELECTOR, "video"))

    try:
        _wait_for_page(f"http://127.0.0.1:{port}/", server)
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={profile}"]:
            options.add_argument(flag)
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
        driver.get(f"http://127.0.0.1:{port}/")
        # Gradio re-renders components as results arrive: an element found a moment ago may be gone.
        wait = WebDriverWait(driver, 60, poll_frequency=0.5, ignored_exceptions=[StaleElementReferenceException])

        # An upload, then a run: the ranked classes, the skeletons video and both plots.
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "input[type=file]"))[0].send_keys(upload)
        wait.until(lambda d: any("uploaded_clip" in (v.get_attribute("src") or "")
                                 for v in d.find_elements(By.CSS_SELECTOR, "video")))
        driver.find_element(By.ID, "run-button").click()
        wait.until(annotated_video_of("uploaded_clip"))
        shown = wait.until(lambda d: len(ranked(d)) >= app.TOP_K and ranked(d))
        plots = driver.find_elements(By.CSS_SELECTOR, "[data-testid='matplotlib'] img, .matplotlib img")
        driver.save_screenshot(str(tmp_path / "demo.png"))
        assert len(shown) == app.TOP_K
        assert len(plots) == 2, "the timeline and the PACL frame weights"
        # The sample (in place of the upload): written on first use, shown, and run.
        driver.find_element(By.ID, "sample-button").click()
        wait.until(annotated_video_of("astronaut"))
        assert len(wait.until(lambda d: len(ranked(d)) >= app.TOP_K and ranked(d))) == app.TOP_K
    finally:
        if driver is not None:
            driver.quit()
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
        shutil.rmtree(profile, ignore_errors=True)
    assert os.path.getsize(tmp_path / "demo.png") > 10_000
