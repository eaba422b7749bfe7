"""Features of every process: all-gathers along the batch dimension, with or without gradients.

On a single process (or without `torch.distributed`) both return their input, so callers need no special case.
"""

import torch
import torch.distributed as dist


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def gather_no_grad(tensor: torch.Tensor) -> torch.Tensor:
    """`[P * N, ...]`: every process's `tensor` in rank order, without gradients."""
    if world_size() == 1:
        return tensor
    out = [torch.empty_like(tensor) for _ in range(world_size())]
    dist.all_gather(out, tensor.contiguous())
    return torch.cat(out, dim=0)


def gather_with_grad(tensor: torch.Tensor) -> torch.Tensor:
    """`[P * N, ...]` like `gather_no_grad`, keeping gradients for every process's slice: the backward sums each
    feature's gradient over the processes, so a loss that every process computes on the gathered features gives,
    after DDP's averaging, the update of one process holding the global batch."""
    if world_size() == 1:
        return tensor
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(tensor), dim=0)


__all__ = ["gather_no_grad", "gather_with_grad", "world_size"]
