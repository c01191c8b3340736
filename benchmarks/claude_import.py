"""Child task that times importing the bundled Claude Code transcripts.

Each run is a fresh process: the first import goes into an empty storage
directory, and a second import of the same transcripts finds every call
already present and adds nothing.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from common import REPO, child_main

from leyline_usage import UsageLogger
from leyline_usage.importers.claude_code import import_transcripts

TRANSCRIPTS = REPO / "examples" / "claude-code"


def import_task(params: dict[str, Any]) -> dict[str, Any]:
    """Import the transcripts twice into ``directory`` and time both imports."""
    logger = UsageLogger("claude-code", storage_dir=Path(params["directory"]))

    started = time.perf_counter()
    first = import_transcripts(logger, [TRANSCRIPTS])
    first_seconds = time.perf_counter() - started

    started = time.perf_counter()
    again = import_transcripts(logger, [TRANSCRIPTS])
    again_seconds = time.perf_counter() - started
    return {
        "import_seconds": first_seconds,
        "reimport_seconds": again_seconds,
        "files": first.files,
        "records": first.records,
        "added": first.added,
        "added_again": again.added,
    }


if __name__ == "__main__":
    child_main({"import": import_task})
