"""Pictures of what a reducer does to the tokens of a clip: which original patches each token
holds after chosen blocks, what was dropped, and the importance the reducer ranks by."""
from videotok.visualize.draw import Geometry, Picture, draw, frames_rgb
from videotok.visualize.picture import caption, default_blocks, header, parse_blocks, token_picture
from videotok.visualize.tracking import BlockMap, check_blocks, track
from videotok.visualize.write import SUFFIXES, check_outputs, write_picture

__all__ = [
    "SUFFIXES",
    "BlockMap",
    "Geometry",
    "Picture",
    "check_blocks",
    "caption",
    "check_outputs",
    "default_blocks",
    "draw",
    "frames_rgb",
    "header",
    "parse_blocks",
    "token_picture",
    "track",
    "write_picture",
]
