"""Helpers shared by the tests: tiny model settings, random keypoints, the saved-model fixtures, an independent
heatmap oracle, and the training command on tiny settings (in this process, or in a child process that is killed
or runs out of disk space).

The oracle (`reference_heatmaps`) is a plain per-point numpy renderer (SPEC §2), written to be obviously correct,
not fast: it loops over every point and every limb like pyskl's `GeneratePoseTarget.generate_a_heatmap` /
`generate_a_limb_heatmap`; the tests check `heatmaps.render_heatmaps` against it and the benchmark times both.
Window bounds are computed in float64 Python arithmetic (as numpy 1.x did for `np.float32 - float`), the Gaussian
values in float64.
"""

import json
import math
import os

import numpy as np
import torch

from modeling_skeletonclip.pose_layouts import COCO17
from modeling_skeletonclip.sample_videos import astronaut_frame_placements, astronaut_frames  # noqa: F401

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Tiny models of every kind saved by version 0.1.0, with their inputs and outputs (fixtures/make_saved_models.py).
SAVED_MODELS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "saved_models")

# A reduced encoder and a tiny BERT: the full topology, small enough for fast CPU tests.
TINY_VIDEO = {"base_channels": 8, "stage_planes": [8, 16, 32], "stage_blocks": [1, 2, 1]}
TINY_TEXT = {
    "vocab_size": 30522,
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
}
TINY_HEATMAP = {"train_size": [16, 16], "eval_size": [16, 16]}
# The training command's `--config_overrides` for a tiny model.
TINY_OVERRIDES = json.dumps(
    {
        "video_config": {"base_channels": 8, "stage_planes": [8, 8, 8], "stage_blocks": [1, 1, 1]},
        "heatmap_config": {"train_size": [16, 16], "eval_size": [16, 16]},
        "projection_dim": 16,
        "frame_embed_dim": 16,
    }
)


def random_keypoints(batch, persons=1, frames=8, joints=17, size=16, views=None, seed=0):
    """`(keypoints [B, (views,) M, T, V, 2], scores [B, (views,) M, T, V])`: uniform in a `size` x `size` frame,
    scores in [0.3, 1)."""
    g = torch.Generator().manual_seed(seed)
    shape = (batch,) + ((views,) if views else ()) + (persons, frames, joints)
    keypoints = torch.rand(shape + (2,), generator=g) * (size - 1)
    scores = torch.rand(shape, generator=g) * 0.7 + 0.3
    return keypoints, scores


# ----------------------------------------------------------------------------------------------------------------
# The training command on tiny settings, in this process or in a child process that can be killed
# ----------------------------------------------------------------------------------------------------------------

def save_tiny_text_encoder(folder):
    """A randomly initialised TINY_TEXT BERT (with dropout) and the packaged MiniLM tokenizer, as a folder for
    `--text_model_name_or_path`: training steps and checkpoints cost a fraction of MiniLM's."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    from modeling_skeletonclip.text_encoders import packaged_text_encoder_path

    torch.manual_seed(0)
    BertModel(BertConfig(**TINY_TEXT)).save_pretrained(str(folder))
    AutoTokenizer.from_pretrained(packaged_text_encoder_path()).save_pretrained(str(folder))
    return str(folder)


def synthetic_pose_files(folder, num_train_per_class=1) -> tuple[str, str]:
    """`(poses.pkl, labels.txt)` of the synthetic set written into `folder` (one validation clip a class)."""
    from modeling_skeletonclip.synthetic_poses import write_synthetic_poses

    pickle_path = os.path.join(folder, "poses.pkl")
    write_synthetic_poses(pickle_path, num_train_per_class=num_train_per_class, num_val_per_class=1)
    return pickle_path, os.path.join(folder, "labels.txt")


def tiny_training_run(folder):
    """Writes synthetic poses (2 training clips a class) and a tiny text encoder into `folder` and returns
    `run_args(output_dir, *extra)`: the arguments of `skeletonclip train` for a tiny contrastive run on them, 12
    training clips in batches of 4 (3 steps an epoch), no evaluation, no DataLoader workers, a log every step."""
    pickle_path, labels = synthetic_pose_files(folder, num_train_per_class=2)
    text_encoder = save_tiny_text_encoder(os.path.join(folder, "text_encoder"))

    def run_args(output_dir, *extra):
        return [
            "--train_file", pickle_path, "--label_map", labels, "--train_split", "train", "--do_train",
            "--max_train_samples", "12", "--output_dir", str(output_dir), "--preset", "small",
            "--config_overrides", TINY_OVERRIDES, "--text_model_name_or_path", text_encoder, "--clip_len", "8",
            "--per_device_train_batch_size", "4", "--report_to", "none", "--use_cpu", "true", "--disable_tqdm",
            "true", "--seed", "3", "--dataloader_num_workers", "0", "--logging_steps", "1",
            "--dataset_cache_dir", os.path.join(folder, "cache"), *extra,
        ]

    return run_args


# Run in the child: the training command, optionally SIGKILLed in the middle of writing a checkpoint or right after.
_CHILD = """
import os, signal, sys
import torch
torch.set_num_threads({threads})
from modeling_skeletonclip import run_training
from modeling_skeletonclip.trainer import SkeletonClipTrainer
from transformers import TrainerCallback

