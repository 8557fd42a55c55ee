"""`videotok` entry point: LightningCLI for fit/validate/test, argparse for the other commands."""
from __future__ import annotations

import argparse
import os
import signal
import sys
from typing import Optional, Sequence

LIGHTNING_COMMANDS = ("fit", "validate", "test")
SIGTERM_EXIT_CODE = 143  # 128 + SIGTERM, what a shell reports for a process ended by it
USAGE = """usage: videotok COMMAND [options]

training (LightningCLI; `videotok fit --help` for every option):
  fit        train:     videotok fit --config configs/experiment/smoke.yaml
  validate   validate a checkpoint: videotok validate --config C --ckpt_path P [--reducer NAME ...]
  test       test a checkpoint (clip-level)
tools:
  predict    top-k classes of one video: videotok predict --pretrained SOURCE --video FILE
  visualize  draw the tokens of one video block by block: videotok visualize --pretrained SOURCE
             --video FILE --reducer NAME [--blocks 2,5,11] --output OUT.png OUT.gif
  evaluate   clip- and video-level multi-view evaluation of a checkpoint
  compare    every reducer against the full-token baseline, one report
  flops      GFLOPs per view, params and tokens per block
  reducers   list reducers and their arguments
  models     list backbones

reducer shortcut, any command: --reducer NAME --reducer-arg key=value [--reducer-arg ...]
"""


def _tool_parser() -> argparse.ArgumentParser:
    from videotok.commands import flops, listing

    parser = argparse.ArgumentParser(prog="videotok")
    subparsers = parser.add_subparsers(dest="command", required=True)
    flops.add_parser(subparsers)
    listing.add_parsers(subparsers)
    for name in ("predict", "evaluate", "compare", "visualize"):
        module = _optional_command(name)
        if module is not None:
            module.add_parser(subparsers)
    return parser


def _optional_command(name: str):
    import importlib

    try:
        return importlib.import_module(f"videotok.commands.{name}")
    except ModuleNotFoundError as error:
        if error.name == f"videotok.commands.{name}":
            return None
        raise


LAUNCHER_PID = "VIDEOTOK_LAUNCHER_PID"  # set by a top-level `videotok`; the ranks it starts inherit it


def _started_by_our_launcher() -> bool:
    """True in ranks 1..N-1 that Lightning's DDP launcher started from a `videotok` rank 0."""
    return os.environ.get(LAUNCHER_PID) == str(os.getppid())


def _prepare_process() -> None:
    """A top-level `videotok` marks itself as the launcher of the ranks it may start. A rank
    started by another process (our rank 0, or torchrun's agent) ends when that parent ends,
    whatever it is doing: waiting in a collective for a rank 0 that was killed, it would otherwise
    wait until the process-group timeout. Linux only (prctl PR_SET_PDEATHSIG)."""
    if "LOCAL_RANK" not in os.environ:
        os.environ[LAUNCHER_PID] = str(os.getpid())
    elif os.environ["LOCAL_RANK"] != "0" and sys.platform.startswith("linux"):
        import ctypes

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _stop_code(code: int) -> int:
    """Exit code after a stop every rank makes together (SIGTERM, too many bad videos). Ranks
    that our rank 0 started exit 0: rank 0 reports the outcome, and Lightning's launcher SIGKILLs
    every process, rank 0 included, as soon as one of the ranks it started exits non-zero."""
    return 0 if _started_by_our_launcher() else code


def run_lightning(argv: Sequence[str]) -> int:
    _prepare_process()
    from videotok.config import expand_configs
    from videotok.console import quiet_lightning_console
    from videotok.train.lightning_cli import VideoTokCLI

    quiet_lightning_console()
    VideoTokCLI(args=expand_configs(argv))
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    try:
        if argv[0] in LIGHTNING_COMMANDS:
            return run_lightning(argv)
        args = _tool_parser().parse_args(argv)
        _prepare_process()  # evaluate and compare may launch ranks (--devices)
        return args.run(args)
    except SystemExit as stop:
        if type(stop).__name__ != "SIGTERMException":  # Lightning's: every process stopped at one step
            raise
        print(f"videotok {argv[0]}: stopped by SIGTERM; a fit resumes from its last checkpoint with "
              "`--ckpt_path last`", file=sys.stderr)
        return _stop_code(SIGTERM_EXIT_CODE)
    except (ValueError, FileNotFoundError) as error:
        print(f"videotok {argv[0]}: error: {_root_cause(error)}", file=sys.stderr)
        return 2
    except RuntimeError as error:
        failures = sys.modules.get("videotok.data.failures")  # loaded if it raised this error
        if failures is None or not isinstance(error, failures.TooManyBadVideos):
            raise
        print(f"videotok {argv[0]}: error: {error}", file=sys.stderr)  # the data's fault: exit 1
        return _stop_code(1)


def _root_cause(error: BaseException) -> BaseException:
    """jsonargparse wraps errors raised while instantiating linked arguments (e.g. a missing
    data_dir found by `data.num_classes`) in a multi-line message; report the original one."""
    while isinstance(error.__cause__, (ValueError, FileNotFoundError)):
        error = error.__cause__
    return error


if __name__ == "__main__":
    sys.exit(main())
