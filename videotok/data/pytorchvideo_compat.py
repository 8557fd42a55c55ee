"""The one door into PyTorchVideo.

PyTorchVideo 0.1.5 (the last release) imports ``torchvision.transforms.functional_tensor``,
which torchvision renamed to ``_functional_tensor`` (0.17) and then removed. Importing
``pytorchvideo.transforms`` therefore fails on current torchvision. We register the old name
as an alias of the new module, only when it is missing, before anything from PyTorchVideo is
imported. Every module of videotok imports PyTorchVideo through here, so the shim is always
in place and the few private attributes we read are pinned in one file.
"""

from __future__ import annotations

import importlib
import sys
import warnings
from types import ModuleType

_OLD_NAME = "torchvision.transforms.functional_tensor"
_NEW_NAME = "torchvision.transforms._functional_tensor"


def install_functional_tensor_alias() -> ModuleType:
    """Make ``import torchvision.transforms.functional_tensor`` work; return that module.

    Leaves an importable old module (older torchvision) or an existing alias untouched.
    """
    if _OLD_NAME in sys.modules:
        return sys.modules[_OLD_NAME]
    try:
        return importlib.import_module(_OLD_NAME)
    except ImportError:
        module = importlib.import_module(_NEW_NAME)
        sys.modules[_OLD_NAME] = module
        return module


install_functional_tensor_alias()

# Re-exports: the PyTorchVideo pieces videotok uses (import after the alias above). Its
# transforms call torch.jit.script_method at import, which warns on recent torch: not ours.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=".*torch.jit.script_method", category=FutureWarning)
    from pytorchvideo.data.clip_sampling import (  # noqa: E402
        ClipInfo,
        ClipSampler,
        ConstantClipsPerVideoSampler,
        RandomClipSampler,
        UniformClipSampler,
    )
    from pytorchvideo.data.encoded_video import EncodedVideo  # noqa: E402
    from pytorchvideo.data.labeled_video_paths import LabeledVideoPaths  # noqa: E402
    from pytorchvideo.data.video import Video  # noqa: E402
    from pytorchvideo.transforms import (  # noqa: E402
        ApplyTransformToKey,
        Div255,
        Normalize,
        RandomShortSideScale,
        ShortSideScale,
        UniformCropVideo,
        UniformTemporalSubsample,
    )

DECODERS = ("decord", "pyav")


def video_fps(video: Video) -> float:
    """Average frame rate of a video opened by ``EncodedVideo.from_path``.

    PyTorchVideo 0.1.5 keeps it private (``_fps`` for decord, the PyAV container otherwise);
    we need it to turn a frame interval into a clip duration in seconds.
    """
    fps = getattr(video, "_fps", None)  # EncodedVideoDecord
    if fps is None:
        container = getattr(video, "_container", None)  # EncodedVideoPyAV
        if container is None or not container.streams.video:
            raise RuntimeError(f"cannot read the frame rate of {type(video).__name__}")
        fps = container.streams.video[0].average_rate or container.streams.video[0].guessed_rate
    if fps is None or float(fps) <= 0:
        raise RuntimeError(f"video {getattr(video, 'name', '?')} reports no frame rate")
    return float(fps)


__all__ = [
    "ApplyTransformToKey",
    "ClipInfo",
    "ClipSampler",
    "ConstantClipsPerVideoSampler",
    "DECODERS",
    "Div255",
    "EncodedVideo",
    "LabeledVideoPaths",
    "Normalize",
    "RandomClipSampler",
    "RandomShortSideScale",
    "ShortSideScale",
    "UniformClipSampler",
    "UniformCropVideo",
    "UniformTemporalSubsample",
    "Video",
    "install_functional_tensor_alias",
    "video_fps",
]
