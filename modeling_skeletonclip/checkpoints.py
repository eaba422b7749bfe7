"""Complete checkpoints: a manifest written last, verification, and the newest complete checkpoint of a run.

A checkpoint folder is complete when every file the Trainer wrote is there, whole. `write_manifest` records the name
and size of each file once all of them are written; `checkpoint_problem` checks a folder against its manifest and the
files' own structure (a folder written before manifests existed is checked on its structure alone), so that a folder
left by a kill, a full disk or a truncated copy is recognised instead of being resumed from.
"""

import json
import logging
import os
import re
import struct
import zipfile


logger = logging.getLogger(__name__)

MANIFEST_NAME = "checkpoint_manifest.json"
TRAINER_STATE_NAME = "trainer_state.json"  # transformers.trainer.TRAINER_STATE_NAME, written last by the Trainer
WEIGHTS_NAMES = (
    "model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json"
)
_CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")


def _files(folder: str) -> dict[str, int]:
    sizes = {}
    for root, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            rel = os.path.relpath(path, folder)
            if rel not in (MANIFEST_NAME, MANIFEST_NAME + ".tmp"):
                sizes[rel] = os.path.getsize(path)
    return dict(sorted(sizes.items()))


def write_manifest(folder: str, global_step: int) -> None:
    """Records every file of `folder` with its size; written through a temporary file and renamed, so that the
    manifest exists only whole, and only after everything it lists."""
    path = os.path.join(folder, MANIFEST_NAME)
    manifest = {"global_step": global_step, "files": _files(folder)}
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(manifest, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def remove_manifest(folder: str) -> None:
    """A manifest left by an earlier write of the same step must not vouch for files that are being rewritten."""
    for name in (MANIFEST_NAME, MANIFEST_NAME + ".tmp"):
        try:
            os.remove(os.path.join(folder, name))
        except FileNotFoundError:
            pass


def _safetensors_problem(path: str) -> str | None:
    """A safetensors file is an 8-byte header length, a JSON header and the tensor data it describes."""
    size = os.path.getsize(path)
    try:
        with open(path, "rb") as f:
            (header_len,) = struct.unpack("<Q", f.read(8))
            if 8 + header_len > size:
                raise ValueError
            header = json.loads(f.read(header_len))
        end = max((t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"), default=0)
    except (struct.error, ValueError, KeyError, TypeError, IndexError):
        return "its header is unreadable"
    if size != 8 + header_len + end:
        return f"it has {size} bytes, its header describes {8 + header_len + end}"
    return None


def _file_problem(path: str) -> str | None:
    if path.endswith(".safetensors"):
        return _safetensors_problem(path)
    if path.endswith((".pt", ".pth", ".bin")):
        # torch.save writes a zip archive, whose directory is at the end: a cut file has none.
        return None if zipfile.is_zipfile(path) else "it is not a whole torch archive"
    if path.endswith(".json"):
        try:
            with open(path) as f:
                json.load(f)
        except (ValueError, UnicodeDecodeError):
            return "it is not valid JSON"
    return None


def checkpoint_problem(folder: str) -> str | None:
    """Why `folder` is not a complete checkpoint to resume from, or None when it is."""
    if not os.path.isfile(os.path.join(folder, TRAINER_STATE_NAME)):
        return f"it has no {TRAINER_STATE_NAME} (its write did not finish)"
    manifest_path = os.path.join(folder, MANIFEST_NAME)
    if os.path.isfile(manifest_path):
        try:
            with open(manifest_path) as f:
                expected = json.load(f)["files"]
        except (ValueError, KeyError, TypeError):
            return f"its {MANIFEST_NAME} is unreadable"
        for name, size in expected.items():
            path = os.path.join(folder, name)
            if not os.path.isfile(path):
                return f"{name} is missing"
            if os.path.getsize(path) != size:
                return f"{name} has {os.path.getsize(path)} bytes, {size} were written"
    if not any(os.path.isfile(os.path.join(folder, name)) for name in WEIGHTS_NAMES):
        return "it holds no model weights"
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if os.path.isfile(path) and name != MANIFEST_NAME:
            problem = _file_problem(path)
            if problem is not None:
                return f"{name} is damaged: {problem}"
    return None


def checkpoint_folders(output_dir: str) -> list[str]:
    """The `checkpoint-<step>` folders of `output_dir`, newest (highest step) first."""
    steps = []
    for name in os.listdir(output_dir):
        match = _CHECKPOINT_RE.match(name)
        if match and os.path.isdir(os.path.join(output_dir, name)):
            steps.append((int(match.group(1)), name))
    return [os.path.join(output_dir, name) for _, name in sorted(steps, reverse=True)]


def last_complete_checkpoint(output_dir: str) -> str | None:
    """The newest complete checkpoint of `output_dir` (None if there is none); every newer folder that is incomplete
    or damaged is named in a warning and left alone."""
    for folder in checkpoint_folders(output_dir):
        problem = checkpoint_problem(folder)
        if problem is None:
            return folder
        logger.warning(f"Not resuming from {folder}: {problem}.")
    return None