KILL_AFTER_SAVE, KILL_DURING_SAVE = {kill_after_save}, {kill_during_save}

def die():
    os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, no flush: as the OOM killer or a preempted job

class KillAfterSave(TrainerCallback):
    def on_save(self, args, state, control, **kwargs):
        if state.global_step == KILL_AFTER_SAVE:
            die()

init, save_optimizer = SkeletonClipTrainer.__init__, SkeletonClipTrainer._save_optimizer_and_scheduler

def patched_init(self, *args, **kwargs):
    init(self, *args, **kwargs)
    self.add_callback(KillAfterSave())

def patched_save_optimizer(self, output_dir):
    if self.state.global_step == KILL_DURING_SAVE:
        die()  # the model files of the checkpoint are written, the optimizer and the trainer state are not
    save_optimizer(self, output_dir)

SkeletonClipTrainer.__init__ = patched_init
SkeletonClipTrainer._save_optimizer_and_scheduler = patched_save_optimizer
sys.exit(run_training.report_bad_input(run_training.main, {argv!r}))
"""


def run_training_process(argv, kill_after_save=None, kill_during_save=None, file_size_limit=None, timeout=300):
    """Runs `skeletonclip train ARGV` in a child process (as many torch threads as this one, so that its numbers
    are this process's) and returns the CompletedProcess. `kill_after_save=N` SIGKILLs it right after checkpoint-N
    is written, `kill_during_save=N` while checkpoint-N is being written. `file_size_limit` (bytes) makes every
    larger write fail with EFBIG, as on a full disk (SIGXFSZ ignored, so the write raises OSError)."""
    import resource
    import signal
    import subprocess
    import sys

    code = _CHILD.format(threads=torch.get_num_threads(), kill_after_save=kill_after_save,
                         kill_during_save=kill_during_save, argv=list(argv))

    def limit_file_size():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, file_size_limit))

    env = dict(os.environ, PYTHONPATH=os.pathsep.join([REPO_ROOT, os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, env=env,
                          preexec_fn=limit_file_size if file_size_limit else None)


def assert_same_weights(path_a, path_b):
    """Every tensor of two model.safetensors files is bit-identical."""
    from safetensors.torch import load_file

    a, b = load_file(str(path_a)), load_file(str(path_b))
    assert a.keys() == b.keys()
    different = [key for key in a if not torch.equal(a[key], b[key])]
    assert not different, f"{len(different)} of {len(a)} tensors differ, e.g. {different[:3]}"


# ----------------------------------------------------------------------------------------------------------------
# Heatmap oracle
# ----------------------------------------------------------------------------------------------------------------

EPS = 1e-3


def _joint_patch(arr, mu_x, mu_y, value, sigma):
    """Max a Gaussian at (mu_x, mu_y) times value into arr [H, W] (pyskl generate_a_heatmap, one point)."""
    img_h, img_w = arr.shape
    if value < EPS:
        return
    st_x = max(int(mu_x - 3 * sigma), 0)
    ed_x = min(int(mu_x + 3 * sigma) + 1, img_w)
    st_y = max(int(mu_y - 3 * sigma), 0)
    ed_y = min(int(mu_y + 3 * sigma) + 1, img_h)
    x = np.arange(st_x, ed_x, dtype=np.float64)
    y = np.arange(st_y, ed_y, dtype=np.float64)
    if not (len(x) and len(y)):
        return
    y = y[:, None]
    patch = np.exp(-((x - mu_x) ** 2 + (y - mu_y) ** 2) / 2 / sigma**2) * value
    arr[st_y:ed_y, st_x:ed_x] = np.maximum(arr[st_y:ed_y, st_x:ed_x], patch)


def _limb_patch(arr, start, end, start_value, end_value, sigma):
    """Max a segment heatmap A -> B into arr [H, W] (pyskl generate_a_limb_heatmap, one segment)."""
    img_h, img_w = arr.shape
    value = min(start_value, end_value)
    if value < EPS:
        return
    ax, ay = start
    bx, by = end
    min_x = max(int(min(ax, bx) - 3 * sigma), 0)
    max_x = min(int(max(ax, bx) + 3 * sigma) + 1, img_w)
    min_y = max(int(min(ay, by) - 3 * sigma), 0)
    max_y = min(int(max(ay, by) + 3 * sigma) + 1, img_h)
    x = np.arange(min_x, max_x, dtype=np.float64)
    y = np.arange(min_y, max_y, dtype=np.float64)
    if not (len(x) and len(y)):
        return
    d2_ab = (ax - bx) ** 2 + (ay - by) ** 2
    if d2_ab < 1:
        # pyskl draws the joint at A, with A's own score (not the min)
        _joint_patch(arr, ax, ay, start_value, sigma)
        return
    x = x[None, :]
    y = y[:, None]
    d2_start = (x - ax) ** 2 + (y - ay) ** 2
    d2_end = (x - bx) ** 2 + (y - by) ** 2
    coeff = (d2_start - d2_end + d2_ab) / 2.0 / d2_ab
    proj_x = ax + coeff * (bx - ax)
    proj_y = ay + coeff * (by - ay)
    d2_line = (x - proj_x) ** 2 + (y - proj_y) ** 2
    d2 = np.where(coeff <= 0, d2_start, np.where(coeff >= 1, d2_end, d2_line))
    patch = np.exp(-d2 / 2.0 / sigma**2) * value
    arr[min_y:max_y, min_x:max_x] = np.maximum(arr[min_y:max_y, min_x:max_x], patch)


def _render_one_view(kps, scores, size, sigma, with_joints, with_limbs, limbs):
    """kps [N, M, T, V, 2], scores [N, M, T, V] -> [N, C, T, H, W] float32."""
    n_samples, n_persons, n_frames, n_joints, _ = kps.shape
    img_h, img_w = size
    channels = (n_joints if with_joints else 0) + (len(limbs) if with_limbs else 0)
    out = np.zeros((n_samples, channels, n_frames, img_h, img_w), dtype=np.float64)
    for n in range(n_samples):
        for t in range(n_frames):
            for m in range(n_persons):
                channel = 0
                if with_joints:
                    for v in range(n_joints):
                        x, y = float(kps[n, m, t, v, 0]), float(kps[n, m, t, v, 1])
                        s = float(scores[n, m, t, v])
                        if math.isfinite(x) and math.isfinite(y) and math.isfinite(s):
                            _joint_patch(out[n, channel, t], x, y, s, sigma)
                        channel += 1
                if with_limbs:
                    for a, b in limbs:
                        start = (float(kps[n, m, t, a, 0]), float(kps[n, m, t, a, 1]))
                        end = (float(kps[n, m, t, b, 0]), float(kps[n, m, t, b, 1]))
                        sa, sb = float(scores[n, m, t, a]), float(scores[n, m, t, b])
                        if all(math.isfinite(c) for c in (*start, *end, sa, sb)):
                            _limb_patch(out[n, channel, t], start, end, sa, sb, sigma)
                        channel += 1
    return out.astype(np.float32)


def reference_heatmaps(
    keypoints,
    scores=None,
    size=(56, 56),
    sigma=0.6,
    with_joints=True,
    with_limbs=False,
    limbs=None,
    flip_double=False,
    flip_permutation=None,
    use_score=True,
):
    """Reference renderer with the layout of ``render_heatmaps``.

    keypoints [N, M, T, V, 2] (x, y pixels), scores [N, M, T, V] (None: ones). Returns float32
    [N, C, T, H, W], or [N, 2, C, T, H, W] with ``flip_double``: view 1 is pyskl's
    ``GeneratePoseTarget(double=True)`` flip of view 0, ``view[..., ::-1]`` with the channels of
    left and right joints (``flip_permutation``) and of left and right limbs (the limb whose
    mirror image is each limb) swapped. Non-finite coordinates/scores are skipped.
    """
    kps = np.asarray(keypoints, dtype=np.float64)
    if scores is None:
        scores = np.ones(kps.shape[:-1], dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64)
    if not use_score:
        scores = np.where(np.isfinite(scores), 1.0, scores)
    n_joints = kps.shape[3]
    if with_limbs and limbs is None:
        limbs = COCO17.limbs
    limbs = [tuple(int(j) for j in limb) for limb in (limbs or ())]
    view = _render_one_view(kps, scores, size, sigma, with_joints, with_limbs, limbs)
    if not flip_double:
        return view
    return np.stack([view, pyskl_mirror(view, n_joints, flip_permutation, with_joints, limbs if with_limbs else [])],
                    axis=1)


def pyskl_mirror(view, n_joints, flip_permutation=None, with_joints=True, limbs=()):
    """pyskl's test-time flip of a rendered volume [N, C, T, H, W]: ``[..., ::-1]`` and left/right channels swapped
    (joint j takes joint ``flip_permutation[j]``; limb (a, b) takes the limb {perm[a], perm[b]}, found by search)."""
    perm = list(flip_permutation if flip_permutation is not None else COCO17.flip_permutation())
    assert sorted(perm) == list(range(n_joints))
    channels = list(perm) if with_joints else []
    offset = len(channels)
    for a, b in limbs:
        partner = [k for k, limb in enumerate(limbs) if sorted(limb) == sorted((perm[a], perm[b]))]
        assert len(partner) == 1, "the reference handles limb lists closed under the flip, each limb once"
        channels.append(offset + partner[0])
    return np.ascontiguousarray(view[..., ::-1][:, channels])




# ----------------------------------------------------------------------------------------------------------------
# Isolated loader runs (hostile files)
# ----------------------------------------------------------------------------------------------------------------

# Runs cases one after the other in a fresh interpreter, reporting each case's start and result on its own line.
# The package __init__ imports transformers and torch (about 10 s); the loader needs only numpy (and datasets once a
# file validates), so its modules are imported without the package's __init__.
_LOADER_WORKER = r"""
import json, pickle, sys, traceback, types

request = json.load(open(sys.argv[1]))
package = types.ModuleType("modeling_skeletonclip")
package.__path__ = [request["package_dir"]]
sys.modules["modeling_skeletonclip"] = package
from modeling_skeletonclip import pose_dataset  # noqa: E402

if any(case["call"] == "load_pose_dataset" for _, case in request["cases"]):
    import datasets  # noqa: E402,F401  (imported up front: a case's clock measures the loader, not imports)


def run(case):
    try:
        if case["call"] == "pickle.load":  # unrestricted, to check that this harness sees crashes and hangs
            with open(case["path"], "rb") as f:
                out = pickle.load(f)
        else:
            out = getattr(pose_dataset, case["call"])(case["path"], **case["kwargs"])
    except BaseException as e:  # everything is reported: the test decides what is acceptable
        return {"ok": False, "type": type(e).__name__, "pose_error": isinstance(e, pose_dataset.PoseDataError),
                "unpickling_error": isinstance(e, pickle.UnpicklingError), "message": str(e)[:4000],
                "traceback": traceback.format_exc()[-4000:]}
    if case["call"] == "load_pose_dataset":
        return {"ok": True, "rows": {name: split.num_rows for name, split in out.items()}}
    return {"ok": True, "type": type(out).__name__}


for index, case in request["cases"]:
    print("@@START@@", index, flush=True)
    print("@@RESULT@@", index, json.dumps(run(case)), flush=True)
"""

# Address space of one worker: a clean load (numpy, datasets, pyarrow) reserves about 1.7 GB of it while using
# ~150 MB of memory; a hostile file that asks for more gets a MemoryError instead of the machine's memory.
LOADER_MEMORY_LIMIT = 3 * 2**30
# Wall-clock time one case may take, from its start (the worker's imports are not counted): a case takes well
# under a second; the margin is for a busy machine.
LOADER_TIMEOUT = 10.0


class IsolatedRun:
    """The outcome of one `run_loader_isolated` case: `result` (the worker's dict) or why there is none."""

    def __init__(self, path, result=None, returncode=None, timed_out=False, stderr=""):
        self.path, self.result, self.returncode = path, result, returncode
        self.timed_out, self.stderr = timed_out, stderr

    def describe(self) -> str:
        if self.timed_out:
            return f"{self.path}: timed out"
        if self.result is None:
            status = self.returncode
            return f"{self.path}: no result (the worker ended with status {status}); stderr:\n{self.stderr[-3000:]}"
        return f"{self.path}: {self.result}"


def run_loader_isolated(cases, timeout=LOADER_TIMEOUT, memory_limit=LOADER_MEMORY_LIMIT, jobs=2):
    """Runs ``pose_dataset.<call>(path, **kwargs)`` for each ``(call, path, kwargs)`` case in worker processes with a
    memory limit (RLIMIT_AS) and a per-case wall-clock timeout. Returns one `IsolatedRun` per case, in order.

    Start-up (imports) dominates a case's cost, so a worker runs several cases in turn, ``jobs`` workers at a time,
    and reports each case's start and result on its own line. A case that kills its worker (a signal, a crash) or
    runs past the timeout gets that as its outcome, and the cases after it go on in a fresh worker: no case hides
    another.
    """
    import json
    import resource
    import subprocess
    import sys
    import tempfile
    import time

    def limit_memory():
        resource.setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))

    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", HF_DATASETS_OFFLINE="1",
               HF_HUB_OFFLINE="1", PYTHONPATH=os.pathsep.join([REPO_ROOT, os.environ.get("PYTHONPATH", "")]))
    package_dir = os.path.join(REPO_ROOT, "modeling_skeletonclip")
    runs = [None] * len(cases)
    queues = [list(range(len(cases)))[k::jobs] for k in range(jobs)]  # interleaved: slow cases spread out
    workers = {}  # queue number -> (process, stdout file, stderr file, started case, its start time)
    with tempfile.TemporaryDirectory() as logs:
        launched = 0

        def launch(q):
            nonlocal launched
            launched += 1
            request = os.path.join(logs, f"{launched}.json")
            with open(request, "w") as f:
                json.dump({"package_dir": package_dir,
                           "cases": [[i, {"call": cases[i][0], "path": str(cases[i][1]), "kwargs": cases[i][2] or {}}]
                                     for i in queues[q]]}, f)
            # files, not pipes: a worker that writes a lot must not block on a full pipe. Appending: the worker shares
            # the file offset with this process, whose seek(0) to read would otherwise make it overwrite earlier lines
            out, err = open(f"{request}.out", "a+"), open(f"{request}.err", "a+")
            proc = subprocess.Popen([sys.executable, "-c", _LOADER_WORKER, request], stdout=out, stderr=err,
                                    preexec_fn=limit_memory, env=env, cwd=REPO_ROOT)
            workers[q] = [proc, out, err, None, None]

        def collect(q):
            """Records the results written so far; returns the case started but not finished, if any."""
            proc, out, err, _, _ = workers[q]
            out.seek(0)
            started = None
            for line in out.read().split("\n")[:-1]:  # complete lines only: the worker may be mid-write
                if line.startswith("@@START@@ "):
                    started = int(line.split()[1])
                elif line.startswith("@@RESULT@@ "):
                    _, index, payload = line.split(" ", 2)
                    index = int(index)
                    runs[index] = IsolatedRun(str(cases[index][1]), json.loads(payload), 0)
                    if index in queues[q]:
                        queues[q].remove(index)
                    started = None
            return started

        for q in range(jobs):
            if queues[q]:
                launch(q)
        while workers:
            time.sleep(0.02)
            for q in list(workers):
                proc, out, err, current, since = workers[q]
                started = collect(q)
                if started != current:  # a new case began: its clock starts now
                    workers[q][3], workers[q][4] = started, time.monotonic()
                    current, since = started, workers[q][4]
                timed_out = current is not None and time.monotonic() - since > timeout
                if timed_out:
                    proc.kill()
                if proc.poll() is None:
                    continue
                started = collect(q)
                if started is not None:  # this case ended the worker: a signal, a crash, the timeout
                    err.seek(0)
                    runs[started] = IsolatedRun(str(cases[started][1]), None, proc.returncode, timed_out, err.read())
                    queues[q].remove(started)
                elif queues[q]:  # ended before its next case: report that on the case, so every worker makes progress
                    err.seek(0)
                    first = queues[q].pop(0)
                    runs[first] = IsolatedRun(str(cases[first][1]), None, proc.returncode, False, err.read())
                out.close(), err.close()
                del workers[q]
                if queues[q]:
                    launch(q)
    return runs


