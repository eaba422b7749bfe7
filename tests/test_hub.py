import json
import os
import shutil
import subprocess
import sys
import tarfile
import textwrap

import torch
from helpers import SAVED_MODELS, TINY_HEATMAP, TINY_VIDEO, random_keypoints, record_hub_uploads

from modeling_skeletonclip import SkeletonClipForActionRecognition, SkeletonClipModel


def tiny_pretrained_model():
    """A small video encoder around the real packaged text encoder (weights and tokenizer)."""
    torch.manual_seed(0)
    model, tokenizer = SkeletonClipModel.from_text_pretrained(
        None,
        video_config=TINY_VIDEO,
        heatmap_config=TINY_HEATMAP,
        projection_dim=16,
        frame_embed_dim=24,
        id2label={0: "drink water", 1: "jump up"},
    )
    return model.eval(), tokenizer


def test_save_pretrained_writes_weights_config_code_and_tokenizer(tmp_path):
    model, _ = tiny_pretrained_model()
    model.save_pretrained(tmp_path)
    files = set(os.listdir(tmp_path))
    assert "model.safetensors" in files
    code = {name for name in files if name.endswith(".py")}
    # The model code and its pipeline, nothing else: no training tools, data loader, benchmarks or command-line code.
    assert code == {"configuration_skeletonclip.py", "modeling_skeletonclip.py", "objectives.py", "distributed.py",
                    "heatmaps.py", "pose_layouts.py", "fast_slowonly.py", "text_encoders.py",
                    "pipeline_skeletonclip.py", "pose_transforms.py", "pose_errors.py", "class_descriptions.py"}
    assert {"tokenizer_config.json", "tokenizer.json"} <= files
    config = json.load(open(tmp_path / "config.json"))
    assert config["auto_map"]["AutoConfig"] == "configuration_skeletonclip.SkeletonClipConfig"
    assert config["auto_map"]["AutoModel"] == "modeling_skeletonclip.SkeletonClipModel"
    assert config["model_type"] == "skeleton_clip"
    assert config["custom_pipelines"]["skeleton-action-recognition"]["pt"] == ["AutoModel"]


def test_round_trip_in_process_is_exact(tmp_path):
    model, tokenizer = tiny_pretrained_model()
    model.save_pretrained(tmp_path)
    loaded = SkeletonClipModel.from_pretrained(tmp_path).eval()
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)
    assert loaded.tokenizer is not None
    keypoints, scores = random_keypoints(2)
    texts = tokenizer(["drink water", "jump up"], padding=True, return_tensors="pt")
    with torch.no_grad():
        a = model(keypoints=keypoints, keypoint_scores=scores, **texts).logits_per_video
        b = loaded(keypoints=keypoints, keypoint_scores=scores, **texts).logits_per_video
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_trust_remote_code_in_fresh_process_without_the_package(tmp_path):
    model, tokenizer = tiny_pretrained_model()
    model.save_pretrained(tmp_path / "ckpt")
    keypoints, scores = random_keypoints(2)
    texts = tokenizer(["drink water", "jump up"], padding=True, return_tensors="pt")
    with torch.no_grad():
        expected = model(keypoints=keypoints, keypoint_scores=scores, **texts).logits_per_video
    torch.save({"keypoints": keypoints, "scores": scores, **dict(texts)}, tmp_path / "inputs.pt")
    script = textwrap.dedent(
        f"""
        import sys, torch
        from transformers import AutoModel
        model = AutoModel.from_pretrained({str(tmp_path / 'ckpt')!r}, trust_remote_code=True).eval()
        assert "modeling_skeletonclip" not in sys.modules, "the package must not be imported"
        assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
        x = torch.load({str(tmp_path / 'inputs.pt')!r})
        with torch.no_grad():
            out = model(keypoints=x["keypoints"], keypoint_scores=x["scores"], input_ids=x["input_ids"],
                        attention_mask=x["attention_mask"], token_type_ids=x["token_type_ids"])
        torch.save(out.logits_per_video, {str(tmp_path / 'out.pt')!r})
        """
    )
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_MODULES_CACHE=str(tmp_path / "modules"), PYTHONPATH="")
    # Run from an empty folder so that the repository's package is not importable.
    subprocess.run([sys.executable, "-c", script], check=True, cwd=tmp_path, env=env, timeout=300)
    torch.testing.assert_close(torch.load(tmp_path / "out.pt"), expected, rtol=0, atol=0)


