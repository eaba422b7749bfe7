"""Metric modules for `evaluate.load(path)`; they load from disk, with no network."""

import os

SKELETON_ACCURACY_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "skeleton_accuracy")


def load_skeleton_accuracy():
    import evaluate

    return evaluate.load(SKELETON_ACCURACY_PATH)
