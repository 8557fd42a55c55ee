"""Where merged tokens sit in space-time, for divided attention on tokens that no longer form the grid.

TimeSformer's divided attention needs two neighbourhoods per token: the tokens of its own frame
(spatial attention) and the tokens at its place in every frame (temporal attention). On the full
grid both are reshapes. After merging, each token covers a set of original patches, which
`TokenState.owner` records (patch -> token). A token is placed at its *anchor*: the patch it covers
that lies nearest to its centre of mass (ties: the first in t-major order). The anchor always lies
inside the token's own footprint, so

  - its frame is the anchor's frame (spatial attention groups tokens by it);
  - the token at its place in frame t' is the owner of (t', anchor's h, w), and in its own frame that
    is the token itself. Temporal attention therefore runs on the grid's own layout: every patch
    slot is played by the token holding it, attention runs over the T frames of each place, and each
    token reads the output at its anchor slot. When a reducer merges the same patches in every frame (tome scope="tube",
    pooling), this finds exactly the corresponding token of each frame: divided attention is then
    exact. A token spanning several frames appears once per frame it covers, so its weight in the
    temporal softmax grows with its temporal extent, as its patches' weights would.

Centres alone would not do: a token merged from two distant patches has its centre in somebody
else's footprint.

`layout` turns a placement into what the blocks use: flat row indices (read by `index_select`) for
the temporal slots, each token's anchor slot and every frame's seats, built once per reduction.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import torch
import torch.nn.functional as F
from torch import Tensor


# index tensors that depend on shapes alone, built once per shape and device (see `shape_constant`)
_CONSTANTS: dict[tuple, Any] = {}


def shape_constant(key: tuple, build: Callable[[], Any]) -> Any:
    """`build()`, kept under `key` (shapes and device): index tensors that only the shapes decide are
    built once instead of at every reduction of every forward, each build being several kernel
    launches on a GPU. Kept apart for inference mode (its tensors cannot enter autograd) and rebuilt
    while torch.compile traces (a traced graph makes them once anyway)."""
    if torch.compiler.is_compiling():
        return build()
    key = (*key, torch.is_inference_mode_enabled())
    if key not in _CONSTANTS:
        if len(_CONSTANTS) >= 512:  # shapes of a run are few; a long session with many stays bounded
            _CONSTANTS.clear()
        _CONSTANTS[key] = build()
    return _CONSTANTS[key]


NO_PATCH = "a token holds no patch of the grid (TokenState.owner disagrees with the tokens)"


@dataclass
class Placement:
    """anchor: [B, n] long, the flat t-major index of each patch token's anchor patch (t * H*W + place).
    slots: [B, T, H*W] long, the token holding each patch (0 where dropped). present: [B, T, H*W]
    bool, False where the patch was dropped."""

    anchor: Tensor
    slots: Tensor
    present: Tensor

    @property
    def frame(self) -> Tensor:
        """[B, n] long: each patch token's frame, its anchor's."""
        return self.anchor // self.slots.shape[2]

    def neighbours(self) -> Tensor:
        """[B, n, T]: the token at each token's place in every frame (its temporal keys)."""
        places = self.slots.shape[2]
        where = (self.anchor % places).unsqueeze(1).expand(-1, self.slots.shape[1], -1)  # [B, T, n]
        return self.slots.gather(2, where).transpose(1, 2)


