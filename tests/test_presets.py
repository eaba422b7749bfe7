"""`modeling_skeletonclip.presets`: the model sizes of `--preset`, shared by the training command and the benchmark."""

import pytest

from modeling_skeletonclip import SkeletonClipConfig
from modeling_skeletonclip.presets import PRESETS, preset_config, resolve_preset


def test_small_preset_builds_a_config_with_its_sizes():
    config_kwargs, clip_len = preset_config("small")
    assert clip_len == 32
    config = SkeletonClipConfig(**config_kwargs)
    assert config.video_config.stage_planes == [16, 32, 64]
    assert list(config.heatmap_config.train_size) == [24, 24]


def test_preset_config_returns_copies():
    config_kwargs, _ = preset_config("small")
    config_kwargs["video_config"]["conv_impl"] = "conv3d"
    assert "conv_impl" not in PRESETS["small"]["video_config"]


def test_auto_picks_full_on_cuda_else_small(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_preset("auto") == "full" and preset_config("auto")[1] == 48
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_preset("auto") == "small"


def test_unknown_preset_names_the_choices():
    with pytest.raises(ValueError, match=r"--preset must be one of \['full', 'small'\] or 'auto', got 'huge'"):
        preset_config("huge")
