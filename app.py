"""SkeletonCLIP web demo: a video in, the skeletons MediaPipe finds drawn on its frames, the actions a saved model
recognises (ranked), their scores over time, and for PACL models the weight each class text gives each part of the
clip.

    python app.py                                  # the model of the README's main command, runs/synthetic_demo
    python app.py --model DIR --host 127.0.0.1 --port 7860

It trains nothing and needs no network: it loads a folder saved by `skeletonclip train` (or the README's main
command) and runs MediaPipe's bundled pose model. Contrastive models take any class texts (open vocabulary);
classifiers score their own classes. The logic lives in plain functions (`load_recognizer`, `predict_video`, the
figure makers) that the page only wires together.
"""

import argparse
import os
import sys
import tempfile

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio is imported: no usage reports
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the model is a local folder; nothing is fetched from the hub

import matplotlib

matplotlib.use("Agg")  # figures are rendered on the server, never in a window
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402


DEFAULT_MODEL = os.path.join("runs", "synthetic_demo")
MAIN_COMMAND = "bash scripts/setup_env.sh && .venv/bin/python scripts/run_skeleton_clip.py"
WINDOW, STRIDE = "2s", "1s"  # the timeline: 2-second windows, 1 s apart
TOP_K = 5
TIMELINE_CLASSES = 3  # classes drawn over time: the best of the whole video


class ModelNotFoundError(FileNotFoundError):
    """No saved model in the folder the demo was pointed at; the message says how to make one."""


def missing_model_message(model_dir: str) -> str:
    return (
        f"No saved model in {model_dir} (no config.json). Run the README's main command first: `{MAIN_COMMAND}` "
        f"(it writes {DEFAULT_MODEL}), or pass --model DIR with a folder saved by `skeletonclip train`."
    )


def load_recognizer(model_dir: str = DEFAULT_MODEL):
    """The "skeleton-action-recognition" pipeline of the saved model in `model_dir` (code and tokenizer come with
    the checkpoint). Raises `ModelNotFoundError` when the folder holds no saved model."""
    from transformers import pipeline

    if not os.path.isfile(os.path.join(model_dir, "config.json")):
        raise ModelNotFoundError(missing_model_message(model_dir))
    return pipeline("skeleton-action-recognition", model=model_dir, trust_remote_code=True)


def model_classes(recognizer) -> list[str]:
    """The model's class names in id order."""
    id2label = recognizer.model.config.id2label
    return [id2label[i] for i in sorted(id2label)]


def is_pacl(recognizer) -> bool:
    return recognizer.is_contrastive and getattr(recognizer.model.config, "objective", None) == "pacl"


def parse_labels(text: str | None) -> list[str]:
    """Class texts from comma- or line-separated `text`, stripped, empty ones and repeats dropped, order kept."""
    names = []
    for line in (text or "").splitlines():
        for name in line.split(","):
            name = " ".join(name.split())
            if name and name not in names:
                names.append(name)
    return names


def samples_dir() -> str:
    """Where the sample video goes: `samples/` in the package's cache folder (`$SKELETONCLIP_CACHE`)."""
    from modeling_skeletonclip.resources import cache_dir

    return os.path.join(cache_dir(), "samples")


def sample_video_path() -> str:
    """The astronaut sample video, written on first use."""
    from modeling_skeletonclip.sample_videos import write_sample_video

    return write_sample_video(os.path.join(samples_dir(), "astronaut.mp4"))


def timeline_figure(timeline: list[dict], classes: list[str]):
    """The scores of `classes` in every window of `timeline` (a pipeline timeline with every class's score),
    drawn at the window's middle; the top-1 class of each window is marked."""
    figure, axes = plt.subplots(figsize=(7, 3.2), dpi=100)
    times = np.array([(w["start"] + w["end"]) / 2 for w in timeline])  # [W] seconds
    for name in classes:
        scores = [next((p["score"] for p in w["predictions"] if p["label"] == name), 0.0) for w in timeline]
        axes.plot(times, scores, marker="o", label=name)
    for time, window in zip(times, timeline):
        best = window["predictions"][0]
        axes.annotate(best["label"], (time, best["score"]), textcoords="offset points", xytext=(0, 6), ha="center",
                      fontsize=7)
    axes.set_xlim(0, max(w["end"] for w in timeline))
    axes.set_ylim(0, 1.05)
    axes.set_xlabel(f"time (s): middle of each {WINDOW} window, {STRIDE} apart")
    axes.set_ylabel("probability")
    axes.legend(fontsize=8, loc="upper right")
    axes.grid(alpha=0.3)
    figure.tight_layout()
    return figure