def anchors(owner: Tensor, pos: Tensor, valid: Optional[Tensor] = None, check: bool = True,
            whole: bool = False) -> Tensor:
    """owner [B, T, H, W] (patch-token index per original patch, -1 dropped), pos [B, n, 3] patch-token
    centres -> [B, n] long, the flat t-major index of each token's anchor patch.

    valid: optional [B, n] bool, False for padding tokens (rlt), which hold no patch by design: they
    get anchor 0, and only a real token holding no patch is an error. check=False leaves that check
    (a host sync) to the caller: such a token's anchor is then T*H*W. whole: the caller knows no
    patch was dropped (owner holds no -1), which spares the ops that route dropped patches aside."""
    batch, t, h, w = owner.shape
    n = pos.shape[1]
    flat = owner.reshape(batch, -1)  # [B, L], L = T*H*W
    length = flat.shape[1]
    # dropped patches go to a spare slot n so the scatters below stay in range; it is cut off at the end
    holder = flat if whole else torch.where(flat >= 0, flat, n)  # [B, L]
    device, dtype = owner.device, pos.dtype
    coords = shape_constant(("coords", t, h, w, device, dtype), lambda: torch.stack(
        torch.meshgrid(*(torch.arange(s, device=device, dtype=dtype) for s in (t, h, w)), indexing="ij"),
        dim=-1,
    ).reshape(1, length, 3))  # [1, L, 3]
    patch_index = shape_constant(("patches", length, device), lambda: torch.arange(length, device=device)[None])
    inf, last = shape_constant(("anchor_init", batch, n, length, device, dtype), lambda: (
        torch.full((batch, n + 1), float("inf"), device=device, dtype=dtype),
        torch.full((batch, n + 1), length, device=device, dtype=torch.long)))
    padded_pos = pos if whole else F.pad(pos, (0, 0, 0, 1))  # [B, n(+1), 3], the spare slot's row
    centre = padded_pos.gather(1, holder.unsqueeze(-1).expand(-1, -1, 3))  # [B, L, 3]
    dist = ((coords - centre) ** 2).sum(-1)  # [B, L], each patch's distance to its holder's centre
    nearest = inf.scatter_reduce(1, holder, dist, reduce="amin")  # [B, n+1]
    candidate = torch.where(dist == nearest.gather(1, holder), patch_index, length)  # [B, L]
    first = last.scatter_reduce(1, holder, candidate, reduce="amin")[:, :n]  # [B, n]
    if valid is not None:
        first = torch.where(valid, first, torch.zeros_like(first))
    if check and bool((first == length).any()):
        raise ValueError(NO_PATCH)
    return first


def place(owner: Tensor, pos: Tensor, valid: Optional[Tensor] = None, check: bool = True) -> Placement:
    """The anchor and frame of every patch token, and who holds each patch (see the module doc);
    `valid` and `check` as in `anchors`."""
    batch, t, h, w = owner.shape
    held = owner.reshape(batch, t, h * w)  # [B, T, HW]
    return Placement(anchor=anchors(owner, pos, valid, check), slots=held.clamp_min(0), present=held >= 0)


@dataclass
class FrameBuckets:
    """The patch tokens grouped by frame, padded to the fullest frame: index [B, T, M] (pad = n, one
    past the last token), valid [B, T, M] bool, count [B, T] tokens per frame, seat [B, n] each
    token's position t * M + m among the T*M seats (padding tokens: T*M, no seat)."""

    index: Tensor
    valid: Tensor
    count: Tensor
    seat: Tensor


def frame_buckets(frame: Tensor, frames: int, valid: Optional[Tensor] = None,
                  width: Optional[int] = None) -> FrameBuckets:
    """[B, n] frame of each patch token -> the tokens of every frame in their original order.

    valid: optional [B, n] bool; padding tokens (False) join no frame: they go to a spare bucket T
    that is cut off, so no query and no key of spatial attention is padding. width: the seats per
    frame, at least the fullest frame's count (default: exactly that, read with a host sync)."""
    batch, n = frame.shape
    if valid is not None:
        frame = torch.where(valid, frame, torch.full_like(frame, frames))  # padding -> spare bucket T
    count = torch.zeros(batch, frames + 1, device=frame.device, dtype=torch.long)
    count.scatter_add_(1, frame, torch.ones_like(frame))
    if width is None:
        width = max(int(count[:, :frames].max()), 1)
    order = (frame * n + torch.arange(n, device=frame.device)).argsort(dim=1)  # by frame, then position
    sorted_frame = frame.gather(1, order)  # [B, n]
    start = count.cumsum(1) - count  # [B, T+1], first sorted position of each frame
    rank = torch.arange(n, device=frame.device) - start.gather(1, sorted_frame)  # [B, n], slot in the frame
    slot = sorted_frame * width + rank  # [B, n] in [0, T*M) for real tokens; padding lands past it
    index = torch.full((batch, frames * width + n), n, device=frame.device, dtype=torch.long)
    index.scatter_(1, slot, order)
    index = index[:, : frames * width]
    found = index < n
    seat = torch.empty_like(order).scatter_(1, order, slot.clamp_max(frames * width))
    return FrameBuckets(index=index.reshape(batch, frames, width), valid=found.reshape(batch, frames, width),
                        count=count[:, :frames], seat=seat)


