import os

import pytest
import torch

from modeling_skeletonclip.resources import PACKAGE_DIR

NTU60_LABELS = os.path.join(PACKAGE_DIR, "data", "label_maps", "ntu60.txt")


def load_script():
    from modeling_skeletonclip import convert_pyskl

    return convert_pyskl


def pyskl_state_dict(num_classes=60):
    """A PoseC3D state dict written from pyskl's key names (SPEC §3), every tensor distinct."""
    g = torch.Generator().manual_seed(0)
    sd = {}

    def conv_module(prefix, cin, cout, kernel):
        sd[f"{prefix}.conv.weight"] = torch.randn(cout, cin, *kernel, generator=g)
        for name in ("weight", "bias", "running_mean", "running_var"):
            sd[f"{prefix}.bn.{name}"] = torch.rand(cout, generator=g) + 0.5
        sd[f"{prefix}.bn.num_batches_tracked"] = torch.tensor(1234)

    conv_module("backbone.conv1", 17, 32, (1, 7, 7))
    cin = 32
    for i, (blocks, planes, inflate) in enumerate(zip((4, 6, 3), (32, 64, 128), (0, 1, 1)), start=1):
        for j in range(blocks):
            conv_module(f"backbone.layer{i}.{j}.conv1", cin, planes, (3, 1, 1) if inflate else (1, 1, 1))
            conv_module(f"backbone.layer{i}.{j}.conv2", planes, planes, (1, 3, 3))
            conv_module(f"backbone.layer{i}.{j}.conv3", planes, planes * 4, (1, 1, 1))
            if j == 0:
                conv_module(f"backbone.layer{i}.0.downsample", cin, planes * 4, (1, 1, 1))
            cin = planes * 4
    sd["cls_head.fc_cls.weight"] = torch.randn(num_classes, 512, generator=g)
    sd["cls_head.fc_cls.bias"] = torch.randn(num_classes, generator=g)
    return sd


def test_every_pyskl_tensor_lands_where_it_belongs(tmp_path):
    script = load_script()
    sd = pyskl_state_dict()
    torch.save({"meta": {"epoch": 24}, "state_dict": sd}, tmp_path / "posec3d.pth")
    model = script.convert(tmp_path / "posec3d.pth", tmp_path / "out", NTU60_LABELS)
    ours = model.state_dict()
    assert len(ours) == len(sd)
    for key, tensor in sd.items():
        new_key = key.replace("backbone.", "video_encoder.").replace("cls_head.fc_cls.", "classifier.")
        torch.testing.assert_close(ours[new_key], tensor, rtol=0, atol=0, msg=key)
    assert model.config.id2label[0] == "drink water"
    assert model.config.video_config.stage_blocks == [4, 6, 3]
    assert os.path.isfile(tmp_path / "out" / "model.safetensors")


def test_unknown_keys_and_wrong_label_map_are_refused(tmp_path):
    script = load_script()
    sd = pyskl_state_dict()
    sd["neck.something.weight"] = torch.zeros(1)
    with pytest.raises(ValueError, match="neck.something.weight"):
        script.convert_pyskl_state_dict(sd)
    sd = pyskl_state_dict(num_classes=120)
    torch.save(sd, tmp_path / "x.pth")
    with pytest.raises(ValueError, match="60 names but the checkpoint has 120 classes"):
        script.convert(tmp_path / "x.pth", tmp_path / "out", NTU60_LABELS)


def test_command_line_finds_the_packaged_label_map_and_names_a_missing_one(tmp_path, monkeypatch, capsys):
    script = load_script()
    torch.save(pyskl_state_dict(), tmp_path / "posec3d.pth")
    monkeypatch.chdir(tmp_path)  # no data/ here: data/label_maps/ntu60.txt is the package's copy
    script.main(["posec3d.pth", "out", "--label_map", "data/label_maps/ntu60.txt"])
    assert "Saved SkeletonClipForActionRecognition to out" in capsys.readouterr().out
    assert os.path.isfile(tmp_path / "out" / "config.json")
    with pytest.raises(SystemExit) as exit_info:
        script.main(["posec3d.pth", "out2", "--label_map", "data/label_maps/ntu61.txt"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.splitlines() == ["error: --label_map data/label_maps/ntu61.txt does not exist."]
