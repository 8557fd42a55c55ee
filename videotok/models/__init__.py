"""Video backbones (TimeSformer, ViViT model 1 and 2) that carry a TokenState between blocks."""
from videotok.models.factorised import FactorisedViViT
from videotok.models.registry import create_model, list_models
from videotok.models.video_vit import VideoViT

__all__ = ["FactorisedViViT", "VideoViT", "create_model", "list_models"]