@dataclass
class Layout:
    """Where divided attention reads and writes merged tokens, as rows of flattened tensors, so that
    every move is one `index_select` (a copy of whole rows, where a gather over an index expanded to
    the channels costs several times more) and the rows land already in the order attention reads
    them (no permuted copy). Built once per token state by `layout` and kept on it
    (`TokenState.layout`) until the next reduction, so blocks without a reduction reuse it.

    frames, places, width: T, the grid's H*W, and M, the fullest frame's patch-token count.
    slot_rows [B*P*T]: place-major, the row of the flat patch tokens [B*n] holding each slot
        (place, frame).
    anchor_rows [B*n]: the row of those slots whose temporal output each token takes (its anchor).
    temporal_mask [B*P, 1, 1, T] float: -inf for slots whose patch was dropped; None if none was.
    frame_rows [B*T*(p+M)]: for each frame, the prefix then the frame's patch tokens, as rows of the
        flat tokens [B*(p+n)] (empty seats: some row of the same video, masked as a key).
    seat_rows [B*n]: each patch token's row among those [B*T*(p+M)]; padding tokens (rlt) read row
        B*T*(p+M), the zero row `Attention.over_frames` appends.
    seat_valid [B*T, p+M] bool: False for empty seats; None when every frame holds M tokens.
    occupied [B, T] float: 1 for frames that hold tokens; None when every frame does.
    padded: some patch tokens are padding (they have no seat).
    cache: what the blocks derive from the layout and the sizes once (the spatial logits bias), kept
        with it because the sizes change only where the layout does.
    """

    frames: int
    places: int
    width: int
    slot_rows: Tensor
    anchor_rows: Tensor
    temporal_mask: Optional[Tensor]
    frame_rows: Tensor
    seat_rows: Tensor
    seat_valid: Optional[Tensor]
    occupied: Optional[Tensor]
    padded: bool
    cache: dict = field(default_factory=dict, repr=False)  # what blocks derive from it once (attention biases)


# Where a Layout reads nothing from the data (`layout`'s `static`). On an accelerator a host read
# stalls the device queue (DESIGN.md, "Where the time goes on a GPU"), while padding every frame to
# min(n, H*W) seats only adds attention work: fixed schedules there take the static layout. On a CPU
# a host read waits for nothing and the padding is real work (global tome r=8 on the default
# comparison's tiny model would attend over full frames), so the exact width is read (one sync per
# reduction). SYNC_FREE_ON_CPU makes a CPU run take the accelerator's path: tests and
# benchmarks/ops.py count what an accelerator would dispatch.
SYNC_FREE_ON_CPU = False


def static_layout(padded: bool, device: torch.device) -> bool:
    """Whether the next Layout is built without a host sync: always under torch.compile (one graph);
    in eager mode for a fixed schedule (no padding rows, i.e. not rlt) off the CPU, or on it with
    SYNC_FREE_ON_CPU."""
    if torch.compiler.is_compiling():
        return True
    return not padded and (device.type != "cpu" or SYNC_FREE_ON_CPU)


