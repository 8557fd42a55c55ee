"""Keep the console for what a user can act on: silence warnings about videotok's own wiring.

``videotok fit|validate|test`` hands LightningCLI its rewritten command line (configs with
``bases:`` merged into YAML text) while ``sys.argv`` still holds the original, so
LightningCLI warns that both were given and dumps the whole resolved config before every run.
That is how videotok is meant to call it, not a user mistake, so the warning is dropped here.
Lightning's own use of a deprecated torch pytree API (``isinstance(treespec, LeafSpec)``) is
dropped too: nothing a user can change. Every other warning still shows. FFmpeg's messages are
handled where videos are read (``videotok.data.decoder_messages``).
"""

from __future__ import annotations

import warnings

QUIET_MESSAGES = (
    r"LightningCLI's args parameter is intended to run from within Python",
    r"`isinstance\(treespec, LeafSpec\)` is deprecated",
)


def quiet_lightning_console() -> None:
    """Install the warning filters above (idempotent); call before building the LightningCLI."""
    for message in QUIET_MESSAGES:
        warnings.filterwarnings("ignore", message=message)


__all__ = ["QUIET_MESSAGES", "quiet_lightning_console"]
