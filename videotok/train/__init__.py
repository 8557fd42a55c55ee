"""Training: the VideoClassifier LightningModule, its optimiser recipe and run callbacks."""
from videotok.train.callbacks import RunCheckpoint
from videotok.train.module import VideoClassifier

__all__ = ["RunCheckpoint", "VideoClassifier"]