# ---------------------------------------------------------------------------------------------------------------
# Real video files made from a real photo
# ---------------------------------------------------------------------------------------------------------------
# Regions of skimage.data.astronaut() (512 x 512, a public-domain photo), in its pixels, as (x0, y0, x1, y1): the face
# (nose, eyes and ears inside it) and the shoulder band of the torso, read off the photo.
ASTRONAUT_FACE = (165, 40, 290, 205)
ASTRONAUT_SHOULDERS = (60, 200, 360, 320)
CODECS = {".mp4": "libx264", ".mov": "libx264", ".avi": "mpeg4", ".webm": "libvpx-vp9", ".mkv": "libx264",
          ".m4v": "libx264"}


def write_video(path, frames, fps=10, codec=None, rotation=None, times=None):
    """Encodes RGB frames with PyAV (the codec by file extension, see `CODECS`), stored as given. `rotation` is the
    clockwise angle (90, 180, 270) by which players turn the stored frames for display, written as the stream's
    display matrix, as phones store it (see `write_rotated_video`). `times` (seconds, increasing) gives each frame
    its own timestamp, on a millisecond clock: a variable frame rate."""
    from fractions import Fraction

    import av

    codec = codec or CODECS[os.path.splitext(path)[1].lower()]
    height, width = frames[0].shape[:2]
    with av.open(path, "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        if rotation is not None:
            stream.set_display_rotation(-rotation)  # PyAV takes counter-clockwise degrees
        if times is not None:
            stream.codec_context.time_base = Fraction(1, 1000)
        for index, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            if times is not None:
                frame.pts, frame.time_base = int(round(times[index] * 1000)), Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_rotated_video(path, upright_frames, rotation, fps=10, **kwargs):
    """A phone-style video: the frames are stored turned counter-clockwise by `rotation` degrees, with display
    metadata telling players to turn them back clockwise, so that a player shows `upright_frames`."""
    stored = [np.ascontiguousarray(np.rot90(frame, rotation // 90)) for frame in upright_frames]
    return write_video(path, stored, fps=fps, rotation=rotation, **kwargs)


def write_astronaut_video(path, num_frames=12, fps=10, width=320, height=240, **kwargs):
    """A real video file of the astronaut photo moving over `num_frames` frames; returns `(path, placements)`."""
    write_video(path, astronaut_frames(num_frames, width, height), fps=fps, **kwargs)
    return path, astronaut_frame_placements(num_frames, width, height)


def record_hub_uploads(monkeypatch) -> dict:
    """Replaces the hub API with a recorder (no network): `push_to_hub` runs for real up to the upload, and the
    returned dict fills with `{path_in_repo: bytes}` and `"__commit__": (repo_id, commit_message)`."""
    import huggingface_hub
    import transformers.utils.hub as hub

    uploaded = {}

    class RecordingApi:
        def create_repo(self, repo_id, **kwargs):
            return huggingface_hub.RepoUrl(f"https://huggingface.co/{repo_id}")

        def create_commit(self, repo_id, operations, commit_message, **kwargs):
            for op in operations:
                with open(op.path_or_fileobj, "rb") as f:
                    uploaded[op.path_in_repo] = f.read()
            uploaded["__commit__"] = (repo_id, commit_message)
            return "commit"

    monkeypatch.setattr(hub, "hf_api", lambda: RecordingApi())
    return uploaded


# ---------------------------------------------------------------------------------------------------------------
# A tiny recognition pipeline
# ---------------------------------------------------------------------------------------------------------------
TINY_CLASSES = {0: "drink water", 1: "eat meal/snack", 2: "kicking something", 3: "jump up", 4: "sit down",
                5: "stand up"}


def tiny_recognition_pipeline(tokenizer, clip_len=8, **config_kwargs):
    """The "skeleton-action-recognition" pipeline of a tiny contrastive model (random weights, eval mode) with
    `tokenizer` (e.g. the packaged MiniLM's): `pipe.save_pretrained(folder)` gives a model folder.
    `config_kwargs` go to the config (e.g. `objective="pacl"`, `heatmap_config={...}`)."""
    from transformers import pipeline

    from modeling_skeletonclip import SkeletonClipConfig, SkeletonClipModel

    torch.manual_seed(0)
    settings = dict(video_config=TINY_VIDEO, heatmap_config=TINY_HEATMAP, text_config=TINY_TEXT, frame_embed_dim=24,
                    projection_dim=16, id2label=TINY_CLASSES, clip_len=clip_len)
    config = SkeletonClipConfig(**{**settings, **config_kwargs})
    return pipeline("skeleton-action-recognition", model=SkeletonClipModel(config).eval(), tokenizer=tokenizer)


# ---------------------------------------------------------------------------------------------------------------
# Tiny inputs of the objectives and tiny runs of the training command
# ---------------------------------------------------------------------------------------------------------------
def heatmaps_for(model, batch, seed=0):
    """Heatmaps `[B, 17, 8, 16, 16]` of random keypoints, rendered by `model`."""
    keypoints, scores = random_keypoints(batch, seed=seed)
    return model.prepare_heatmaps(keypoints, scores, heatmap_size=(16, 16))[0]


def token_ids(n, length=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(1000, 2000, (n, length), generator=g)


def tiny_command_args(poses, output_dir, *extra):
    """Arguments of `skeletonclip train` for a tiny run on `poses` (`(pickle path, label map path)`): the tiny
    config, 8-frame clips, batches of 8, CPU, no progress bars, seed 3, the Arrow cache beside `output_dir`."""
    pickle_path, labels = poses
    return [
        "--train_file", pickle_path, "--label_map", labels, "--train_split", "train", "--eval_split", "val",
        "--output_dir", str(output_dir), "--preset", "small", "--config_overrides", TINY_OVERRIDES, "--clip_len", "8",
        "--per_device_train_batch_size", "8", "--per_device_eval_batch_size", "8", "--report_to", "none",
        "--use_cpu", "true", "--disable_tqdm", "true", "--seed", "3", "--dataset_cache_dir",
        str(output_dir) + "_cache", *extra,
    ]
