"""Which videos an evaluation was about, and what became of each of them.

Two results can only be compared if they scored the same videos: ``VideoList.sha256`` hashes
the split's sorted ``"<path> <label>"`` lines (paths relative to the data folder, so moving the
folder keeps the hash). ``VideoList.account`` puts every video of the list in exactly one
place: evaluated, unreadable (with the loader's reason), or unaccounted for (neither: a bug,
reported rather than hidden). Evaluated videos that got fewer views than asked are listed too.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Union

SHORT_HASH_LENGTH = 12


@dataclass(frozen=True)
class UnreadableVideo:
    path: str
    reason: str


@dataclass(frozen=True)
class FallbackVideo:
    """A video evaluated from the fallback decoder's frames: the configured one could not read it."""

    path: str
    decoder: str
    reason: str


@dataclass(frozen=True)
class IncompleteVideo:
    path: str
    views: int
    expected: int


@dataclass
class VideoAccounting:
    videos_expected: int
    videos_evaluated: int
    unreadable: list[UnreadableVideo]
    incomplete: list[IncompleteVideo]
    unaccounted: list[str]  # in the list, but neither evaluated nor reported unreadable


def relative_path(path: str, data_dir: Union[str, os.PathLike]) -> str:
    """``path`` relative to ``data_dir`` (posix separators) when it lies inside it, else as given."""
    rel = os.path.relpath(os.path.abspath(path), os.path.abspath(data_dir))
    if rel == os.pardir or rel.startswith(os.pardir + os.sep):
        return path
    return rel.replace(os.sep, "/")


@dataclass(frozen=True)
class VideoList:
    """The (path, label) rows of a split in CSV order, paths relative to ``data_dir``."""

    entries: tuple[tuple[str, int], ...]
    data_dir: str

    @classmethod
    def from_labeled_paths(
        cls, videos: Sequence[tuple[str, Union[int, Mapping[str, Any]]]], data_dir: Union[str, os.PathLike]
    ) -> "VideoList":
        """From (path, label) pairs or PyTorchVideo's (path, {"label": label}) rows."""
        entries = []
        for i in range(len(videos)):
            path, meta = videos[i]
            label = int(meta["label"]) if isinstance(meta, Mapping) else int(meta)
            entries.append((relative_path(path, data_dir), label))
        return cls(tuple(entries), str(data_dir))

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def sha256(self) -> str:
        lines = sorted(f"{path} {label}" for path, label in self.entries)
        return hashlib.sha256("".join(line + "\n" for line in lines).encode()).hexdigest()

    @property
    def short_hash(self) -> str:
        return self.sha256[:SHORT_HASH_LENGTH]

    def account(
        self,
        views_per_video: Mapping[int, int],
        skipped: Sequence[tuple[str, str]],
        expected_views: int,
    ) -> VideoAccounting:
        """Where each video went. ``views_per_video``: video_index -> views scored; ``skipped``:
        the loader's (path, reason) pairs (paths as the loader gives them)."""
        unreadable: dict[str, UnreadableVideo] = {}
        for path, reason in skipped:
            shown = relative_path(path, self.data_dir)
            unreadable.setdefault(shown, UnreadableVideo(shown, str(reason)))
        incomplete = [
            IncompleteVideo(self.path(v), n, expected_views)
            for v, n in sorted(views_per_video.items()) if n != expected_views
        ]
        unaccounted = [
            path for i, (path, _) in enumerate(self.entries)
            if i not in views_per_video and path not in unreadable
        ]
        return VideoAccounting(
            videos_expected=len(self.entries),
            videos_evaluated=len(views_per_video),
            unreadable=list(unreadable.values()),
            incomplete=incomplete,
            unaccounted=unaccounted,
        )

    def fallbacks(self, fallbacks: Sequence[tuple[str, str, str]]) -> list[FallbackVideo]:
        """The loader's (path, decoder, reason) triples, once per video, paths as in the list."""
        seen: dict[str, FallbackVideo] = {}
        for path, decoder, reason in fallbacks:
            shown = relative_path(path, self.data_dir)
            seen.setdefault(shown, FallbackVideo(shown, str(decoder), str(reason)))
        return list(seen.values())

    def path(self, video_index: int) -> str:
        """The path of row ``video_index``, or a note that it lies outside the list."""
        if 0 <= video_index < len(self.entries):
            return self.entries[video_index][0]
        return f"<video_index {video_index} outside the list>"
