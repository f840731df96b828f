"""One `serve` replica in its own process, on the sandbox organization and a real SMTP server:
`python -m tests.faults.serve_driver TMP PORT STATE_URL`: it prints `{"ready": …}` once its sandbox
is built, reads the slot (ISO 8601) from its standard input, then serves.

It is the real scheduled path (`Service`, APScheduler, its job store and run lock in the state
database, the retry job, the watch for interrupted slots) around the real pipeline; only the
trigger is a single slot at the time given and the intervals are seconds, so a test sees a week's
slot, its retries and a takeover within a minute. Prints one JSON line per finished run.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import datetime, timedelta
from pathlib import Path

from apscheduler.triggers.interval import IntervalTrigger


def main(tmp: str, port: str, state_url: str) -> None:
    from reporter.config import load_data
    from reporter.deliver.driver import close_deliverer, open_deliverer
    from reporter.render.environment import make_environment
    from reporter.sandbox import Sandbox
    from reporter.schedule import RunRequest, Service, configure_logging, serve_forever

    from .conftest import SPEC, config_data, execute

    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
    configure_logging(sys.stderr)
    with Sandbox(SPEC) as sandbox:
        settings = load_data(serve_config(config_data(sandbox, Path(tmp), port=int(port)),
                                          state_url), {}, source="serve")  # fmt: skip

        def job(request: RunRequest) -> str:
            result = execute(
                sandbox,
                settings,
                round_id=request.round_id,
                should_stop=request.should_stop,
                progress=lambda message: request.checkpoint(),
            )
            print(json.dumps({"run_id": result.context.run_id, "round": request.round_id,
                              "exit_code": result.exit_code, "pid": os.getpid()}),
                  flush=True)  # fmt: skip
            return result.context.run_id

        def retry() -> None:
            deliverer = open_deliverer(
                settings, env=make_environment(), run_id="retry", round_id="retry",
                write=lambda name, data: None,
            )  # fmt: skip
            try:
                deliverer.retry_queued(until_only=True)
            finally:
                close_deliverer(deliverer)

        # The slot is given once every replica is ready: building a sandbox takes a while on a
        # loaded machine, and a slot that passed before the first replica stored the job would
        # simply be next week's.
        print(json.dumps({"ready": os.getpid()}), flush=True)
        start = datetime.fromisoformat(sys.stdin.readline().strip())
        service = Service(
            database_url=state_url,
            job=job,
            when=IntervalTrigger(days=7, start_date=start, timezone="UTC"),
            timezone="UTC",
            misfire_grace_seconds=600,
            lease_seconds=settings.schedule.lock_lease_seconds,
            retry=retry,
            retry_interval_seconds=1,
            watch_interval_seconds=1,
        )
        print(json.dumps({"serving": service.holder, "next": str(start + timedelta(0))}),
              flush=True)  # fmt: skip
        serve_forever(service)


def serve_config(data: dict[str, object], state_url: str) -> dict[str, object]:
    """The fault matrix's settings with the state database under test, quick retries, and a
    manager for every owner so that messages carry a Cc."""
    mail = dict(data["mail"])  # type: ignore[call-overload]
    mail["smtp"] = {**mail["smtp"], "timeout_seconds": 3}
    mail["retry"] = {"attempts": 2, "backoff_seconds": 0}
    owners = {f"{n}@example.com": f"{n}-manager@example.com" for n in OWNERS}
    return {
        **data,
        "state": {"database_url": state_url},
        "mail": mail,
        "owners": {"managers": owners},
        "reports": {**data["reports"], "sla_days": SLA},  # type: ignore[dict-item]
        # The shortest lease there is: a killed replica's slot and messages are taken over
        # half a minute later.
        "schedule": {"lock_lease_seconds": LEASE},
    }


LEASE = 30
OWNERS = ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "security-team")
# Every finding past its SLA, so every owner's manager is in Cc.
SLA = {"UnusedIAMRole": 1, "UnusedIAMUserAccessKey": 1, "UnusedIAMUserPassword": 1,
       "UnusedPermission": 1}  # fmt: skip


if __name__ == "__main__":
    main(*sys.argv[1:])
