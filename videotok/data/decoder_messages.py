"""Keep FFmpeg's and decord's own messages off the console, and use them as failure reasons.

decord's bundled FFmpeg and decord itself write straight to file descriptor 2 from C
(``moov atom not found``, ``[12:00:00] video_reader.cc:86: ERROR opening ...``), so Python's
``sys.stderr`` and ``warnings`` never see them and they land between progress-bar lines.
``captured_decoder_messages`` points fd 2 at a scratch file while one video is opened and
decoded, then sends what was written to the ``videotok.data.decoder`` logger (DEBUG) and hands
the cleaned lines back, so a failed video's reason can carry FFmpeg's explanation (decord's
exceptions alone often say only ``Error reading FILE...``).

The redirection is per process (DataLoader workers are processes). With ``num_workers=0`` it
happens in the main process, on the thread that would otherwise draw the progress bar.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Optional

LOGGER = logging.getLogger("videotok.data.decoder")
_DECORD_PREFIX = re.compile(r"^\[\d\d:\d\d:\d\d\] \S+:\d+: ")
_FFMPEG_PREFIX = re.compile(r"^\[([^\]@]+?) @ 0x[0-9a-f]+\] ")
_scratch: dict[int, IO[bytes]] = {}  # pid -> scratch file (a forked worker makes its own)


def clean_line(line: str) -> str:
    """One message without decord's timestamp/source prefix or FFmpeg's object address."""
    line = _DECORD_PREFIX.sub("", line.strip())
    return _FFMPEG_PREFIX.sub(lambda m: f"{m.group(1).split(',')[0]}: ", line)


def _scratch_file() -> IO[bytes]:
    pid = os.getpid()
    if pid not in _scratch:
        _scratch.clear()  # inherited from the parent: not ours to reuse
        _scratch[pid] = tempfile.TemporaryFile(prefix="videotok-decoder-")
    return _scratch[pid]


@contextmanager
def captured_decoder_messages(path: str = "") -> Iterator[list[str]]:
    """Inside the block, fd 2 goes to a scratch file; at exit the list yielded is filled with
    the cleaned non-empty lines written meanwhile, each also logged at DEBUG with ``path``."""
    lines: list[str] = []
    saved: Optional[int] = None
    scratch: Optional[IO[bytes]] = None
    try:
        sys.stderr.flush()
        scratch = _scratch_file()
        scratch.seek(0)
        scratch.truncate()
        saved = os.dup(2)
        os.dup2(scratch.fileno(), 2)
    except (OSError, ValueError):  # no fd 2 (or no sys.stderr): leave the console as it is
        if saved is not None:
            os.close(saved)
        saved = None
    try:
        yield lines
    finally:
        if saved is not None and scratch is not None:
            try:
                sys.stderr.flush()
            except (OSError, ValueError):
                pass
            os.dup2(saved, 2)
            os.close(saved)
            scratch.seek(0)
            text = scratch.read().decode("utf-8", errors="replace")
            lines.extend(c for c in (clean_line(x) for x in text.splitlines()) if c)
            for line in lines:
                LOGGER.debug("%s: %s", path, line)


__all__ = ["LOGGER", "captured_decoder_messages", "clean_line"]