def layout(owner: Tensor, pos: Tensor, num_prefix: int, valid: Optional[Tensor] = None, static: bool = False,
           per_frame: Optional[int] = None, whole: bool = False) -> Layout:
    """The Layout of patch tokens `pos` [B, n, 3] (after `num_prefix` prefix tokens) holding the
    patches of `owner` [B, T, H, W]; `valid` as in `anchors`.

    What the caller knows from the plans, not from the data, spares host syncs and index work:
    per_frame: the tokens are T contiguous groups of `per_frame` tokens, group t holding patches of
        frame t only (TokenState.frames after per-frame merging): every frame holds exactly that many,
        so the seats are known without looking at the anchors (no sort, no padding, no mask).
    whole: no patch was discarded (TokenState.discarded is False): no temporal key is missing.
    static: no host sync (eager forwards of fixed schedules, and what torch.compile needs for one
        graph): without `per_frame`, every frame gets min(n, H*W) seats, the most any frame can hold,
        with the empty ones masked; the same results as the exact width, with more attention work on
        padding (which GFLOPs, counting each video's fullest frame, do not include). Otherwise the
        exact width is read from the data (one sync; rlt's content-aware tokens, once per forward)
        and a real token holding no patch is refused."""
    batch, frames, h, w = owner.shape
    places, n, p = h * w, pos.shape[1], num_prefix
    device = owner.device
    anchor = anchors(owner, pos, valid, check=False, whole=whole)  # [B, n]; T*H*W for a real token holding no patch
    video = shape_constant(("video", batch, device), lambda: torch.arange(batch, device=device)[:, None])  # [B, 1]
    if per_frame is not None and valid is None:
        width, full = per_frame, True
        frame_rows, seat_rows = shape_constant(("grouped", batch, frames, per_frame, p, device),
                                               lambda: _grouped_rows(video, frames, per_frame, p))
        complete = whole
    else:
        homeless = anchor == frames * places  # a real token holding no patch (checked below)
        buckets = frame_buckets((anchor // places).masked_fill(homeless, 0), frames, valid,
                                min(n, places) if static else None)
        width = buckets.index.shape[-1]
        full, complete = False, whole
        if not static:
            full, complete, broken = torch.stack([buckets.valid.all(), (owner >= 0).all(), homeless.any()]).tolist()
            if broken:
                raise ValueError(NO_PATCH)
        members = torch.where(buckets.valid, buckets.index + p, torch.zeros_like(buckets.index))  # [B, T, M]
        prefix = torch.arange(p, device=device).expand(batch, frames, p)
        seats = frames * (p + width)
        seat = buckets.seat // width * (p + width) + p + buckets.seat % width  # [B, n], among the [T, p+M] seats
        frame_rows = (torch.cat([prefix, members], dim=2).reshape(batch, seats) + video * (p + n)).reshape(-1)
        seat_rows = torch.where(buckets.seat < frames * width, seat + video * seats,
                                torch.full_like(seat, batch * seats)).reshape(-1)
    temporal_mask = None
    if not complete:
        present = owner.reshape(batch, frames, places) >= 0  # [B, T, P]
        # a place dropped in every frame is read by no token: leave it unmasked rather than all -inf
        keys = present | ~present.any(dim=1, keepdim=True)  # [B, T, P]
        temporal_mask = torch.zeros(keys.shape, dtype=pos.dtype, device=device).masked_fill(~keys, float("-inf"))
        temporal_mask = temporal_mask.transpose(1, 2).reshape(batch * places, 1, 1, frames)
    # place-major slots: [B, T, H, W] -> [B, P, T], the token holding each (place, frame), 0 where dropped
    slots = owner.reshape(batch, frames, places).transpose(1, 2)
    if not whole:
        slots = slots.clamp_min(0)
    token_offset, slot_of_anchor = shape_constant(("rows", batch, frames, places, n, device),
                                                  lambda: _row_tables(video, frames, places, n))
    seat_valid = None
    if not full:
        seat_valid = torch.cat([buckets.valid.new_ones(batch, frames, p), buckets.valid], dim=2)
        seat_valid = seat_valid.reshape(batch * frames, p + width)
    return Layout(
        frames=frames,
        places=places,
        width=width,
        slot_rows=(slots + token_offset).reshape(-1),
        anchor_rows=slot_of_anchor.gather(1, anchor).reshape(-1),
        temporal_mask=temporal_mask,
        frame_rows=frame_rows,
        seat_rows=seat_rows,
        seat_valid=seat_valid,
        occupied=None if full else (buckets.count > 0).to(pos.dtype),
        padded=valid is not None,
    )


def _row_tables(video: Tensor, frames: int, places: int, n: int) -> tuple[Tensor, Tensor]:
    """What turns tokens and anchors into flat rows, for `layout`: the first row of each video's
    tokens among the flat [B*n] ([B, 1, 1]), and for every anchor a = t*places + place (and the
    homeless anchor T*places) its place-major slot's row among the flat [B*places*T] slots
    ([B, T*places + 1]): one gather instead of the arithmetic at every reduction."""
    anchor = torch.arange(frames * places + 1, device=video.device)
    slot = (anchor % places) * frames + anchor // places  # place-major
    return video[:, :, None] * n, slot + video * (places * frames)


def _grouped_rows(video: Tensor, frames: int, per_frame: int, p: int) -> tuple[Tensor, Tensor]:
    """frame_rows and seat_rows (see Layout) of tokens that are T contiguous groups of `per_frame`:
    frame t's seats are the prefix, then tokens t*per_frame ... (t+1)*per_frame - 1, in order.
    video: [B, 1] sample indices."""
    n, device = frames * per_frame, video.device
    tokens = torch.arange(n, device=device).view(frames, per_frame)  # [T, m]
    members = torch.cat([torch.arange(p, device=device).expand(frames, p), tokens + p], dim=1)  # [T, p+m]
    frame_rows = (members.view(1, -1) + video * (p + n)).reshape(-1)
    # token i sits at seat t*(p+m) + p + (i - t*m) = i + p*(t+1) among the T*(p+m) seats
    seat = tokens + p * torch.arange(1, frames + 1, device=device).view(frames, 1)  # [T, m]
    seat_rows = (seat.view(1, -1) + video * (frames * (p + per_frame))).reshape(-1)
    return frame_rows, seat_rows


def frame_widths(owner: Tensor, pos: Tensor, valid: Optional[Tensor] = None) -> Tensor:
    """[B] the most patch tokens any frame holds once merged tokens are placed (the width divided
    attention pads each frame's spatial attention to, per video); `pos` [B, n, 3] patch tokens,
    `valid` as in `anchors` (padding joins no frame)."""
    return frame_buckets(place(owner, pos, valid).frame, owner.shape[1], valid).count.amax(dim=1)
