"""Training augmentation as a function of (seed, epoch, rank, worker), not of the global RNG.

PyTorchVideo's and torchvision's random transforms (scale, crop, flip) draw from the global
torch RNG and PyTorchVideo's ``RandomClipSampler`` from Python's ``random``; none takes a
generator. Seeding those globals would also reseed whatever else the process draws (dropout,
the ``random`` reducer) and, with ``num_workers=0``, would tie the model's randomness to the
data loading. So each epoch's iteration owns private copies of the three global RNG states,
seeded from (seed, epoch, rank, worker id), and swaps them in only while it loads a video:
the clips an epoch yields are the same in a fresh run and after a resume, in a worker or in the
main process, and the caller's RNG streams are left exactly as they were.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch


def stream_seed(seed: int, epoch: int, rank: int, worker_id: int) -> int:
    """A 63-bit seed for one (seed, epoch, rank, worker) data stream; neighbours share no state."""
    digest = hashlib.sha256(f"videotok:{seed}:{epoch}:{rank}:{worker_id}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


class PrivateRandomState:
    """Torch (CPU), Python and NumPy global RNG states of one data stream.

    ``with rng.active():`` runs its body on this stream's states and then puts the caller's back,
    so the stream continues where it stopped at the next ``active()`` call.
    """

    def __init__(self, seed: int) -> None:
        self._torch = torch.Generator().manual_seed(seed).get_state()
        self._python = random.Random(seed).getstate()
        self._numpy = np.random.RandomState(seed % 2**32).get_state()

    @contextmanager
    def active(self) -> Iterator[None]:
        saved = torch.get_rng_state(), random.getstate(), np.random.get_state()
        torch.set_rng_state(self._torch)
        random.setstate(self._python)
        np.random.set_state(self._numpy)
        try:
            yield
        finally:
            self._torch, self._python, self._numpy = torch.get_rng_state(), random.getstate(), np.random.get_state()
            torch.set_rng_state(saved[0])
            random.setstate(saved[1])
            np.random.set_state(saved[2])
