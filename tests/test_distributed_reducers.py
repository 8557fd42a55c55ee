"""Every reducer trains under DDP on every backbone: 2 CPU processes (gloo), Lightning's own DDP
strategy, a few steps each.

Some configurations leave parameters unused by design (e.g. TimeSformer's temporal branches
after a reduction that drops the grid, the blocks `semantic` replaces); plain DDP stops those at
the first step. `VideoClassifier.setup` declares a static graph to the strategy for them, so the
user passes no flag. The two processes are started here (as torchrun would), each running one
Lightning Trainer per configuration in the same process group; after the steps both ranks must
hold the same weights (the gradients were all-reduced) and the weights must have moved.
"""
from __future__ import annotations

import os
import socket
import sys
import traceback
from datetime import timedelta
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reducer_cases import BACKBONES, CASES  # noqa: E402

STEPS = 2
FRAMES, SIZE, CLASSES, BATCH = 8, 96, 6, 2  # the sizes reducer_cases' settings are written for


def _configurations() -> list[tuple[str, str, dict]]:
    """(backbone, reducer, args): the first active setting of each reducer that runs there."""
    out = []
    for backbone in BACKBONES:
        for reducer, case in CASES.items():
            setting = next((s for s in case.active if backbone not in s.unsupported), None)
            if setting is not None:
                out.append((backbone, reducer, dict(setting.args)))
    return out


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _batches() -> list[dict]:
    generator = torch.Generator().manual_seed(0)
    return [
        {"video": torch.randn(BATCH, 3, FRAMES, SIZE, SIZE, generator=generator),
         "label": torch.randint(0, CLASSES, (BATCH,), generator=generator),
         "view_index": torch.zeros(BATCH, dtype=torch.long)}
        for _ in range(STEPS)
    ]


def _rank_main(rank: int, port: int, configurations: list, results) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE="2", RANK=str(rank),
                      LOCAL_RANK=str(rank), NODE_RANK="0")
    torch.set_num_threads(1)
    import lightning as L
    from lightning.pytorch.strategies import DDPStrategy

    from videotok.train import VideoClassifier

    for backbone, reducer, args in configurations:
        key = f"{backbone} {reducer} {args}"
        try:
            torch.manual_seed(0)
            module = VideoClassifier(model=backbone, num_classes=CLASSES, num_frames=FRAMES, img_size=SIZE,
                                     reducer=reducer, reducer_args=args, warmup_epochs=0.0)
            before = torch.cat([p.detach().flatten().clone() for p in module.parameters()])
            trainer = L.Trainer(
                accelerator="cpu", devices=2, strategy=DDPStrategy(timeout=timedelta(seconds=60)),
                max_steps=STEPS, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                enable_model_summary=False, limit_val_batches=0, num_sanity_val_steps=0,
            )
            trainer.fit(module, train_dataloaders=DataLoader(_batches(), batch_size=None))
            after = torch.cat([p.detach().flatten() for p in module.parameters()])
            gathered = trainer.strategy.all_gather(after)  # [2, P]
            results[(rank, key)] = {
                "moved": bool((after - before).abs().max() > 0),
                "same_on_ranks": bool(torch.equal(gathered[0], gathered[1])),
                "static_graph": bool(trainer.strategy._ddp_kwargs.get("static_graph", False)),
            }
        except Exception:
            results[(rank, key)] = {"error": traceback.format_exc()[-3000:]}
            return  # the other rank fails on the process-group timeout; do not start another


@pytest.mark.slow  # CI time: 2 processes for every reducer and backbone
def test_every_reducer_trains_on_two_processes_on_every_backbone():
    configurations = _configurations()
    covered = {(backbone, reducer) for backbone, reducer, _ in configurations}
    assert {(b, r) for b in ("timesformer_tiny", "vivit_tiny") for r in CASES} <= covered
    context = mp.get_context("spawn")
    with context.Manager() as manager:
        results = manager.dict()
        port = _free_port()
        processes = [context.Process(target=_rank_main, args=(rank, port, configurations, results)) for rank in (0, 1)]
        for process in processes:
            process.start()
        for process in processes:
            process.join(timeout=600)
        hung = [p.pid for p in processes if p.is_alive()]
        for process in processes:
            process.kill()
        results = dict(results)
    errors = {key: value["error"] for key, value in results.items() if "error" in value}
    assert not errors, "\n\n".join(f"{key}:\n{text}" for key, text in errors.items())
    assert not hung, "a rank did not finish (hang)"
    for backbone, reducer, args in configurations:
        key = f"{backbone} {reducer} {args}"
        for rank in (0, 1):
            result = results[(rank, key)]
            assert result["moved"], (rank, key)
            assert result["same_on_ranks"], (rank, key)
            assert result["static_graph"] == (reducer != "none"), (rank, key)
