import os
import sys

import pytest
import torch

# No network at test time: everything loads from disk.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

torch.set_num_threads(min(2, torch.get_num_threads()))

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


@pytest.fixture
def tiny_config():
    from modeling_skeletonclip import SkeletonClipConfig

    return SkeletonClipConfig(
        video_config=TINY_VIDEO,
        text_config=TINY_TEXT,
        heatmap_config=TINY_HEATMAP,
        frame_embed_dim=24,
        projection_dim=16,
        id2label={0: "drink water", 1: "eat meal/snack", 2: "kicking something", 3: "jump up"},
    )


@pytest.fixture(scope="session")
def minilm_tokenizer():
    from modeling_skeletonclip.text_encoders import packaged_text_encoder_path
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(packaged_text_encoder_path())


def random_keypoints(batch, persons=1, frames=8, joints=17, size=16, views=None, seed=0):
    g = torch.Generator().manual_seed(seed)
    shape = (batch,) + ((views,) if views else ()) + (persons, frames, joints)
    keypoints = torch.rand(shape + (2,), generator=g) * (size - 1)
    scores = torch.rand(shape, generator=g) * 0.7 + 0.3
    return keypoints, scores
