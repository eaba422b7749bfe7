"""Models saved by version 0.1.0 (tests/fixtures/saved_models, one per kind: the PoseC3D classifier and the
contrastive model with every objective) load and reproduce the outputs recorded when they were saved; a model built
today under the same seed reproduces the outputs of the model built then."""

import os

import pytest
import torch
from helpers import SAVED_MODELS
from safetensors.torch import load_file

KINDS = ["classifier", "itc", "itc_itm", "itc_momentum", "pacl", "pacl_in_batch"]


def _make_saved_models():
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_saved_models", os.path.join(SAVED_MODELS, "..", "make_saved_models.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


FIXTURE = _make_saved_models()


def _assert_outputs(actual, expected):
    assert sorted(actual) == sorted(expected)
    for name in expected:
        torch.testing.assert_close(actual[name], expected[name], rtol=1e-5, atol=1e-6, msg=name)


@pytest.mark.parametrize("kind", KINDS)
def test_checkpoint_of_0_1_0_loads_and_reproduces_its_outputs(kind):
    path = os.path.join(SAVED_MODELS, kind)
    model = FIXTURE.model_class(kind).from_pretrained(path)
    saved = load_file(os.path.join(path, "model.safetensors"))
    state = model.state_dict()
    assert sorted(state) == sorted(saved)  # the same keys: nothing missing, nothing new
    for key, tensor in saved.items():
        torch.testing.assert_close(state[key], tensor, rtol=0, atol=0, msg=key)
    _assert_outputs(FIXTURE.run(model, kind, FIXTURE.inputs()), load_file(os.path.join(path, "loaded_outputs.safetensors")))


@pytest.mark.parametrize("kind", KINDS)
def test_model_built_under_a_fixed_seed_is_the_same_model(kind):
    torch.manual_seed(0)
    model = FIXTURE.model_class(kind)(FIXTURE.config_for(kind))
    _assert_outputs(FIXTURE.run(model, kind, FIXTURE.inputs()), load_file(os.path.join(SAVED_MODELS, kind, "fresh_outputs.safetensors")))
