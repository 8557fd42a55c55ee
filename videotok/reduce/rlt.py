"""`rlt`: Run-Length Tokenization (Choudhury et al., "Don't Look Twice", NeurIPS 2024) before the blocks.

A tubelet that repeats the tubelet at the same place just before it is removed; the first tubelet of
every place is always kept, and a kept token stands for its run (`size` = run length, in tubelets;
the removed tubelets' patches are its own in `owner`, so divided attention finds it at every frame
of its run). Content-aware: a static camera loses most of its tokens, a moving one few, so each
video keeps its own count. A batch is padded to its fullest video: padding tokens have size 0, hold
no patch, are masked as keys in every attention and weigh nothing in pooling (TokenState.padded).

What counts as a repeat is the authors' rule (rccchoudhury/rlt, `batched_find_idxs_to_keep`): the
mean absolute difference, over the pixels and channels of one patch, between the LAST frame of
tubelet t and the FIRST frame of tubelet t-1 (tubelet 1: frames t and t-1), on the clip in their
tokenizer's units: pixels scaled to [0, 1], then ImageNet-normalised (mean 0.485, 0.456, 0.406, std
0.229, 0.224, 0.225). A tubelet is kept when that difference is strictly greater than `threshold`
(theirs: `drop_param`, 0.1 in their configs). Our clips arrive normalised by the data's mean and std
(a backbone does not know them), so the reducer takes the data's `std` as an argument and rescales
each channel's difference by std / ImageNet std, which is exactly the difference the authors'
tokenizer would see (the means cancel in a difference). Threshold 0 keeps every tubelet that differs at all (exact
repeats still go); a negative threshold keeps everything.

Attention and pooling after it (our options, the authors' by default):
  proportional=False  the authors' form: every kept token counts once (plain attention over the kept
                      tokens, mean pooling over them); `mass` = 1, `size` still = run length.
  proportional=True   a kept token counts as its run: log(run length) in the attention logits and
                      run-length-weighted mean pooling, what the full model would see if the run's
                      tubelets were exact copies.
length_encoding=True adds a learned embedding of the run length (in tubelets) to each kept token, the
authors' trained form. Ours starts at zero, so a trained baseline is unchanged until fine-tuned (the
authors initialise theirs truncated-normal, std 0.02). The authors' code pairs the lengths, listed
place by place, with the tokens, listed frame by frame, so most tokens receive another run's length;
here each token receives its own run's length.
"""
from __future__ import annotations

from typing import Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from videotok.reduce.base import BackboneSpec, Reducer
from videotok.reduce.match import MergePlan, apply_plan
from videotok.reduce.registry import register_reducer
from videotok.reduce.state import TokenState

IMAGENET_STD = (0.229, 0.224, 0.225)  # the authors' tokenizer normalisation (its mean cancels in differences)
Channels = Union[str, float, Sequence[float]]


def parse_channels(value: Channels) -> tuple[float, ...]:
    """"0.225,0.225,0.225", 0.225 or [0.225, 0.225, 0.225] -> positive floats (one value: every channel)."""
    if isinstance(value, str):
        values = tuple(float(v) for v in value.replace(" ", "").split(",") if v)
    elif isinstance(value, (int, float)):
        values = (float(value),)
    else:
        values = tuple(float(v) for v in value)
    if not values or min(values) <= 0:
        raise ValueError(f"rlt: std={value!r} must be positive numbers, one per channel or one for all")
    return values


def tubelet_change(video: Tensor, tubelet: int, patch: int, scale: Tensor) -> Tensor:
    """video [B, C, T, H, W] -> [B, T/tubelet - 1, H/patch, W/patch]: for tubelets 1.., the mean absolute
    difference over a patch (pixels and channels) between its last frame and the first frame of the
    tubelet before it, each channel's difference multiplied by `scale` [C] (into the authors' units)."""
    x = video.float()
    last = x[:, :, 2 * tubelet - 1 :: tubelet]  # [B, C, T'-1, H, W], last frame of tubelets 1..T'-1
    first = x[:, :, :-tubelet:tubelet]  # first frame of tubelets 0..T'-2
    diff = (last - first).abs() * scale.view(1, -1, 1, 1, 1)
    return F.avg_pool3d(diff, (1, patch, patch)).mean(dim=1)  # [B, T'-1, H', W']


def keep_tubelets(change: Tensor, threshold: float) -> Tensor:
    """[B, T'-1, H', W'] changes -> [B, T', H', W'] bool: the first tubelet of every place, and every
    later one whose change is strictly above `threshold`."""
    first = torch.ones_like(change[:, :1], dtype=torch.bool)
    return torch.cat([first, change > threshold], dim=1)


