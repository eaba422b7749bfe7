"""The `skeletonclip` command: `skeletonclip COMMAND ARGS`, one command per script of the package.

    skeletonclip train                                       # the synthetic demo
    skeletonclip train configs/ntu60_xsub_visece.json --per_device_train_batch_size 8
    skeletonclip predict --model_name_or_path runs/synthetic_demo --output_dir runs/synthetic_demo_predictions
    skeletonclip predict --model_name_or_path runs/synthetic_demo --video clip.mp4 --window 2s --save_video --output_dir out
    skeletonclip convert-pyskl slowonly_r50_ntu60_xsub_joint.pth out/posec3d --label_map data/label_maps/ntu60.txt
    skeletonclip extract-poses videos/ poses.pkl --target_fps 15    # videos/<class>/<video>.mp4 -> a pose pickle
    skeletonclip merge-poses poses.shard-*-of-4.pkl --output poses.pkl
    skeletonclip stream --model_name_or_path runs/synthetic_demo --camera 0 --window 2s --stride 8
    skeletonclip export --model_name_or_path runs/synthetic_demo --output_dir runs/synthetic_demo_onnx
    skeletonclip visualize --model_name_or_path runs/synthetic_demo --video clip.mp4 --output_dir vis
    skeletonclip compare --output_dir runs/compare --seeds 0 1 2 -- --num_train_epochs 5

Every command parses its own arguments (`skeletonclip COMMAND --help`); this module only dispatches, and imports a
command's module (the trainer, torch checkpoints) when that command runs.
"""

import sys


PREDICT_DESCRIPTION = (
    "Per-clip top-5 predictions of a saved model, written to OUTPUT_DIR/predictions.csv (or .json): the arguments "
    "of `skeletonclip train` with --do_predict implied and --model_name_or_path required. The clips are --test_split "
    "(default: --eval_split; without --train_file, the synthetic demo's val split); --candidate_labels scores them "
    "against texts of your own. With --video FILE_OR_FOLDER it predicts on videos instead (poses by MediaPipe; "
    "`skeletonclip predict --video X --help` lists those arguments: --window/--stride timelines, --save_video)."
)


def train(argv, prog):
    from modeling_skeletonclip import run_training

    run_training.run(*run_training.parse_args(argv, prog=prog))


def predict(argv, prog):
    if any(arg == "--video" or arg.startswith("--video=") for arg in argv):
        from modeling_skeletonclip import predict_videos

        predict_videos.main(argv, prog=prog)
        return
    from modeling_skeletonclip import run_training

    model_args, data_args, training_args = run_training.parse_args(argv, prog=prog, description=PREDICT_DESCRIPTION)
    if not model_args.model_name_or_path:
        raise run_training.ArgumentError(f"{prog} needs --model_name_or_path: a folder saved by `skeletonclip train`.")
    # Refused rather than ignored: a recipe with "do_train": true would otherwise look like it trained.
    if training_args.do_train:
        raise run_training.ArgumentError(
            f"{prog} does not train, but --do_train is set (a recipe may set it: add --do_train false). "
            "`skeletonclip train ... --do_predict` trains, then predicts."
        )
    training_args.do_predict = True
    run_training.run(model_args, data_args, training_args)


def convert_pyskl(argv, prog):
    from modeling_skeletonclip import convert_pyskl

    convert_pyskl.main(argv, prog=prog)


def extract_poses(argv, prog):
    from modeling_skeletonclip import extract_poses as command

    command.main(argv, prog=prog)


def merge_poses(argv, prog):
    from modeling_skeletonclip import extract_poses as command

    command.merge_main(argv, prog=prog)


def stream(argv, prog):
    from modeling_skeletonclip import streaming

    streaming.main(argv, prog=prog)


def compare(argv, prog):
    from modeling_skeletonclip import compare_objectives

    compare_objectives.main(argv, prog=prog)


def export(argv, prog):
    from modeling_skeletonclip import onnx_export

    onnx_export.main(argv, prog=prog)


def visualize(argv, prog):
    from modeling_skeletonclip import visualize as command

    command.main(argv, prog=prog)


COMMANDS = {
    "train": (train, "train and evaluate: [config.json] [--arguments]; no arguments trains the synthetic demo"),
    "predict": (predict, "top-5 predictions of a saved model on a pose pickle's clips or on videos (--video)"),
    "convert-pyskl": (convert_pyskl, "convert a pyskl PoseC3D checkpoint into a SkeletonCLIP model folder"),
    "extract-poses": (extract_poses, "videos (class folders or a CSV/JSON list) -> a pose pickle, with MediaPipe"),
    "merge-poses": (merge_poses, "join the shard pickles of `extract-poses --shard I/N` into one pose pickle"),
    "stream": (stream, "live predictions on a video file or a camera: one line every --stride frames"),
    "export": (export, "export a saved model's video side to ONNX (keypoints in, class probabilities out)"),
    "visualize": (visualize, "one clip as images: skeletons over frames, the heatmaps the model gets, PACL weights"),
    "compare": (compare, "train and evaluate training objectives x seeds: a table with mean ± std and a bar plot"),
}


def help_text() -> str:
    width = max(len(name) for name in COMMANDS)
    commands = "\n".join(f"  {name:<{width}}  {summary}" for name, (_, summary) in COMMANDS.items())
    return (
        "usage: skeletonclip [-h] [--version] COMMAND [ARGS ...]\n\n"
        "SkeletonCLIP: skeleton-based action recognition with language supervision.\n\n"
        f"commands:\n{commands}\n\n"
        "`skeletonclip COMMAND --help` lists a command's arguments.\n"
        "Several processes: torchrun --nproc_per_node N -m modeling_skeletonclip train ARGS"
    )


def main(argv=None) -> int:
    """Runs `skeletonclip ARGS` (default: the command line) and returns the exit status: 2 for bad arguments or
    data, reported as one line on stderr."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in ("-h", "--help"):
        print(help_text())
        return 0
    if argv and argv[0] == "--version":
        from modeling_skeletonclip import __version__

        print(f"skeletonclip {__version__}")
        return 0
    if not argv:
        print(help_text(), file=sys.stderr)
        return 2
    if argv[0] not in COMMANDS:
        print(f"error: unknown command {argv[0]!r}; choose from {', '.join(COMMANDS)} (skeletonclip --help)",
              file=sys.stderr)
        return 2
    from modeling_skeletonclip.run_training import report_bad_input

    name, args = argv[0], argv[1:]
    command, _ = COMMANDS[name]
    return report_bad_input(command, args, prog=f"skeletonclip {name}")


if __name__ == "__main__":
    sys.exit(main())