def test_two_versions_of_the_code_in_one_process_each_run_their_own_op(tmp_path, monkeypatch):
    # A `trust_remote_code` model's files are a second copy of the package's modules (`transformers_modules...`),
    # possibly of another version. Each copy registers its fused inference op under a name of its own code, so a
    # changed copy runs its own op, not whichever copy registered first.
    import importlib

    import modeling_skeletonclip.fast_slowonly as package_fast
    from modeling_skeletonclip import SkeletonClipVideoConfig
    from modeling_skeletonclip.modeling_skeletonclip import SkeletonClipVideoEncoder

    copy_dir = tmp_path / "other_version"
    copy_dir.mkdir()
    source = open(package_fast.__file__).read()
    changed = source.replace("    return out.relu_().contiguous(memory_format=torch.channels_last)",
                             "    return (out.relu_() + 1).contiguous(memory_format=torch.channels_last)")
    assert changed != source
    (copy_dir / "fast_slowonly.py").write_text(changed)
    (copy_dir / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    copy_fast = importlib.import_module("other_version.fast_slowonly")

    torch.manual_seed(0)
    encoder = SkeletonClipVideoEncoder(SkeletonClipVideoConfig(**TINY_VIDEO)).eval()
    x = torch.rand(1, encoder.config.in_channels, 4, 16, 16)
    with torch.no_grad():
        plain = package_fast.fast_video_encoder_forward(encoder, x, fused_epilogues=False)
        package_fused = package_fast.fast_video_encoder_forward(encoder, x, fused_epilogues=True)
        copy_fused = copy_fast.fast_video_encoder_forward(encoder, x, fused_epilogues=True)
        package_again = package_fast.fast_video_encoder_forward(encoder, x, fused_epilogues=True)
    torch.testing.assert_close(package_fused, plain)
    torch.testing.assert_close(package_again, plain)
    assert not torch.allclose(copy_fused, plain)  # the other version's op ran
    assert copy_fast._op_namespace() != package_fast._op_namespace()


def test_loading_registers_no_op_and_old_checkpoints_run_their_own_code(tmp_path):
    # In one fresh process: a checkpoint saved by version 0.1.0 (its own code, which registers custom ops at import)
    # and one saved by this version, both through trust_remote_code; each reproduces its outputs, and loading and
    # running this version's model on the CPU registers no op at all.
    from modeling_skeletonclip import SkeletonClipModel

    old = os.path.join(SAVED_MODELS, "itc")
    shutil.copytree(old, tmp_path / "saved_by_0_1_0")
    with tarfile.open(os.path.join(SAVED_MODELS, "itc_code_0_1_0.tar.gz")) as code:  # the code it was saved with
        code.extractall(tmp_path / "saved_by_0_1_0", filter="data")
    SkeletonClipModel.from_pretrained(old).save_pretrained(tmp_path / "saved_now")
    script = textwrap.dedent(
        f"""
        import sys, torch
        from safetensors.torch import load_file
        from transformers import AutoModel

        def ops():
            return sorted(n for n in torch._C._dispatch_get_all_op_names() if n.startswith("skeletonclip"))

        x = load_file({os.path.join(SAVED_MODELS, "inputs.safetensors")!r})
        expected = load_file({os.path.join(old, "loaded_outputs.safetensors")!r})["eval_logits"]
        inputs = dict(keypoints=x["keypoints"], keypoint_scores=x["keypoint_scores"], input_ids=x["input_ids"],
                      attention_mask=x["attention_mask"])
        new = AutoModel.from_pretrained({str(tmp_path / "saved_now")!r}, trust_remote_code=True).eval()
        with torch.no_grad():
            new_logits = new(**inputs).logits_per_video
        assert ops() == [], ops()
        old = AutoModel.from_pretrained({str(tmp_path / "saved_by_0_1_0")!r}, trust_remote_code=True).eval()
        assert type(old).__module__ != type(new).__module__
        assert "skeletonclip::conv2d_bias_relu" in ops(), ops()  # the old code's import-time registration
        with torch.no_grad():
            old_logits = old(**inputs).logits_per_video
            new_again = new(**inputs).logits_per_video
        assert "modeling_skeletonclip" not in sys.modules
        for got in (new_logits, old_logits, new_again):
            torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
        print("ok")
        """
    )
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_MODULES_CACHE=str(tmp_path / "modules"), PYTHONPATH="")
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, timeout=300, capture_output=True,
                            text=True)
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr[-3000:]


def test_classifier_registers_video_classification_auto_class(tmp_path, tiny_config):
    from transformers import AutoModelForVideoClassification

    model = SkeletonClipForActionRecognition(tiny_config).eval()
    model.save_pretrained(tmp_path)
    config = json.load(open(tmp_path / "config.json"))
    assert config["auto_map"]["AutoModelForVideoClassification"] == (
        "modeling_skeletonclip.SkeletonClipForActionRecognition"
    )
    loaded = AutoModelForVideoClassification.from_pretrained(tmp_path).eval()
    assert isinstance(loaded, SkeletonClipForActionRecognition)
    keypoints, scores = random_keypoints(1)
    with torch.no_grad():
        torch.testing.assert_close(
            model(keypoints=keypoints, keypoint_scores=scores).logits,
            loaded(keypoints=keypoints, keypoint_scores=scores).logits,
        )


def test_push_to_hub_uploads_model_code_tokenizer_and_card(monkeypatch):
    """No network: the hub API is replaced by a recorder; everything up to the upload runs for real."""
    import huggingface_hub
    from huggingface_hub.errors import EntryNotFoundError

    uploaded = record_hub_uploads(monkeypatch)

    def no_remote_card(*args, **kwargs):
        raise EntryNotFoundError("no README.md in a new repo")

    monkeypatch.setattr(huggingface_hub.ModelCard, "load", classmethod(no_remote_card))
    model, _ = tiny_pretrained_model()
    model.push_to_hub("someone/skeletonclip-tiny", commit_message="Upload SkeletonCLIP", tags=["skeleton"])
    assert uploaded["__commit__"] == ("someone/skeletonclip-tiny", "Upload SkeletonCLIP")
    assert {"model.safetensors", "config.json", "modeling_skeletonclip.py", "configuration_skeletonclip.py",
            "heatmaps.py", "pipeline_skeletonclip.py", "tokenizer.json", "README.md"} <= set(uploaded)
    card = uploaded["README.md"].decode()
    assert "library_name: transformers" in card and "skeleton" in card
    assert json.loads(uploaded["config.json"])["auto_map"]["AutoModel"] == "modeling_skeletonclip.SkeletonClipModel"
