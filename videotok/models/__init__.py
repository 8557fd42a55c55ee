"""Video backbones (TimeSformer, ViViT model 1 and 2, VideoMAE) on one base class (its docstring is the
backbone contract), and the registry of named configurations (every name in models/named.py)."""
from videotok.models import named  # noqa: F401  (registers every named configuration)
from videotok.models.base import VideoBackbone
from videotok.models.factorised import FactorisedViViT
from videotok.models.registry import create_model, list_models, model_spec, register_model
from videotok.models.video_vit import VideoViT
from videotok.models.videomae import VideoMAE

__all__ = ["FactorisedViViT", "VideoBackbone", "VideoMAE", "VideoViT", "create_model", "list_models", "model_spec",
           "register_model"]
