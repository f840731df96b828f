from __future__ import annotations

from datetime import UTC, datetime

from reporter.schedule import next_run


def test_default_schedule_fires_monday_seven_local_time() -> None:
    saturday = datetime(2026, 11, 28, 1, 0, tzinfo=UTC)
    fire = next_run("0 7 * * mon", "Europe/Berlin", saturday)
    assert fire is not None
    assert fire.isoformat() == "2026-11-30T07:00:00+01:00"
    assert fire.astimezone(UTC).hour == 6
