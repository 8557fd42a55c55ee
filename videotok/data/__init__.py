"""Video data: Kinetics-layout folders decoded with decord (or PyAV) through PyTorchVideo."""

from videotok.data.datamodule import KineticsDataModule
from videotok.data.dataset import VideoClipDataset, collate_with_failures
from videotok.data.failures import FailureTracker, Skip, VideoLoadError, count_loaded_videos
from videotok.data.labels import read_classes, read_labeled_paths
from videotok.data.loader import VideoDataLoader

__all__ = [
    "FailureTracker",
    "KineticsDataModule",
    "Skip",
    "VideoClipDataset",
    "VideoDataLoader",
    "VideoLoadError",
    "collate_with_failures",
    "count_loaded_videos",
    "read_classes",
    "read_labeled_paths",
]
