import os

# No network at test time: everything loads from disk (set before transformers is imported).
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")

import pytest  # noqa: E402
import torch  # noqa: E402
from helpers import TINY_HEATMAP, TINY_TEXT, TINY_VIDEO  # noqa: E402

torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(scope="module")
def torch_one_thread():
    """Torch on one thread for a module's tests (`pytestmark = pytest.mark.usefixtures("torch_one_thread")`): tiny
    models run as fast on one thread, and one thread does not stall when other processes share the cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


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

