"""Top-1, top-5 and mean class accuracy from class scores, as an `evaluate` metric that loads offline.

    metric = evaluate.load("path/to/modeling_skeletonclip/metrics/skeleton_accuracy")
    metric.compute(predictions=scores, references=labels)   # scores [N, L], labels [N]
"""

import datasets
import evaluate
import numpy as np


_DESCRIPTION = """
Accuracy of action recognition from per-class scores (logits or probabilities, any monotone scale):
top-1 and top-k (default 5) accuracy over clips, and mean class accuracy (the mean over classes present in the
references of the per-class top-1 recall), as reported by PoseC3D / pyskl.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list[list[float]]` or array [N, L]): class scores of every clip.
    references (`list[int]` [N]): the true class index of every clip.
    top_k (`int`, defaults to 5): k of the top-k accuracy (clipped to L).
Returns:
    top1_accuracy, top5_accuracy (named after `top_k`), mean_class_accuracy: floats in [0, 1].
Example:
    >>> metric = evaluate.load("modeling_skeletonclip/metrics/skeleton_accuracy")
    >>> metric.compute(predictions=[[0.1, 0.9], [0.8, 0.2]], references=[1, 1])
    {'top1_accuracy': 0.5, 'top5_accuracy': 1.0, 'mean_class_accuracy': 0.5}
"""

_CITATION = """
@inproceedings{duan2022revisiting,
  title={Revisiting skeleton-based action recognition},
  author={Duan, Haodong and Zhao, Yue and Chen, Kai and Lin, Dahua and Dai, Bo},
  booktitle={CVPR},
  year={2022}
}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class SkeletonAccuracy(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Sequence(datasets.Value("float32")), "references": datasets.Value("int64")}
            ),
        )

    def _compute(self, predictions, references, top_k: int = 5):
        scores = np.asarray(predictions, dtype=np.float64)  # [N, L]
        labels = np.asarray(references, dtype=np.int64)  # [N]
        if scores.ndim != 2 or scores.shape[0] != labels.shape[0]:
            raise ValueError(f"predictions must be [N, L] with N = len(references), got {scores.shape} and {labels.shape}.")
        if labels.size and (labels.min() < 0 or labels.max() >= scores.shape[1]):
            raise ValueError(f"references must lie in [0, {scores.shape[1]}), got [{labels.min()}, {labels.max()}].")
        k = min(top_k, scores.shape[1])
        # Stable descending order: ties go to the lower class index, the same as argmax.
        ranked = np.argsort(-scores, axis=1, kind="stable")[:, :k]  # [N, k]
        top1 = ranked[:, 0] == labels
        topk = (ranked == labels[:, None]).any(axis=1)
        per_class = [top1[labels == c].mean() for c in np.unique(labels)]
        return {
            "top1_accuracy": float(top1.mean()) if labels.size else 0.0,
            f"top{top_k}_accuracy": float(topk.mean()) if labels.size else 0.0,
            "mean_class_accuracy": float(np.mean(per_class)) if per_class else 0.0,
        }
