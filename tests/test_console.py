"""videotok.console: the warnings about videotok's own LightningCLI wiring are dropped, no others."""

from __future__ import annotations

import warnings

from videotok.console import quiet_lightning_console


def test_only_the_known_noise_is_dropped():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet_lightning_console()
        warnings.warn("LightningCLI's args parameter is intended to run from within Python like if ...", UserWarning)
        warnings.warn("`isinstance(treespec, LeafSpec)` is deprecated, use ...", FutureWarning)
        warnings.warn("The number of training batches (3) is smaller than the logging interval", UserWarning)
    assert [str(w.message)[:14] for w in caught] == ["The number of "]
