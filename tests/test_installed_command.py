"""`pip install` of this checkout gives a `skeletonclip` command that works outside the checkout: a wheel installed
into a fresh virtual environment, run from a folder elsewhere, finds its demo recipe and label maps in the package
and writes the generated demo poses to the user cache.

The environment sees the dependencies of the running interpreter through a `.pth` file that lists its
site-packages. A path line in a `.pth` is only added to sys.path; the `.pth` files inside that folder are not run,
so an editable install of this checkout there does not leak in.
"""

import json
import os
import shutil
import site
import subprocess
import sys
import sysconfig

import pytest
from helpers import REPO_ROOT

TINY = json.dumps(
    {
        "video_config": {"base_channels": 8, "stage_planes": [8, 8, 8], "stage_blocks": [1, 1, 1]},
        "heatmap_config": {"train_size": [16, 16], "eval_size": [16, 16]},
        "projection_dim": 16,
        "frame_embed_dim": 16,
    }
)
# Left out of the copy the wheel is built from: version control, environments, build leftovers, outputs.
NOT_SOURCES = (".git", ".venv", "venv", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", "runs",
               "outputs", ".whl", ".cache")


def run(argv, **kwargs):
    return subprocess.run(argv, capture_output=True, text=True, timeout=300, **kwargs)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """`(bin folder, environment variables, working folder)` of a fresh venv holding a wheel of this checkout."""
    root = tmp_path_factory.mktemp("installed")
    # Built from a copy: setuptools packs whatever its build/ folder holds, stale modules included.
    source = root / "source"
    shutil.copytree(REPO_ROOT, source, ignore=shutil.ignore_patterns(*NOT_SOURCES))
    built = run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                 "-w", str(root / "wheels"), str(source)])
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = (root / "wheels").glob("skeletonclip-*.whl")

    venv = root / "venv"
    created = run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    assert created.returncode == 0, created.stderr
    python = venv / "bin" / "python"
    venv_site = run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip()
    paths = sysconfig.get_paths()
    parent_site = dict.fromkeys([*site.getsitepackages(), paths["purelib"], paths["platlib"]])
    with open(os.path.join(venv_site, "running_interpreter_packages.pth"), "w") as f:
        f.write("\n".join(parent_site) + "\n")

    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        HF_HOME=str(root / "hf_home"),  # the datasets Arrow cache and evaluate's modules
        SKELETONCLIP_CACHE=str(root / "skeletonclip_cache"),
        PIP_DISABLE_PIP_VERSION_CHECK="1",
    )
    # --ignore-installed: a skeletonclip in the running interpreter's environment is visible but must stay untouched.
    installed = run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", "--ignore-installed", str(wheel)],
                    env=env)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    work = root / "elsewhere"
    work.mkdir()
    return venv / "bin", env, work


def test_the_package_imports_from_the_venv_not_the_checkout(installed):
    bin_dir, env, work = installed
    found = run([str(bin_dir / "python"), "-c", "import importlib.util; "
                 "print(importlib.util.find_spec('modeling_skeletonclip').origin)"], env=env, cwd=work)
    origin = found.stdout.strip()
    assert origin.startswith(str(bin_dir.parent)) and not origin.startswith(REPO_ROOT), origin


def test_help_lists_the_commands(installed):
    bin_dir, env, work = installed
    result = run([str(bin_dir / "skeletonclip"), "--help"], env=env, cwd=work)
    assert result.returncode == 0, result.stderr
    for command in ("train", "predict", "convert-pyskl"):
        assert f"\n  {command} " in result.stdout


def test_train_help_is_the_argument_parsers(installed):
    bin_dir, env, work = installed
    result = run([str(bin_dir / "skeletonclip"), "train", "--help"], env=env, cwd=work)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: skeletonclip train") and "--train_file" in result.stdout


def test_two_training_steps_on_the_synthetic_demo(installed):
    bin_dir, env, work = installed
    result = run([str(bin_dir / "skeletonclip"), "train", "synthetic_demo.json", "--output_dir", "demo",
                  "--do_eval", "false", "--max_steps", "2", "--preset", "small", "--config_overrides", TINY,
                  "--clip_len", "8", "--per_device_train_batch_size", "4", "--save_strategy", "no",
                  "--use_cpu", "true", "--disable_tqdm", "true"], env=env, cwd=work)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    output = work / "demo"
    assert {"model.safetensors", "config.json"} <= set(os.listdir(output))
    assert json.load(open(output / "trainer_state.json"))["global_step"] == 2
    # The checkpoint's code is the modeling files' import closure, not the command modules.
    assert "modeling_skeletonclip.py" in os.listdir(output) and "run_training.py" not in os.listdir(output)
    poses = os.path.join(env["SKELETONCLIP_CACHE"], "synthetic", "poses.pkl")
    assert os.path.isfile(poses) and f"Generating the synthetic pose dataset at {poses}" in result.stderr
    arrow_cache = os.path.join(env["HF_HOME"], "datasets", "skeletonclip_pose")
    assert os.listdir(arrow_cache), "the pose pickle's Arrow cache is in the datasets cache"
