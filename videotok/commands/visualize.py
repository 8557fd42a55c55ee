"""`videotok visualize`: what a reducer does to the tokens of one video, drawn block by block."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch

from videotok.commands.weights import add_weight_arguments, check_weight_arguments, load_model
from videotok.reduce.choice import ReducerChoice, add_reducer_arguments


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "visualize", help="draw which patches each token holds after chosen blocks (PNG, GIF, MP4)",
        description="Decodes one view of the video as evaluation does (the centre clip and crop), runs it "
                    "through the model with its reducer and draws, after each chosen block, every token's "
                    "region over the frames (one colour per token, outlined; greyed where no token holds "
                    "the patch), and the importance the reducer ranks by (CLS attention, or attention "
                    "received without CLS) or what semantic tokens draw from. Titles give the tokens per "
                    "block and the GFLOPs per view.",
    )
    parser.add_argument("--video", required=True, help="the video file")
    add_weight_arguments(parser)
    add_reducer_arguments(parser)
    parser.add_argument("--blocks", help="block indices, e.g. 2,5,11 (default: up to 3 blocks that reduce, "
                        "and the last)")
    parser.add_argument("--output", required=True, nargs="+", metavar="OUT",
                        help="one or more files: OUT.png (frames x blocks), OUT.gif or OUT.mp4 (the frames over time)")
    parser.add_argument("--fps", type=float, default=4.0, help="frames per second of a GIF or MP4 (default 4)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--decoder", default="decord", help="decord (default) or pyav")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from videotok.evaluate.predict import centre_view
    from videotok.visualize import caption, check_blocks, check_outputs, parse_blocks, token_picture, write_picture

    # everything the options alone decide is checked before any weights are read
    outputs = check_outputs(args.output)
    blocks = parse_blocks(args.blocks) if args.blocks is not None else None
    if args.fps <= 0:
        raise ValueError(f"--fps {args.fps}: expected a positive number")
    if not Path(args.video).is_file():
        raise FileNotFoundError(f"--video {args.video}: no such file")
    check_weight_arguments(args)
    reducer = ReducerChoice.from_flags(args.reducer, args.reducer_arg)

    loaded = load_model(args, reducer)
    model = loaded.model.to(args.device)
    if blocks is not None:
        blocks = check_blocks(blocks, len(model.blocks))
    print(f"model: {model.model_name} ({loaded.weights}), reducer: {model.reducer.name}", flush=True)
    lines, default = caption(model, Path(args.video).name)
    print(lines[1], flush=True)
    blocks = blocks or default
    print(f"decoding the centre view of {args.video}", flush=True)
    preprocessing = loaded.preprocessing
    clip = centre_view(args.video, preprocessing, decoder=args.decoder)  # [C, T, H, W]
    print(f"following the tokens through blocks {','.join(map(str, blocks))}", flush=True)
    picture = token_picture(model, clip, preprocessing.mean, preprocessing.std, blocks, lines)
    for column in picture.columns[1:]:
        if column.labels is not None:
            print(f"  {column.title.replace(chr(10), ': ')}", flush=True)
    grid, animation = picture.grid(), picture.animation()
    for path in outputs:
        write_picture(grid, animation, path, fps=args.fps)
        print(f"wrote {path}", flush=True)
    return 0
