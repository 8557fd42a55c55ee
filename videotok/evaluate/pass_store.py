"""Where an evaluation pass keeps what it has scored, so an interrupted pass resumes.

A pass folder holds `pass.json` (what the pass computes: its signature, written once) and one file
per flush, `parts/<run>-rank<r>-<seq>.pt`: the per-video records of every row finished since that
rank's previous flush, the videos it could not read or read with the fallback decoder, and the
rank's running totals for this run (timings, GFLOPs sums). Each file is written whole (to a
temporary name, then renamed), so a killed process leaves only complete files. A rerun reads them
all, skips the videos they hold, and adds their totals to its own.

Files hold only tensors, numbers and strings, so they load with `torch.load(weights_only=True)`.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from videotok.evaluate.aggregate import VideoRecords

PASS_FILE = "pass.json"
PARTS = "parts"


@dataclass
class RankTotals:
    """One rank's running sums over one run, per row and for the whole pass."""

    wall_seconds: float = 0.0
    wait_seconds: float = 0.0  # waiting for the next decoded batch
    batches: int = 0
    # row -> sums: views, gflops_change, model_seconds, timed_views, timed_seconds, duplicates
    rows: dict[str, dict[str, float]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"wall_seconds": self.wall_seconds, "wait_seconds": self.wait_seconds,
                "batches": self.batches, "rows": {k: dict(v) for k, v in self.rows.items()}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RankTotals":
        return cls(float(data["wall_seconds"]), float(data["wait_seconds"]), int(data["batches"]),
                   {k: dict(v) for k, v in data["rows"].items()})


def add_totals(parts: list[RankTotals]) -> RankTotals:
    """The sums of several ranks' or runs' totals."""
    out = RankTotals()
    for part in parts:
        out.wall_seconds += part.wall_seconds
        out.wait_seconds += part.wait_seconds
        out.batches += part.batches
        for row, sums in part.rows.items():
            into = out.rows.setdefault(row, {})
            for key, value in sums.items():
                into[key] = into.get(key, 0.0) + value
    return out


@dataclass
class Stored:
    """Everything earlier runs of a pass flushed."""

    records: dict[str, list[VideoRecords]]  # row -> parts, in file order
    skipped: list[tuple[str, str]]
    fallbacks: list[tuple[str, str, str]]
    totals: dict[tuple[str, int], RankTotals]  # (run, rank) -> its last totals
    runs: int

    def done(self) -> frozenset[int]:
        """Videos every row has a record of."""
        sets = [set().union(*(p.video_index.tolist() for p in parts)) if parts else set()
                for parts in self.records.values()]
        return frozenset(set.intersection(*sets)) if sets else frozenset()


class PassStore:
    """The pass folder `root` (created on first write)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def check(self, signature: dict[str, Any]) -> None:
        """Refuse a folder started by a pass with another signature; write it for a new one."""
        path = self.root / PASS_FILE
        wanted = json.loads(json.dumps(signature, sort_keys=True, default=str))
        if path.is_file():
            stored = json.loads(path.read_text()).get("signature")
            if stored != wanted:
                changed = sorted(k for k in set(stored or {}) | set(wanted) if (stored or {}).get(k) != wanted.get(k))
                raise ValueError(
                    f"{self.root} holds a pass started with other settings ({', '.join(changed) or 'signature'} "
                    "differ: config, checkpoints, rows, split or views). Rerun the command that started it to "
                    "finish it, or delete the folder to start again."
                )
            return
        self.root.mkdir(parents=True, exist_ok=True)
        _write_atomically(path, json.dumps({"signature": wanted}, indent=2, sort_keys=True).encode())

    def write(self, run: str, rank: int, seq: int, records: dict[str, VideoRecords],
              skipped: list[tuple[str, str]], fallbacks: list[tuple[str, str, str]], totals: RankTotals) -> Path:
        """One flush of one rank: its new records, failures and running totals."""
        folder = self.root / PARTS
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{run}-rank{rank:03d}-{seq:06d}.pt"
        payload = {"run": run, "rank": rank, "seq": seq,
                   "rows": {name: r.to_dict() for name, r in records.items()},
                   "skipped": [list(s) for s in skipped], "fallbacks": [list(f) for f in fallbacks],
                   "totals": totals.to_dict()}
        tmp = path.with_suffix(".pt.partial")
        torch.save(payload, tmp)
        os.replace(tmp, path)
        return path

    def load(self, rows: list[str]) -> Stored:
        """What earlier runs flushed, for `rows` (a part without one of them is ignored)."""
        records: dict[str, list[VideoRecords]] = {name: [] for name in rows}
        skipped: list[tuple[str, str]] = []
        fallbacks: list[tuple[str, str, str]] = []
        last: dict[tuple[str, int], tuple[int, RankTotals]] = {}
        runs: set[str] = set()
        for path in sorted((self.root / PARTS).glob("*.pt")) if (self.root / PARTS).is_dir() else []:
            part = torch.load(path, weights_only=True)
            if not set(rows) <= set(part["rows"]):
                continue
            runs.add(part["run"])
            for name in rows:
                records[name].append(VideoRecords(**part["rows"][name]))
            skipped += [tuple(s) for s in part["skipped"]]
            fallbacks += [tuple(f) for f in part["fallbacks"]]
            key = (part["run"], int(part["rank"]))
            if key not in last or last[key][0] < int(part["seq"]):
                last[key] = (int(part["seq"]), RankTotals.from_dict(part["totals"]))
        return Stored(records, skipped, fallbacks, {key: t for key, (_, t) in last.items()}, len(runs))

    def remove(self) -> None:
        """Delete the pass folder once its results are saved elsewhere."""
        for path in sorted(self.root.rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()
        if self.root.is_dir():
            self.root.rmdir()


def _write_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".partial")
    tmp.write_bytes(data)
    os.replace(tmp, path)
