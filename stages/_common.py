"""Shared plumbing of stage scripts: params, logging, clean failure messages."""
from __future__ import annotations

import logging
import sys
from collections.abc import Callable

from dermsynth.config import configure_environment, load_params


def main(run: Callable[[dict], None]) -> None:
    """Run a stage; known failures print one clear message and exit 1 (DVC then stops)."""
    configure_environment()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    # diffusers warns once per pipeline about text-encoder LoRA keys we never train: noise in logs
    from diffusers.utils import logging as dlogging

    dlogging.set_verbosity_error()
    dlogging.disable_progress_bar()  # per-component loading bars; our own bars show the work
    from transformers.utils import logging as tlogging

    tlogging.disable_progress_bar()
    from dermsynth.data.records import IngestError
    from dermsynth.quality.gate import QualityGateError

    try:
        run(load_params())
    except (QualityGateError, IngestError, FileNotFoundError, KeyError, ValueError) as e:
        print(f"\nERROR: {e}", file=sys.stderr)
        sys.exit(1)
