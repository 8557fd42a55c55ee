"""A tiny random transformers VideoMAE saved as a hub folder (config, weights, processor config): the
stand-in for a published checkpoint in the tests of the Python API, the README and the examples."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch

FRAMES, SIZE, PATCH = 4, 64, 8  # 2 x 8 x 8 = 128 tubelets: room for tome r=8 in each of 4 blocks


def save_tiny_videomae(folder: Path, labels: Sequence[str], seed: int = 0) -> Path:
    import transformers

    torch.manual_seed(seed)
    config = transformers.VideoMAEConfig(
        hidden_size=96, num_hidden_layers=4, num_attention_heads=3, intermediate_size=384, image_size=SIZE,
        patch_size=PATCH, num_frames=FRAMES, tubelet_size=2, num_labels=len(labels),
        id2label=dict(enumerate(labels)), label2id={name: i for i, name in enumerate(labels)})
    transformers.VideoMAEForVideoClassification(config).eval().save_pretrained(folder)
    transformers.VideoMAEImageProcessor(size={"shortest_edge": SIZE},
                                        crop_size={"height": SIZE, "width": SIZE}).save_pretrained(folder)
    return folder
