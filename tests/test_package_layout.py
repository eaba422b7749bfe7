"""What the installed package holds and where it looks: packaged data under their checkout paths, the user cache,
and the modeling and pipeline files' import closure (transformers copies it into every saved checkpoint) free of
the commands, the data loader and the video extra."""

import os

import pytest
from transformers.dynamic_module_utils import get_relative_import_files

from modeling_skeletonclip import resources

# Modules that only the command line and the benchmark use; no checkpoint should carry them.
COMMAND_MODULES = {"cli", "compare_objectives", "convert_pyskl", "extract_poses", "onnx_export", "pose_tracking",
                   "predict_videos", "presets", "resources", "run_training", "streaming", "visualize"}
COMMAND_MODULES |= {"evaluation_report", "learning_curves", "model_card"}  # the reports of a training run
# The ONNX runner (onnxruntime): the pipeline runs it when given one, without importing it.
ONNX_MODULES = {"onnx_export", "onnx_runtime"}


# Modules of the data loader (its pickle reader), of the video extra and the sample video maker; a checkpoint carries
# none of them either.
LOADER_AND_VIDEO_MODULES = {"pose_dataset", "safe_pickle", "clip_dataset", "synthetic_poses", "video_io",
                            "pose_estimators", "pose_tracking", "extract_poses", "pose_drawing", "sample_videos",
                            "streaming"}
# Everything a checkpoint carries: the model, its objectives and renderer, and the pipeline with the transforms.
CHECKPOINT_MODULES = {"configuration_skeletonclip", "modeling_skeletonclip", "objectives", "distributed", "heatmaps",
                      "pose_layouts", "fast_slowonly", "text_encoders", "pipeline_skeletonclip", "pose_transforms",
                      "pose_errors", "class_descriptions"}


def _closure(module):
    return {os.path.splitext(os.path.basename(path))[0]
            for path in get_relative_import_files(os.path.join(resources.PACKAGE_DIR, module))}


@pytest.mark.parametrize("module", ["modeling_skeletonclip.py", "configuration_skeletonclip.py",
                                    "pipeline_skeletonclip.py"])
def test_checkpoint_code_does_not_import_the_command_modules(module):
    names = _closure(module)
    assert names and not names & COMMAND_MODULES, sorted(names & COMMAND_MODULES)
    assert not names & LOADER_AND_VIDEO_MODULES, sorted(names & LOADER_AND_VIDEO_MODULES)
    assert not names & ONNX_MODULES, sorted(names & ONNX_MODULES)


def test_the_model_code_carries_exactly_the_checkpoint_modules():
    assert _closure("modeling_skeletonclip.py") | {"modeling_skeletonclip"} == CHECKPOINT_MODULES
    assert _closure("pipeline_skeletonclip.py") == {"pose_transforms", "pose_errors", "pose_layouts",
                                                    "class_descriptions"}


def test_the_demo_app_lives_outside_the_package_and_its_sample_maker_inside():
    # app.py (the Gradio demo) sits at the repository root; the sample video maker it and the tests share is a
    # package module that no checkpoint carries (see LOADER_AND_VIDEO_MODULES).
    assert os.path.isfile(os.path.join(os.path.dirname(resources.PACKAGE_DIR), "app.py"))
    assert not os.path.exists(os.path.join(resources.PACKAGE_DIR, "app.py"))
    assert os.path.isfile(os.path.join(resources.PACKAGE_DIR, "sample_videos.py"))


def test_pose_data_error_is_one_class_everywhere():
    import modeling_skeletonclip
    from modeling_skeletonclip import pose_dataset, pose_errors, pose_transforms, safe_pickle

    assert (modeling_skeletonclip.PoseDataError is pose_dataset.PoseDataError is safe_pickle.PoseDataError
            is pose_transforms.PoseDataError is pose_errors.PoseDataError)
    assert issubclass(safe_pickle.UnsafePickleError, pose_errors.PoseDataError)
    assert pose_dataset.MAX_ABS_COORDINATE == pose_transforms.MAX_ABS_COORDINATE == 1e6


def test_presets_import_nothing_of_the_trainer():
    closure = get_relative_import_files(os.path.join(resources.PACKAGE_DIR, "presets.py"))
    assert closure == []


@pytest.mark.parametrize(
    "path", ["data/label_maps/ntu60.txt", "data/label_maps/ntu120.txt", "./data/zero_shot/ntu60_55_5.json",
             "data/zero_shot/synthetic_10_3.json"],
)
def test_checkout_data_paths_have_a_packaged_copy(path):
    packaged = resources.packaged_data_file(path)
    assert packaged == os.path.join(resources.PACKAGE_DIR, os.path.normpath(path)) and os.path.isfile(packaged)


@pytest.mark.parametrize("path", ["data/label_maps/nope.txt", "label_maps/ntu60.txt", "/data/label_maps/ntu60.txt",
                                  "data/../data/label_maps/nope.txt"])
def test_other_paths_have_no_packaged_copy(path):
    assert resources.packaged_data_file(path) is None


def test_the_demo_recipe_is_packaged_and_found_by_its_bare_name():
    assert os.path.isfile(resources.DEMO_RECIPE)
    assert resources.packaged_recipe("synthetic_demo.json") == resources.DEMO_RECIPE
    assert resources.packaged_recipe("configs/synthetic_demo.json") is None  # only bare names
    assert resources.packaged_recipe("ntu60_xsub_visece.json") is None  # the NTU recipes live in configs/


def test_cache_dir_honours_its_variable_then_xdg(monkeypatch, tmp_path):
    monkeypatch.delenv("SKELETONCLIP_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert resources.cache_dir() == str(tmp_path / "home" / ".cache" / "skeletonclip")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert resources.cache_dir() == str(tmp_path / "xdg" / "skeletonclip")
    monkeypatch.setenv("SKELETONCLIP_CACHE", str(tmp_path / "mine"))
    assert resources.cache_dir() == str(tmp_path / "mine")
