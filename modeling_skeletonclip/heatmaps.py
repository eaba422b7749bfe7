"""Batched pose heatmap rendering in pure torch (SPEC §2; pyskl ``GeneratePoseTarget`` semantics).

``render_heatmaps`` turns keypoints [N, M, T, V, 2] (+ scores [N, M, T, V]) into joint and/or limb
heatmaps [N, C, T, H, W] (or [N, 2, C, T, H, W] with flip-doubling) on whatever device the inputs
live on. It reproduces pyskl (eps = 1e-3) pixel for pixel, up to float32 rounding:

- joint: for a point (x, y) with value (score, or 1 without ``use_score``) >= eps, the window is
  ``[max(int(x - 3 sigma), 0), min(int(x + 3 sigma) + 1, W))`` (``int`` truncates toward zero), the
  same along y; inside it ``exp(-((px - x)^2 + (py - y)^2) / 2 / sigma^2) * value``; max over persons;
- limb (a, b): value ``min(score_a, score_b)``; window from the bounding box of the segment grown by
  3 sigma, as above; if ``|AB|^2 < 1`` the joint heatmap of A (value ``score_a``) is drawn instead;
  otherwise ``exp(-d2 / 2 / sigma^2) * value`` with ``d2`` the squared distance to the segment;
- mirrored views (``mirrored``, ``flip_double``): pyskl's test-time flip (``GeneratePoseTarget(double=True)``)
  mirrors the rendered volume, pixel column x -> W - 1 - x, and swaps left and right channels: joints by the
  layout's flip permutation, limbs by the limb permutation it induces (``mirror_heatmaps``). This is not the
  volume of keypoints flipped to x -> W - 1 - x (the +-3 sigma windows truncate with ``int()``, which is not
  mirror-symmetric), nor of pyskl's training ``Flip`` (x -> W - x), which is applied to keypoints before rendering.

How it is fast: every point only touches its own window, so each point is rendered on a small local
grid (at most ``floor(6 sigma) + 2`` pixels a side for joints; for limbs, segments are grouped by
window size and each group uses its widest window) and max-scattered into the output with
``scatter_reduce_(..., "amax")``. Exponent arguments are computed only inside the window and clamped,
because CPU ``exp`` is very slow for arguments below about -87. The batch is processed in chunks of
(sample, frame) pairs so that temporaries stay bounded; every chunk writes straight into the output
(casting a float32 patch to the output dtype before the max is exact, rounding being monotonic), so
there is no float32 copy of a bfloat16 output. On CPU the output is zero memory from numpy (calloc
with transparent huge pages), much cheaper to fault in than torch.zeros for outputs of ~100 MB+.

``dense=True`` computes the same heatmaps without data-dependent shapes or branches on tensor values, as
``torch.export``, ONNX export and ``torch.jit.trace`` need: every point is evaluated on the whole H x W grid
(the same local-grid arithmetic with the grid at the origin and as large as the image), its window and value
applied as masks, and the persons max-reduced. It costs memory and time in proportion to
``N * M * T * C * H * W``; the windowed renderer stays the default.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np
import torch

from .pose_layouts import COCO17, limb_flip_permutation

__all__ = ["render_heatmaps", "mirror_heatmaps", "heatmap_channel_permutation", "EPS"]

EPS = 1e-3
# exp(x) for x < about -87.3 is a float32 denormal (or 0) and takes a very slow path on CPU; values
# that small are set to exactly 0 instead.
_MIN_EXP_ARG = -87.0
_MAX_COORD = 1e15
# Default bound on the elements of one temporary (float32) per chunk: 2**22 elements = 16 MiB.
_DEFAULT_ELEMENT_BUDGET = 1 << 22


def _check_inputs(keypoints, keypoint_scores, size, sigma, with_joints, with_limbs):
    if not isinstance(keypoints, torch.Tensor):
        keypoints = torch.as_tensor(keypoints)
    if keypoints.ndim != 5 or keypoints.shape[-1] != 2:
        raise ValueError(
            "keypoints must have shape [N, M, T, V, 2] (batch, persons, frames, joints, x/y pixels); "
            f"got shape {tuple(keypoints.shape)}."
        )
    if keypoints.is_complex() or keypoints.dtype == torch.bool:
        raise ValueError(f"keypoints must be real numbers; got dtype {keypoints.dtype}.")
    expected = tuple(keypoints.shape[:-1])
    if keypoint_scores is not None:
        if not isinstance(keypoint_scores, torch.Tensor):
            keypoint_scores = torch.as_tensor(keypoint_scores)
        if tuple(keypoint_scores.shape) != expected:
            raise ValueError(
                f"keypoint_scores must have shape [N, M, T, V] = {list(expected)} to match keypoints "
                f"{list(keypoints.shape)}; got shape {tuple(keypoint_scores.shape)}."
            )
        keypoint_scores = keypoint_scores.to(device=keypoints.device)
    try:
        height, width = (int(s) for s in size)
    except (TypeError, ValueError):
        raise ValueError(f"size must be (H, W), two positive integers; got {size!r}.") from None
    if height <= 0 or width <= 0:
        raise ValueError(f"size must be (H, W), two positive integers; got {size!r}.")
    if not (float(sigma) > 0 and math.isfinite(float(sigma))):
        raise ValueError(f"sigma must be a positive number; got {sigma!r}.")
    if not (with_joints or with_limbs):
        raise ValueError("Nothing to render: set with_joints and/or with_limbs.")
    return keypoints, keypoint_scores, height, width


def _bounds_dtype(device: torch.device) -> torch.dtype:
    # Window bounds are computed in float64 like pyskl under numpy 1.x (np.float32 - float -> float64);
    # MPS has no float64.
    return torch.float32 if device.type == "mps" else torch.float64


def _window(lo, hi, sigma, limit):
    """pyskl window [max(int(lo - 3 sigma), 0), min(int(hi + 3 sigma) + 1, limit)) as float tensors."""
    start = torch.trunc(lo - 3 * sigma).clamp_(min=0, max=limit)
    end = (torch.trunc(hi + 3 * sigma) + 1).clamp_(min=0, max=limit)
    return start, end


def _local_grid(origin, start, end, size, limit):
    """Pixel coordinates origin + [0, size) along one axis for P points: layout [size, P].

    origin, start, end: [P] (float, bounds dtype). Returns coords [size, P] float32, inside [size, P]
    bool (coords in [start, end)) and index [size, P] int64 clamped into [0, limit)."""
    offsets = torch.arange(size, device=origin.device, dtype=origin.dtype).unsqueeze(1)
    coords = origin + offsets
    inside = (coords >= start) & (coords < end)
    index = coords.clamp(max=limit - 1).long()
    return coords.float(), inside, index


def _masked_exp(arg, inside):
    """exp(arg) where inside (and arg >= _MIN_EXP_ARG), else 0; exp only sees arguments >= _MIN_EXP_ARG."""
    inside = inside & (arg >= _MIN_EXP_ARG)
    return torch.exp(arg.masked_fill_(~inside, 0.0)).masked_fill_(~inside, 0.0)


def _scatter_max(out1d, base, iy, ix, width, patch):
    """out1d[base + iy * width + ix] = max(out1d[...], patch); iy [ky, P], ix [kx, P], patch [ky, kx, P]."""
    rows = base + iy * width  # [ky, P]
    index = rows.unsqueeze(1) + ix.unsqueeze(0)  # [ky, kx, P]
    # casting before the max is exact: rounding to a narrower float is monotonic
    out1d.scatter_reduce_(0, index.reshape(-1), patch.reshape(-1).to(out1d.dtype), "amax")


def _select(mask, *tensors):
    """Keep the points where mask [P] is true (drops missing points before the per-pixel work)."""
    keep = torch.nonzero(mask).squeeze(1)
    return [t.index_select(0, keep) for t in tensors]


def _joint_points(out1d, base, mu_x, mu_y, value, sigma, height, width):
    """Max joint Gaussians into out1d at flat plane offsets base [P]; mu_x, mu_y, value [P] float32
    (value 0 for points that must not be drawn)."""
    base, mu_x, mu_y, value = _select(value > 0, base, mu_x, mu_y, value)
    if base.numel() == 0:
        return
    bdt = _bounds_dtype(mu_x.device)
    mx64, my64 = mu_x.to(bdt), mu_y.to(bdt)
    st_x, ed_x = _window(mx64, mx64, sigma, width)
    st_y, ed_y = _window(my64, my64, sigma, height)
    side = int(math.floor(6 * sigma)) + 2  # widest possible window
    x, in_x, ix = _local_grid(st_x, st_x, ed_x, min(side, width), width)  # [kx, P]
    y, in_y, iy = _local_grid(st_y, st_y, ed_y, min(side, height), height)  # [ky, P]
    scale = -0.5 / (sigma * sigma)
    # separable: exp(-(dx^2 + dy^2) / 2 sigma^2) = exp(-dx^2 / 2 sigma^2) * exp(-dy^2 / 2 sigma^2), and the
    # window is a product of an x and a y interval; the 1-D factors are 0 outside the window
    fx = _masked_exp((x - mu_x).square_().mul_(scale), in_x)
    fy = _masked_exp((y - mu_y).square_().mul_(scale), in_y).mul_(value)
    _scatter_max(out1d, base, iy, ix, width, fy.unsqueeze(1) * fx.unsqueeze(0))


def _limb_windows(a, b, val_a, val_b, sigma, height, width):
    """What both limb renderers need of P segments a, b [P, 2] with endpoint values val_a, val_b [P]: the segment
    value (the smaller endpoint value, 0 below eps), its pixel window (st/ed per axis), whether it is drawn at all,
    its squared length |AB|^2 (in the bounds dtype) and whether it is short (|AB|^2 < 1: drawn as A's joint)."""
    value = torch.minimum(val_a, val_b)
    value = torch.where(value >= EPS, value, 0.0)
    bdt = _bounds_dtype(a.device)
    a64, b64 = a.to(bdt), b.to(bdt)
    st_x, ed_x = _window(torch.minimum(a64[:, 0], b64[:, 0]), torch.maximum(a64[:, 0], b64[:, 0]), sigma, width)
    st_y, ed_y = _window(torch.minimum(a64[:, 1], b64[:, 1]), torch.maximum(a64[:, 1], b64[:, 1]), sigma, height)
    drawn = (value > 0) & (ed_x > st_x) & (ed_y > st_y)
    d2_ab64 = (a64 - b64).square().sum(-1)
    short = d2_ab64 < 1
    return value, st_x, ed_x, st_y, ed_y, drawn, d2_ab64, short


def _limb_segments(out1d, base, a, b, val_a, val_b, sigma, height, width, max_elements):
    """Max limb heatmaps into out1d at flat plane offsets base [P]; a, b [P, 2] endpoints, val_a,
    val_b [P] (0 where missing / below eps)."""
    value, st_x, ed_x, st_y, ed_y, drawn, d2_ab64, short = _limb_windows(a, b, val_a, val_b, sigma, height, width)
    # |AB|^2 < 1: pyskl draws the joint heatmap of A, with A's own score
    _joint_points(out1d, base, a[:, 0], a[:, 1], torch.where(drawn & short, val_a, 0.0), sigma, height, width)

    base, a, b, value, st_x, ed_x, st_y, ed_y, d2_ab64 = _select(
        drawn & ~short, base, a, b, value, st_x, ed_x, st_y, ed_y, d2_ab64
    )
    if base.numel() == 0:
        return
    # On CPU segments are grouped by window size (rounded up to ~sqrt(2) steps per axis): each group
    # is rendered on a local grid as large as its widest window, so long limbs do not make every
    # segment pay for a whole-image grid.
    # On accelerators one group (launches and syncs cost more than the extra pixels).
    size_x = _size_bucket(ed_x - st_x, width)
    size_y = _size_bucket(ed_y - st_y, height)
    if out1d.device.type != "cpu":
        size_x = torch.full_like(size_x, int(size_x.max()))
        size_y = torch.full_like(size_y, int(size_y.max()))
    key = size_x * (height + 1) + size_y
    for group_key in torch.unique(key).tolist():
        kx, ky = divmod(int(group_key), height + 1)
        group = torch.nonzero(key == group_key).squeeze(1)
        step = max(1, max_elements // (kx * ky))  # bound the [ky, kx, P] temporaries
        for s in range(0, group.numel(), step):
            part = group[s : s + step]
            x, in_x, ix = _local_grid(st_x[part], st_x[part], ed_x[part], kx, width)  # [kx, P]
            y, in_y, iy = _local_grid(st_y[part], st_y[part], ed_y[part], ky, height)  # [ky, P]
            patch = _segment_patch(x, y, in_x, in_y, a[part], b[part], d2_ab64[part].float(), value[part], sigma)
            _scatter_max(out1d, base[part], iy, ix, width, patch)


def _size_bucket(extent, limit):
    """Grid size for windows of the given extents [P]: the next of 1, 2, 3, 4, 6, 8, 12, 16, 23, 32, ...
    (ceil(2 ** (k / 2))) at or above the extent, at most limit; int64."""
    steps = torch.ceil(2 * torch.log2(extent.clamp(min=1)))
    return torch.ceil(torch.exp2(steps / 2)).clamp_(max=limit).long()


def _segment_patch(x, y, in_x, in_y, a, b, d2_ab, value, sigma):
    """exp(-d2 / 2 sigma^2) * value on a grid x [kx, P], y [ky, P] -> [ky, kx, P], 0 outside the window.

    d2 is the squared distance to segment AB: to A where the projection coefficient is <= 0, to B
    where it is >= 1, else to the line (as cross product^2 / |AB|^2: the same quantity as pyskl's
    distance to the projected point, without its cancellation). Every term is separable in x and y."""
    ax, ay, bx, by = a[:, 0], a[:, 1], b[:, 0], b[:, 1]
    ex, ey = bx - ax, by - ay
    inv_ab = 1.0 / d2_ab
    inv_sqrt_ab = inv_ab.sqrt()
    dxa, dya = x - ax, y - ay
    dxb, dyb = x - bx, y - by
    # projection coefficient ((P - A) . (B - A)) / |AB|^2
    coeff = (dya * (ey * inv_ab)).unsqueeze(1) + (dxa * (ex * inv_ab)).unsqueeze(0)
    # squared distance to the line: ((P - A) x (B - A))^2 / |AB|^2
    d2 = ((dxa * (ey * inv_sqrt_ab)).unsqueeze(0) - (dya * (ex * inv_sqrt_ab)).unsqueeze(1)).square_()
    d2_start = dya.square().unsqueeze(1) + dxa.square().unsqueeze(0)
    d2 = torch.where(coeff <= 0, d2_start, d2)
    d2_end = dyb.square().unsqueeze(1) + dxb.square().unsqueeze(0)
    d2 = torch.where(coeff >= 1, d2_end, d2)
    inside = in_y.unsqueeze(1) & in_x.unsqueeze(0)
    return _masked_exp(d2.mul_(-0.5 / (sigma * sigma)), inside).mul_(value)


def _zeros(shape, dtype, device):
    """torch.zeros; on CPU the memory comes from numpy's calloc, which asks for transparent huge pages
    for large blocks: several times cheaper to fault in than torch's allocation for big outputs."""
    numel = math.prod(shape)
    if device.type != "cpu" or numel == 0:
        return torch.zeros(shape, dtype=dtype, device=device)
    itemsize = torch.empty((), dtype=dtype).element_size()
    return torch.from_numpy(np.zeros(numel * itemsize, dtype=np.uint8)).view(dtype).view(shape)


def _chunks(n_samples, n_frames, frames_per_chunk):
    """(sample slice, frame slice) pairs covering the batch, each with at most frames_per_chunk frames."""
    if frames_per_chunk >= n_frames:
        step = max(1, frames_per_chunk // max(n_frames, 1))
        for n0 in range(0, n_samples, step):
            yield slice(n0, min(n0 + step, n_samples)), slice(0, n_frames)
    else:
        for n0 in range(n_samples):
            for t0 in range(0, n_frames, frames_per_chunk):
                yield slice(n0, n0 + 1), slice(t0, min(t0 + frames_per_chunk, n_frames))


def _plane_offsets(out, view, ns, channels, ts, n_persons):
    """Flat offsets in out [N, views, C, T, H, W] (contiguous) of the planes (n, view, c, t), repeated
    for each person: int64 [n, len(channels), t, M] flattened."""
    s_n, s_v, s_c, s_t = out.stride()[:4]
    dev = out.device
    n_idx = torch.arange(ns.start, ns.stop, device=dev).view(-1, 1, 1, 1) * s_n
    c_idx = torch.as_tensor(channels, device=dev).view(1, -1, 1, 1) * s_c
    t_idx = torch.arange(ts.start, ts.stop, device=dev).view(1, 1, -1, 1) * s_t
    offsets = n_idx + c_idx + t_idx + view * s_v
    return offsets.expand(-1, -1, -1, n_persons).reshape(-1)


def _dense_joints(mu_x, mu_y, value, sigma, height, width):
    """Joint Gaussians of P points on the whole grid: mu_x, mu_y, value [P] float32 (value 0: left out) ->
    [H, W, P]. The arithmetic of `_joint_points` on a grid at the origin as large as the image."""
    bdt = _bounds_dtype(mu_x.device)
    mx64, my64 = mu_x.to(bdt), mu_y.to(bdt)
    st_x, ed_x = _window(mx64, mx64, sigma, width)
    st_y, ed_y = _window(my64, my64, sigma, height)
    x, in_x, _ = _local_grid(torch.zeros_like(st_x), st_x, ed_x, width, width)  # [W, P]
    y, in_y, _ = _local_grid(torch.zeros_like(st_y), st_y, ed_y, height, height)  # [H, P]
    scale = -0.5 / (sigma * sigma)
    fx = _masked_exp((x - mu_x).square_().mul_(scale), in_x)
    fy = _masked_exp((y - mu_y).square_().mul_(scale), in_y).mul_(value)
    return fy.unsqueeze(1) * fx.unsqueeze(0)


def _dense_limbs(a, b, val_a, val_b, sigma, height, width):
    """Limb heatmaps of P segments on the whole grid: a, b [P, 2], val_a, val_b [P] -> [H, W, P]. The arithmetic
    of `_limb_segments`, the short-segment joint and the segment both masked instead of selected."""
    value, st_x, ed_x, st_y, ed_y, drawn, d2_ab64, short = _limb_windows(a, b, val_a, val_b, sigma, height, width)
    # |AB|^2 < 1: pyskl draws the joint heatmap of A, with A's own score
    joint = _dense_joints(a[:, 0], a[:, 1], torch.where(drawn & short, val_a, 0.0), sigma, height, width)
    x, in_x, _ = _local_grid(torch.zeros_like(st_x), st_x, ed_x, width, width)  # [W, P]
    y, in_y, _ = _local_grid(torch.zeros_like(st_y), st_y, ed_y, height, height)  # [H, P]
    d2_ab = torch.where(short, 1.0, d2_ab64).float()  # short segments are drawn as joints (no division by ~0)
    segment_value = torch.where(drawn & ~short, value, 0.0)
    segment = _segment_patch(x, y, in_x, in_y, a, b, d2_ab, segment_value, sigma)
    return torch.maximum(joint, segment)


def _render_view_dense(kp, val, sigma, with_joints, limb_a, limb_b, height, width):
    """One view as `_render_view` renders it, with `dense=True` semantics: kp [N, M, T, V, 2] float32, val
    [N, M, T, V] float32 (0 where missing / below eps) -> [N, C, T, H, W] float32."""
    n_samples, n_persons, n_frames, n_joints, _ = kp.shape
    if n_persons == 0:  # nobody to draw (a static shape, not a value)
        n_channels = (n_joints if with_joints else 0) + (limb_a.numel() if limb_a is not None else 0)
        return kp.new_zeros(n_samples, n_channels, n_frames, height, width)
    # [N, M, T, V] -> [N, V, T, M]: persons innermost, max-reduced after rendering
    kp = kp.permute(0, 3, 2, 1, 4)
    val = val.permute(0, 3, 2, 1)
    channels = []
    if with_joints:
        planes = _dense_joints(
            kp[..., 0].reshape(-1), kp[..., 1].reshape(-1), val.reshape(-1), sigma, height, width
        )  # [H, W, N * V * T * M]
        channels.append(planes.view(height, width, n_samples, n_joints, n_frames, n_persons).amax(-1))
    if limb_a is not None:
        a = kp.index_select(1, limb_a).reshape(-1, 2)
        b = kp.index_select(1, limb_b).reshape(-1, 2)
        val_a = val.index_select(1, limb_a).reshape(-1)
        val_b = val.index_select(1, limb_b).reshape(-1)
        planes = _dense_limbs(a, b, val_a, val_b, sigma, height, width)  # [H, W, N * L * T * M]
        channels.append(planes.view(height, width, n_samples, limb_a.numel(), n_frames, n_persons).amax(-1))
    out = torch.cat(channels, dim=3) if len(channels) > 1 else channels[0]  # [H, W, N, C, T]
    return out.permute(2, 3, 4, 0, 1)


def _render_view(out, view, kp, val, sigma, with_joints, limb_a, limb_b, frames_per_chunk, max_elements):
    """Render one view into out[:, view] (out [N, views, C, T, H, W], contiguous, zeros).

    kp [N, M, T, V, 2] float32, val [N, M, T, V] float32 (0 where missing / below eps)."""
    n_samples, _, _, n_frames, height, width = out.shape
    n_persons, n_joints = kp.shape[1], kp.shape[3]
    out1d = out.view(-1)
    # [N, M, T, V] -> [N, V, T, M]: the flat point order matches _plane_offsets
    kp = kp.permute(0, 3, 2, 1, 4)
    val = val.permute(0, 3, 2, 1)
    for ns, ts in _chunks(n_samples, n_frames, frames_per_chunk):
        kp_c = kp[ns, :, ts]  # [n, V, t, M, 2]
        val_c = val[ns, :, ts]
        channel = 0
        if with_joints:
            base = _plane_offsets(out, view, ns, torch.arange(n_joints), ts, n_persons)
            _joint_points(
                out1d, base, kp_c[..., 0].reshape(-1), kp_c[..., 1].reshape(-1), val_c.reshape(-1),
                sigma, height, width,
            )
            channel = n_joints
        if limb_a is not None:
            n_limbs = limb_a.numel()
            base = _plane_offsets(out, view, ns, torch.arange(channel, channel + n_limbs), ts, n_persons)
            a = kp_c.index_select(1, limb_a).reshape(-1, 2)
            b = kp_c.index_select(1, limb_b).reshape(-1, 2)
            val_a = val_c.index_select(1, limb_a).reshape(-1)
            val_b = val_c.index_select(1, limb_b).reshape(-1)
            _limb_segments(out1d, base, a, b, val_a, val_b, sigma, height, width, max_elements)


def heatmap_channel_permutation(
    num_joints: int,
    flip_permutation: Sequence[int],
    with_joints: bool = True,
    limbs: Optional[Sequence[Sequence[int]]] = None,
) -> list[int]:
    """Channel order of a mirrored heatmap volume: mirrored channel c is channel ``order[c]`` of the unmirrored one.

    Joint channels (first, with ``with_joints``) follow ``flip_permutation``; limb channels (``limbs``, None for
    none) follow the limb permutation it induces (limb (a, b) takes the channel of the limb joining
    ``flip_permutation[a]`` and ``flip_permutation[b]``); limbs not closed under the flip are an error."""
    flip_permutation = [int(j) for j in flip_permutation]
    if sorted(flip_permutation) != list(range(num_joints)):
        raise ValueError(f"flip_permutation must be a permutation of range({num_joints}); got {flip_permutation}.")
    order = list(flip_permutation) if with_joints else []
    if limbs is not None:
        offset = len(order)
        order += [offset + k for k in limb_flip_permutation(limbs, flip_permutation)]
    return order


def mirror_heatmaps(heatmaps: torch.Tensor, channel_permutation) -> torch.Tensor:
    """pyskl's test-time flip of rendered heatmaps [..., C, T, H, W]: pixel column x -> W - 1 - x, channels
    reordered by ``channel_permutation`` (see `heatmap_channel_permutation`). A new tensor."""
    perm = torch.as_tensor(channel_permutation, dtype=torch.long, device=heatmaps.device)
    return heatmaps.flip(-1).index_select(heatmaps.dim() - 4, perm)


def render_heatmaps(
    keypoints: torch.Tensor,
    keypoint_scores: Optional[torch.Tensor] = None,
    size: Sequence[int] = (56, 56),
    sigma: float = 0.6,
    with_joints: bool = True,
    with_limbs: bool = False,
    limbs: Optional[Sequence[Sequence[int]]] = None,
    use_score: bool = True,
    flip_double: bool = False,
    flip_permutation: Optional[Sequence[int]] = None,
    dtype: torch.dtype = torch.float32,
    max_points_per_chunk: Optional[int] = None,
    dense: bool = False,
    mirrored: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """Render pose heatmaps like pyskl's GeneratePoseTarget, batched on the keypoints' device.

    Args:
        keypoints: [N, M, T, V, 2] (x, y) pixel coordinates in the target image frame of ``size``.
            Non-finite coordinates are treated as missing (not rendered).
        keypoint_scores: [N, M, T, V] or None (all ones). Points with value < 1e-3 are not rendered.
        size: (H, W) of the heatmaps; pixel centres are x = 0..W-1, y = 0..H-1.
        sigma: Gaussian sigma in pixels (windows are +-3 sigma, pyskl-style).
        with_joints / with_limbs: render joint channels (V) and/or limb channels (len(limbs));
            with both, joints come first on the channel axis.
        limbs: (a, b) joint pairs; default ``COCO17.limbs`` (needs V == 17).
        use_score: scale by scores (else every finite point has value 1, as pyskl).
        flip_double: also return the mirrored volume, as pyskl's ``GeneratePoseTarget(double=True)``: view 1 is
            view 0 with pixel column x -> W - 1 - x and channels swapped left/right (`mirror_heatmaps`; joints by
            ``flip_permutation``, default ``COCO17.flip_permutation()``, limbs by the permutation it induces). The
            result gets a view axis: [N, 2, C, T, H, W].
        dtype: output dtype (e.g. torch.float32 or torch.bfloat16); computed in float32.
        max_points_per_chunk: bound on the points (person x frame x joint-or-limb) rendered at once;
            None picks it so that temporaries stay around 16 MiB each. Results do not depend on it.
        dense: evaluate every point on the whole H x W grid, without data-dependent shapes or branches on tensor
            values (for torch.export, ONNX export and torch.jit.trace); the same heatmaps, with temporaries of
            about ``N * M * T * C * H * W`` elements (``max_points_per_chunk`` does not apply).
        mirrored: bool [N] or None: the samples whose rendered volume is mirrored as ``flip_double`` mirrors view 1
            (a test-time flipped view given by its unflipped keypoints).

    Returns:
        [N, C, T, H, W] (or [N, 2, C, T, H, W] with ``flip_double``) of ``dtype``.
    """
    keypoints, keypoint_scores, height, width = _check_inputs(
        keypoints, keypoint_scores, size, sigma, with_joints, with_limbs
    )
    sigma = float(sigma)
    if not dtype.is_floating_point:
        raise ValueError(f"dtype must be a floating point dtype; got {dtype}.")
    n_samples, n_persons, n_frames, n_joints, _ = keypoints.shape
    device = keypoints.device

    limb_a = limb_b = None
    n_limbs = 0
    if with_limbs:
        if limbs is None:
            if n_joints != COCO17.num_joints:
                raise ValueError(f"limbs default to COCO17 limbs (17 joints); got V = {n_joints}: pass limbs.")
            limbs = COCO17.limbs
        limbs = [tuple(int(j) for j in limb) for limb in limbs]
        if not limbs or any(len(limb) != 2 or not all(0 <= j < n_joints for j in limb) for limb in limbs):
            raise ValueError(f"limbs must be a non-empty list of (a, b) joint pairs within [0, {n_joints}); got {limbs}.")
        limb_a = torch.tensor([a for a, _ in limbs], dtype=torch.long, device=device)
        limb_b = torch.tensor([b for _, b in limbs], dtype=torch.long, device=device)
        n_limbs = len(limbs)
    channel_permutation = None
    if mirrored is not None:
        mirrored = torch.as_tensor(mirrored, device=device)
        if mirrored.dtype != torch.bool or tuple(mirrored.shape) != (n_samples,):
            raise ValueError(
                f"mirrored must be a bool tensor [N] = [{n_samples}] (one flag per sample); got dtype "
                f"{mirrored.dtype} and shape {tuple(mirrored.shape)}."
            )
    if flip_double or mirrored is not None:
        if flip_permutation is None:
            if n_joints != COCO17.num_joints:
                raise ValueError(
                    f"flip_permutation defaults to COCO17's (17 joints); got V = {n_joints}: pass flip_permutation."
                )
            flip_permutation = COCO17.flip_permutation()
        channel_permutation = torch.tensor(
            heatmap_channel_permutation(n_joints, flip_permutation, with_joints, limbs if with_limbs else None),
            dtype=torch.long, device=device,
        )

    # sanitise once: values 0 where missing / below eps, coordinates 0 where non-finite
    kp = keypoints.float()
    if keypoint_scores is None:
        scores = torch.ones(kp.shape[:-1], dtype=torch.float32, device=device)
    else:
        scores = keypoint_scores.float()
    finite = torch.isfinite(kp).all(-1) & torch.isfinite(scores)
    value = scores if use_score else torch.ones_like(scores)
    value = torch.where(finite & (value >= EPS), value, 0.0)
    # far-off coordinates are clamped so that squares stay finite in float32 (no window reaches them)
    kp = torch.where(finite.unsqueeze(-1), kp, 0.0).clamp_(-_MAX_COORD, _MAX_COORD)
    n_channels = (n_joints if with_joints else 0) + n_limbs
    points_per_frame = n_persons * n_channels
    side = int(math.floor(6 * sigma)) + 2  # joint windows are at most side x side pixels
    if max_points_per_chunk is None:
        max_points_per_chunk = _DEFAULT_ELEMENT_BUDGET // (min(side, width) * min(side, height))
    elif int(max_points_per_chunk) < 1:
        raise ValueError(f"max_points_per_chunk must be >= 1; got {max_points_per_chunk}.")
    frames_per_chunk = max(1, int(max_points_per_chunk) // max(points_per_frame, 1))
    # limb patches can be as large as the image: they are additionally split to this many pixels
    max_elements = max(_DEFAULT_ELEMENT_BUDGET, height * width)

    if dense:
        planes = _render_view_dense(kp, value, sigma, with_joints, limb_a, limb_b, height, width)  # [N, C, T, H, W]
        if mirrored is not None:  # a select, not a branch on values: the graph mirrors every sample
            planes = torch.where(mirrored.view(-1, 1, 1, 1, 1), mirror_heatmaps(planes, channel_permutation), planes)
        if flip_double:
            return torch.stack([planes, mirror_heatmaps(planes, channel_permutation)], dim=1).to(dtype)
        return planes.to(dtype)

    views = 2 if flip_double else 1
    out = _zeros((n_samples, views, n_channels, n_frames, height, width), dtype, device)
    _render_view(out, 0, kp, value, sigma, with_joints, limb_a, limb_b, frames_per_chunk, max_elements)
    if mirrored is not None:
        rows = torch.nonzero(mirrored).squeeze(1)
        if rows.numel():
            out[rows, 0] = mirror_heatmaps(out[rows, 0], channel_permutation)
    if flip_double:
        out[:, 1] = mirror_heatmaps(out[:, 0], channel_permutation)
        return out
    return out[:, 0]
