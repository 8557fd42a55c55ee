"""Reduce the tokens of a transformers video classifier inside its own pipeline.

    python examples/reduce_in_a_pipeline.py --model MCG-NJU/videomae-base-finetuned-kinetics --video clip.mp4

The pipeline keeps the model object it was given: patching the model changes what the pipeline
runs, unpatching restores it. `--model`: a hub id or a folder saved by transformers (with its
processor config); transformers' Timesformer, Vivit and VideoMAE classifiers are supported.
"""
from __future__ import annotations

import argparse
from typing import Optional

from transformers import AutoModelForVideoClassification, pipeline

import videotok


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="MCG-NJU/videomae-base-finetuned-kinetics")
    parser.add_argument("--video", required=True)
    parser.add_argument("--r", type=int, default=8, help="tokens ToMe merges in each block")
    parser.add_argument("--top-k", type=int, default=3)
    args = parser.parse_args(argv)

    model = AutoModelForVideoClassification.from_pretrained(args.model).eval()
    classify = pipeline("video-classification", model=model, image_processor=args.model)
    print("full tokens:", classify(args.video, top_k=args.top_k))

    videotok.patch(model, "tome", r=args.r)  # in place: the pipeline now runs the reduced model
    reduced_gflops = videotok.count_gflops(model)
    with videotok.using_reducer(model, "none"):
        full_gflops = videotok.count_gflops(model)
    print(f"tome r={args.r}:", classify(args.video, top_k=args.top_k))
    print(f"GFLOPs per clip: {reduced_gflops:.4g} instead of {full_gflops:.4g}")

    videotok.unpatch(model)  # the original model again
    print("unpatched:", classify(args.video, top_k=args.top_k))


if __name__ == "__main__":
    main()
