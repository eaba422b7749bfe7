"""The one rule for class descriptions (several texts per class, averaged into one class embedding): shared by the
config, the training command and the pipeline, which a checkpoint carries without the config's code."""

import reprlib


def class_descriptions_problem(descriptions) -> str | None:
    """What is wrong with a class -> descriptions mapping (not a dict, a value that is not a non-empty list of
    non-empty strings), naming the class; None when it is well formed."""
    if not isinstance(descriptions, dict):
        return f"must be an object mapping class names to lists of texts, got {type(descriptions).__name__}."
    for name, texts in descriptions.items():
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) and t.strip() for t in texts):
            return f"class {name!r} must have a non-empty list of non-empty texts, got {reprlib.repr(texts)}."
    return None
