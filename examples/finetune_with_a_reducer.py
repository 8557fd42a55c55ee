"""Fine-tune a published video checkpoint with a reducer in your own training loop.

    python examples/finetune_with_a_reducer.py --model MCG-NJU/videomae-base-finetuned-kinetics \
        --data-dir DATA --reducer tome --reducer-arg r=8 --steps 200

DATA is a folder in the Kinetics layout (train.csv and val.csv with one `<path> <label>` line per
video, classes.txt; `python -m data_tools.folders` writes one from a folder per class). The model
gets a new classifier for DATA's classes; clips are decoded with the checkpoint's own preprocessing.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Optional

import torch
from torch.utils.data import DataLoader, Dataset

import videotok
from videotok.reduce import parse_reducer_args


class Clips(Dataset):
    """One clip (the centre view) per video of a split file, decoded as evaluation decodes it."""

    def __init__(self, data_dir: Path, split: str, preprocessing) -> None:
        self.data_dir, self.preprocessing = data_dir, preprocessing
        self.rows = [line.rsplit(None, 1) for line in (data_dir / f"{split}.csv").read_text().splitlines() if line]

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        path, label = self.rows[i]
        return videotok.read_clip(str(self.data_dir / path), self.preprocessing)[0], int(label)  # [C, T, H, W]


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="MCG-NJU/videomae-base-finetuned-kinetics")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--reducer", default="tome")
    parser.add_argument("--reducer-arg", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--lr", type=float, default=1e-4)
    args = parser.parse_args(argv)

    data_dir = Path(args.data_dir)
    classes = (data_dir / "classes.txt").read_text().split("\n")
    classes = [c for c in classes if c.strip()]
    model = videotok.load(args.model, args.reducer, num_classes=len(classes), **parse_reducer_args(args.reducer_arg))
    loader = DataLoader(Clips(data_dir, "train", model.preprocessing), batch_size=args.batch_size, shuffle=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr)

    model.train()
    step = 0
    while step < args.steps:
        for clips, labels in loader:  # clips [B, C, T, H, W]
            loss = torch.nn.functional.cross_entropy(model(clips), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            step += 1
            print(f"step {step}: loss {loss.item():.4f}")
            if step == args.steps:
                break

    result = videotok.evaluate(model.eval(), data_dir, views=(1, 1), split="val")
    print(f"val video top-1 {result.video_top1:.2f} %, {result.gflops_per_view:.4g} GFLOPs per view")


if __name__ == "__main__":
    main()
