"""SkeletonCLIP: skeleton-based action recognition with language supervision, HuggingFace-native."""

__version__ = "0.1.0"
