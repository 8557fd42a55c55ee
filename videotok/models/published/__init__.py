"""Published video checkpoints converted into videotok backbones, with their class order and the
preprocessing their authors tested them with.

    ckpt = load_published("MCG-NJU/videomae-base-finetuned-kinetics")  # or a local file / folder
    model = ckpt.build(reducer)                                       # eval mode, weights loaded
    data = KineticsDataModule(data_dir, **ckpt.preprocessing.data_args())

One module per family (timesformer, vivit, videomae) holds its key renames; `files` finds and reads
the files. `transformers` is never imported: the conversions are checked against it in the tests.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

from videotok.models.published import timesformer, videomae, vivit
from videotok.models.published.checkpoint import Preprocessing, PublishedCheckpoint, check_keys, meta_state
from videotok.models.published.common import log
from videotok.models.published.files import Found, read

FORMATS = ("timesformer_pyth", "hf_timesformer", "hf_vivit", "hf_videomae", "videomae_pth")
FORMAT_HELP = {
    "timesformer_pyth": "original facebookresearch/TimeSformer .pyth (model_state, keys model.blocks.N...)",
    "hf_timesformer": "transformers TimesformerForVideoClassification (timesformer.encoder.layer.N...)",
    "hf_vivit": "transformers VivitForVideoClassification (vivit.layers.N... or vivit.encoder.layer.N...)",
    "hf_videomae": "transformers VideoMAEForVideoClassification (videomae.encoder.layer.N..., fc_norm)",
    "videomae_pth": "original MCG-NJU/VideoMAE fine-tuned .pth (module/model, blocks.N.attn.q_bias)",
}
Converter = Callable[[Found, Optional[list[str]], str], PublishedCheckpoint]
# format -> (does a checkpoint look like it, convert it); detection tries them in this order
_FORMATS: dict[str, tuple[Callable[[Found], bool], Converter]] = {
    "timesformer_pyth": (timesformer.looks_like_pyth, timesformer.convert_pyth),
    "hf_timesformer": (timesformer.looks_like_hf, timesformer.convert_hf),
    "hf_vivit": (vivit.looks_like, vivit.convert),
    "hf_videomae": (videomae.looks_like_hf, videomae.convert_hf),
    "videomae_pth": (videomae.looks_like_pth, videomae.convert_pth),
}
_CACHE: dict[tuple[str, str, Optional[str], Optional[int]], PublishedCheckpoint] = {}

__all__ = ["FORMATS", "FORMAT_HELP", "Preprocessing", "PublishedCheckpoint", "detect_format", "load_published"]


def detect_format(found: Found) -> Optional[str]:
    """The format whose keys (or config.json model_type) `found` has, or None."""
    return next((name for name, (looks_like, _) in _FORMATS.items() if looks_like(found)), None)


def _describe(found: Found) -> str:
    detected = detect_format(found)
    sample = ", ".join(sorted(found.state)[:4])
    return f"its keys look like {detected}" if detected else f"its keys fit no known format (e.g. {sample})"


def _read_classes(path: Optional[str]) -> Optional[list[str]]:
    if path is None:
        return None
    if not Path(path).is_file():
        raise FileNotFoundError(f"class file {path!r} not found (one class name per line, line i = logit i)")
    from videotok.data.labels import read_classes

    return read_classes(path)


def load_published(source: str, format: Optional[str] = None, classes: Optional[str] = None,
                   num_heads: Optional[int] = None) -> PublishedCheckpoint:
    """Convert the published checkpoint `source` to videotok.

    source: a local file (.pyth/.pth/.pt/.bin/.safetensors), a local folder in transformers'
    save_pretrained layout (config.json + model.safetensors or pytorch_model.bin, optional processor
    config), or a Hugging Face hub id `owner/name` (fetched where the hub is reachable; offline, an
    error says to download it elsewhere and pass the folder). format: None detects it from the keys
    and config.json's model_type, else one of FORMATS. classes: a class-name file (one per line)
    for checkpoints that carry no names. num_heads: the attention heads, which no weight shape shows,
    over what the files state (config.json, a saved model name) or the family's known widths; where
    nothing states them they are guessed as 64 dims per head, with a warning. Cached per (resolved
    path, format, classes, num_heads) in-process, so building several reducer variants converts once."""
    if format is not None and format not in FORMATS:
        raise ValueError(f"format={format!r}: choose one of {', '.join(FORMATS)} (or none to detect it)")
    resolved = str(Path(source).expanduser().resolve()) if Path(source).expanduser().exists() else source
    class_file = str(Path(classes).resolve()) if classes is not None else None
    if num_heads is not None and int(num_heads) < 1:
        raise ValueError(f"num_heads={num_heads}: expected a positive head count")
    key = (resolved, format or "", class_file, num_heads)
    if key in _CACHE:
        return _CACHE[key]
    names = _read_classes(classes)
    found = read(source)
    found.num_heads = None if num_heads is None else int(num_heads)
    chosen = format or detect_format(found)
    if chosen is None:
        raise ValueError(f"{found.path}: cannot tell its format: {_describe(found)}; formats: {', '.join(FORMATS)}")
    looks_like, convert = _FORMATS[chosen]
    if not looks_like(found):
        raise ValueError(f"{found.path} is not format={chosen!r}: {_describe(found)}")
    checkpoint = convert(found, names, source)
    check_keys(checkpoint.state_dict, meta_state(checkpoint.model, checkpoint.model_args), str(found.path))
    log.info("%s: %s as %s (%d classes)", source, chosen, checkpoint.model, len(checkpoint.classes))
    for note in checkpoint.notes:
        log.info("%s: %s", source, note)
    _CACHE[key] = checkpoint
    return checkpoint
