"""What the installed package holds and where it looks: packaged data under their checkout paths, the user cache,
and the modeling files' import closure (transformers copies it into every saved checkpoint) free of the commands."""

import os

import pytest
from transformers.dynamic_module_utils import get_relative_import_files

from modeling_skeletonclip import resources

# Modules that only the command line and the benchmark use; no checkpoint should carry them.
COMMAND_MODULES = {"cli", "convert_pyskl", "extract_poses", "pose_tracking", "presets", "resources", "run_training"}


@pytest.mark.parametrize("module", ["modeling_skeletonclip.py", "configuration_skeletonclip.py"])
def test_checkpoint_code_does_not_import_the_command_modules(module):
    closure = get_relative_import_files(os.path.join(resources.PACKAGE_DIR, module))
    names = {os.path.splitext(os.path.basename(path))[0] for path in closure}
    assert names and not names & COMMAND_MODULES, sorted(names & COMMAND_MODULES)


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