def pacl_frame_weights(recognizer, annotation: dict, class_texts: list[str]) -> np.ndarray:
    """PACL frame weights `[L, T']` of the whole video's clip (the view the pipeline scores without a window): how
    much each class text weights each temporal step of the encoder's output."""
    inputs = next(iter(recognizer.preprocess(annotation)))
    embeds = recognizer._class_text_embeds(class_texts)  # [L, D], as the pipeline encodes them
    with torch.no_grad():
        _, weights = recognizer.model.score_all_classes(
            keypoints=inputs["keypoints"].to(recognizer.device),
            keypoint_scores=inputs["keypoint_scores"].to(recognizer.device),
            mirrored=inputs["mirrored"].to(recognizer.device),
            class_text_embeds=embeds, output_frame_weights=True,
        )  # [N, L, T']
    return weights.float().mean(dim=0).cpu().numpy()  # [L, T'] averaged over the views


def frame_weights_figure(weights: np.ndarray, names: list[str], classes: list[str]):
    """The frame weights of `classes` (rows of `weights` `[L, T']`, in the order of `names`) over the clip."""
    figure, axes = plt.subplots(figsize=(7, 3.2), dpi=100)
    steps = np.arange(weights.shape[1])
    for name in classes:
        axes.plot(steps, weights[names.index(name)], marker="o", label=name)
    axes.set_xticks(steps)
    axes.set_xlabel("temporal step of the clip (its frames sampled evenly over the video)")
    axes.set_ylabel("frame weight")
    axes.legend(fontsize=8, loc="upper right")
    axes.grid(alpha=0.3)
    figure.tight_layout()
    return figure


def predict_video(recognizer, path: str, labels_text: str | None = None, output_dir: str | None = None):
    """Poses, predictions and figures for the video at `path`.

    Returns `(annotated_video_path, label_scores, timeline_figure, weights_figure_or_None)`: the video with the
    skeletons and the current top labels drawn (mp4), `{label: probability}` of the whole video's `TOP_K` best
    classes, the scores over time, and for PACL models the frame weights. `labels_text` (contrastive models) holds
    the candidate classes, comma- or line-separated; empty means the model's own classes.
    Raises `ValueError` (bad labels), `VideoDecodeError` or `NoPersonError` with a one-line message.
    """
    from modeling_skeletonclip.extract_poses import video_annotation
    from modeling_skeletonclip.pose_drawing import write_annotated_video

    names = parse_labels(labels_text) if recognizer.is_contrastive else []
    if recognizer.is_contrastive and labels_text is not None and labels_text.strip() and not names:
        raise ValueError("The candidate labels hold no class names (separate them with commas or new lines).")
    names = names or model_classes(recognizer)
    labels = {"candidate_labels": names} if recognizer.is_contrastive else {}

    annotation = video_annotation(path)
    ranked = recognizer(annotation, top_k=TOP_K, **labels)
    timeline = recognizer(annotation, top_k=len(names), window=WINDOW, stride=STRIDE, **labels)
    shown = [p["label"] for p in ranked[:TIMELINE_CLASSES]]

    output_dir = output_dir or tempfile.mkdtemp(prefix="skeletonclip-demo-")
    os.makedirs(output_dir, exist_ok=True)
    stem = os.path.splitext(os.path.basename(path))[0]
    annotated = write_annotated_video(path, annotation, os.path.join(output_dir, f"{stem}_skeletons.mp4"),
                                      timeline=timeline)
    weights_figure = None
    if is_pacl(recognizer):
        template = recognizer.model.config.text_template
        weights = pacl_frame_weights(recognizer, annotation, [template.format(name) for name in names])
        weights_figure = frame_weights_figure(weights, names, shown)
    return (annotated, {p["label"]: p["score"] for p in ranked}, timeline_figure(timeline, shown), weights_figure)


