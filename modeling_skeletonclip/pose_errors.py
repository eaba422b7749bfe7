"""The error every pose reader raises for data that do not follow the format, and the coordinate bound they share.

A module of its own, free of the readers, so that the code a checkpoint carries (the transforms, the pipeline) can
raise the same error as the dataset loader without bringing the loader and its pickle reader along.
"""


class PoseDataError(ValueError):
    """A pose pickle or one of its annotations does not follow the format; the message names file, clip and field."""


# Coordinates are pixels: anything beyond this is garbage, and float32 maths in the transforms would overflow.
MAX_ABS_COORDINATE = 1e6

__all__ = ["MAX_ABS_COORDINATE", "PoseDataError"]