def run_plan(keep: Tensor, num_prefix: int) -> MergePlan:
    """keep [B, T', H', W'] -> the plan that sends every tubelet to the kept token of its run.

    Slots: the prefix first, then each video's kept tokens in t-major order, then padding up to the
    fullest video of the batch. `weight` is 1 for kept tubelets and 0 for repeats, so a kept token's
    features are its own tubelet's (the repeats are removed, not averaged) while its size and its
    patches grow with the run; weighs_mass makes its mass 1 (the authors' form).
    """
    b, t, h, w = keep.shape
    steps = torch.arange(t, device=keep.device).view(1, t, 1, 1)
    head = torch.where(keep, steps, torch.zeros_like(steps)).cummax(dim=1).values  # [B, T', H', W'], run start
    flat_keep = keep.reshape(b, -1)  # [B, T'H'W'], t-major
    slot = num_prefix + flat_keep.long().cumsum(dim=1) - 1  # slot of each kept token
    places = torch.arange(h * w, device=keep.device).view(1, 1, h * w)
    head_index = (head.reshape(b, t, h * w) * h * w + places).reshape(b, -1)  # token index of the run's head
    dest = slot.gather(1, head_index)  # [B, T'H'W']
    prefix = torch.arange(num_prefix, device=keep.device).expand(b, -1)
    num_out = num_prefix + int(flat_keep.sum(dim=1).max())
    weight = torch.cat([torch.ones(b, num_prefix, device=keep.device), flat_keep.float()], dim=1)
    return MergePlan(dest=torch.cat([prefix, dest], dim=1), num_out=num_out, weight=weight, weighs_mass=True)


@register_reducer("rlt")
class RunLengthTokenization(Reducer):
    """Remove tubelets that repeat the same place before them, before the first block (RLT).

    threshold: a tubelet is kept when its mean absolute change exceeds it, in the authors' units
        (ImageNet-normalised pixels; 0.1 is their default); 0 keeps all but exact repeats.
    std: the per-channel std the clips the model receives were normalised with (the data's `std`; the
        means cancel in a difference), to express changes in the authors' units; default 0.225, the
        project's data presets'.
    proportional: False (authors): each kept token counts once in attention and pooling; True: as
        its run length.
    length_encoding: add a learned run-length embedding (parameters: fine-tune).
    """

    divided_attention = "approximate (a kept token holds its run of frames at one place; placed by its patches)"
    content_aware = True

    def __init__(
        self,
        threshold: float = 0.1,
        length_encoding: bool = False,
        proportional: bool = False,
        std: Channels = "0.225,0.225,0.225",
    ) -> None:
        super().__init__()
        self.threshold, self.length_encoding, self.proportional = float(threshold), bool(length_encoding), bool(proportional)
        self.std = parse_channels(std)
        self.adds_parameters = self.length_encoding

    def bind(self, spec: BackboneSpec) -> None:
        super().bind(spec)
        if self.length_encoding:
            self.length_embed = nn.Parameter(torch.zeros(spec.grid[0], spec.dim))  # [T', C], run length 1..T'

    def scale(self, channels: int, device: torch.device) -> Tensor:
        """[C] factors that turn a difference of our normalised pixels into the authors' units."""
        std = self.std * channels if len(self.std) == 1 else self.std
        if channels != 3 or len(std) != 3:
            raise ValueError(f"rlt: the authors' units are defined for RGB clips (3 channels, 3 std values); "
                             f"got a {channels}-channel clip and std={self.std}")
        ref = IMAGENET_STD
        return torch.tensor([s / r for s, r in zip(std, ref)], device=device)

    def keep_mask(self, state: TokenState, video: Tensor) -> Tensor:
        """[B, T', H', W'] bool: which tubelets the clip keeps (see the module doc)."""
        if state.grid is None or state.x.shape[0] != video.shape[0]:
            raise ValueError("rlt needs the tubelets of the whole clip in one token sequence on the full grid "
                             "(not the factorised encoder, whose blocks see one frame at a time)")
        t, h, _ = state.grid
        if video.shape[2] % t or video.shape[3] % h:
            raise ValueError(f"rlt: clip {list(video.shape)} does not divide into the token grid {state.grid}")
        tubelet, patch = video.shape[2] // t, video.shape[3] // h
        if t == 1:
            return torch.ones(video.shape[0], *state.grid, dtype=torch.bool, device=video.device)
        change = tubelet_change(video, tubelet, patch, self.scale(video.shape[1], video.device))
        return keep_tubelets(change, self.threshold)

    def start(self, state: TokenState, video: Tensor) -> TokenState:
        keep = self.keep_mask(state, video)
        out = state  # nothing repeats anywhere in the batch: exactly the baseline (plus run length 1's code)
        if not bool(keep.all()):
            plan = run_plan(keep, state.num_prefix)
            out = apply_plan(state, plan, grid=None, frames=None)
            # merged even where one video kept everything, so every video's attention reads its sizes
            out = out.replace(merged=True, padded=bool((out.size[:, out.num_prefix :] == 0).any()),
                              mass=None if self.proportional else out.mass)
        if self.length_encoding:
            runs = out.size[:, out.num_prefix :].long()  # [B, n], 0 for padding
            code = self.length_embed[(runs - 1).clamp_min(0)] * (runs > 0).unsqueeze(-1)  # [B, n, C]
            x = torch.cat([out.x[:, : out.num_prefix], out.x[:, out.num_prefix :] + code.to(out.x.dtype)], dim=1)
            out = out.replace(x=x)
        return out

    def extra_repr(self) -> str:
        return (f"threshold={self.threshold}, length_encoding={self.length_encoding}, "
                f"proportional={self.proportional}, std={self.std}")
