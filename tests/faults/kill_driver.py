"""A run in its own process that SIGKILLs itself at a stage: `python -m tests.faults.kill_driver
TMP PORT ROUND STAGE`. STAGE is the start of a progress message ("collecting", "rendering",
"delivering"), or "message:N" to die when asked before the N-th message."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path


def main(tmp: str, port: str, round_id: str, stage: str) -> None:
    from reporter.config import load_data
    from reporter.sandbox import Sandbox

    from .conftest import SPEC, config_data, execute

    asked = 0

    def die() -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    def progress(message: str) -> None:
        print(f"progress: {message}", flush=True)
        if message.startswith(stage):
            die()

    def should_stop() -> bool:
        nonlocal asked
        asked += 1
        if stage == f"message:{asked}":
            die()
        return False

    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
    with Sandbox(SPEC) as sandbox:
        settings = load_data(config_data(sandbox, Path(tmp), port=int(port)), {}, source="kill")
        execute(sandbox, settings, round_id=round_id, progress=progress, should_stop=should_stop)
    print("finished", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