def build_demo(model_dir: str = DEFAULT_MODEL):
    """The page. With no saved model in `model_dir` it says how to make one and every run shows that message."""
    import gradio as gr

    from modeling_skeletonclip.extract_poses import NoPersonError
    from modeling_skeletonclip.video_io import VideoDecodeError

    try:
        recognizer, problem = load_recognizer(model_dir), None
    except ModelNotFoundError as err:
        recognizer, problem = None, str(err)
        print(problem, file=sys.stderr)
    contrastive = recognizer is not None and recognizer.is_contrastive
    classes = model_classes(recognizer) if recognizer is not None else []

    def run(path, labels_text):
        if recognizer is None:
            raise gr.Error(problem)
        if not path:
            raise gr.Error("Upload a video or press 'Use the sample video' first.")
        try:
            video, scores, timeline, weights = predict_video(recognizer, path, labels_text)
        except (ValueError, VideoDecodeError, NoPersonError) as err:
            raise gr.Error(str(err)) from None
        plt.close("all")  # gradio has rendered the figures; the pyplot registry would keep every one
        return video, scores, timeline, gr.update(value=weights, visible=weights is not None)

    with gr.Blocks(title="SkeletonCLIP", analytics_enabled=False) as demo:
        gr.Markdown("# SkeletonCLIP: actions from skeletons\nUpload a video (or use the sample): MediaPipe finds "
                    "the people, the model scores their skeletons against the action classes.")
        if problem:
            gr.Markdown(f"**{problem}**", elem_id="model-missing")
        else:
            kind = "contrastive (open vocabulary)" if contrastive else "classifier (its own classes)"
            gr.Markdown(f"Model: `{model_dir}`, {kind}, {len(classes)} classes"
                        + (", PACL frame weights shown." if is_pacl(recognizer) else "."))
        with gr.Row():
            with gr.Column():
                video_in = gr.Video(label="Video", sources=["upload"])
                labels_in = gr.Textbox(
                    label="Candidate labels (comma- or line-separated)", lines=3, value=", ".join(classes),
                    visible=contrastive, elem_id="candidate-labels",
                )
                if recognizer is not None and not contrastive:
                    gr.Markdown("Classes: " + ", ".join(classes))
                with gr.Row():
                    sample_button = gr.Button("Use the sample video", elem_id="sample-button")
                    run_button = gr.Button("Recognise", variant="primary", elem_id="run-button")
            with gr.Column():
                video_out = gr.Video(label="Skeletons found", interactive=False)
                label_out = gr.Label(label="Actions", num_top_classes=TOP_K, elem_id="ranked-labels")
        timeline_out = gr.Plot(label="Scores over time")
        weights_out = gr.Plot(label="PACL frame weights", visible=is_pacl(recognizer) if recognizer else False)
        outputs = [video_out, label_out, timeline_out, weights_out]
        run_button.click(run, inputs=[video_in, labels_in], outputs=outputs)
        sample_button.click(sample_video_path, outputs=video_in).then(run, inputs=[video_in, labels_in],
                                                                      outputs=outputs)
    return demo


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="SkeletonCLIP web demo (Gradio), offline.")
    # Defaults from the environment where a host sets them (Hugging Face Spaces set GRADIO_SERVER_NAME/PORT).
    parser.add_argument("--model", default=os.environ.get("SKELETONCLIP_DEMO_MODEL", DEFAULT_MODEL),
                        help=f"a folder saved by `skeletonclip train` (default $SKELETONCLIP_DEMO_MODEL, else "
                        f"{DEFAULT_MODEL}: what the README's main command writes)")
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
                        help="address to listen on (default 127.0.0.1; 0.0.0.0 for every interface)")
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)))
    args = parser.parse_args(argv)
    demo = build_demo(args.model)
    # allowed_paths: the sample video lies in the cache folder, outside the temporary and working folders that
    # Gradio serves files from by default.
    demo.queue().launch(server_name=args.host, server_port=args.port, share=False, ssr_mode=False,
                        show_error=True, footer_links=["gradio", "settings"], allowed_paths=[samples_dir()])


if __name__ == "__main__":
    main()
