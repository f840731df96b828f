"""`access-reporter evidence …`: list, show, verify, export, prune and upload runs.

The store is the configured one (`evidence.store` in the config), or the local folder given by
`--dir`, which always wins: an auditor with a copied folder needs no configuration file.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reporter.config import Settings, load_data, load_file
from reporter.errors import UsageError

from . import (
    MANIFEST,
    EvidenceStore,
    LocalStore,
    RunStatus,
    Verification,
    open_store,
    publish_run,
    verify,
    verify_zip,
)
from .pack import check_run_id

DEFAULT_CONFIG = Path("config/reporter.yaml")


def add_parsers(sub: Any) -> None:
    """Add `evidence` and its actions to the top-level subparsers."""
    evidence = sub.add_parser("evidence", help="audit evidence of past runs")
    actions = evidence.add_subparsers(dest="evidence_command", required=True, metavar="ACTION")

    def action(name: str, text: str) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = actions.add_parser(name, help=text, description=text)
        p.add_argument("-c", "--config", type=Path, help=f"config file (default {DEFAULT_CONFIG})")
        p.add_argument(
            "--dir", type=Path, help="a local evidence folder (overrides the configured store)"
        )
        return p

    action("list", "list runs with their date, counts and status")
    action("show", "print a run's manifest").add_argument("run_id")
    action(
        "verify", "recompute every hash; exit 1 on any missing, changed or extra file"
    ).add_argument("run_id", help="a run id, or the path of an exported zip or unpacked folder")
    export = action("export", "write a run as a zip with manifest.json at its root")
    export.add_argument("run_id")
    export.add_argument("-o", "--output", type=Path, help="zip file (default ./RUN.zip)")
    prune = action("prune", "remove runs past evidence.retention_days (never Object-Locked)")
    prune.add_argument("--retention-days", type=int, help="override evidence.retention_days")
    action("upload", "store a finished local run in the configured store (S3)").add_argument(
        "run_id"
    )


def _settings(args: argparse.Namespace) -> Settings:
    if args.config is not None:
        return load_file(args.config, os.environ)
    if DEFAULT_CONFIG.is_file():
        return load_file(DEFAULT_CONFIG, os.environ)
    return load_data({}, os.environ, source="built-in defaults")


def _store(args: argparse.Namespace, settings: Settings) -> EvidenceStore:
    if args.dir is not None:
        return LocalStore(args.dir)
    return open_store(settings)


def run_command(args: argparse.Namespace) -> int:
    if args.evidence_command == "verify" and _looks_like_path(args.run_id):
        return _verify_path(Path(args.run_id))
    settings = _settings(args)
    store = _store(args, settings)
    match args.evidence_command:
        case "list":
            return _list(store)
        case "show":
            manifest = store.manifest(args.run_id)
            sys.stdout.write(manifest.raw.decode("utf-8"))
            print(f"# {MANIFEST} sha256 {manifest.sha256}", file=sys.stderr)
            return 0
        case "verify":
            return _report(args.run_id, store.verify(args.run_id))
        case "export":
            data = store.export(args.run_id)
            target = args.output or Path(f"{args.run_id}.zip")
            target.write_bytes(data)
            print(f"{target}: run {args.run_id}, {len(data):,} bytes")
            return 0
        case "prune":
            days = args.retention_days
            if days is None:
                days = settings.evidence.retention_days
            elif days < 1:
                raise UsageError("--retention-days must be at least 1")
            return _prune(store, days)
        case "upload":
            run_dir = Path(settings.reports.output_dir) / check_run_id(args.run_id)
            if not (run_dir / MANIFEST).is_file():
                raise UsageError(f"no complete run {args.run_id!r} in {run_dir.parent}")
            print(f"{args.run_id}: stored at {publish_run(settings, run_dir)}")
            return 0
    raise UsageError(f"unknown evidence action {args.evidence_command!r}")


def _looks_like_path(text: str) -> bool:
    return text.endswith(".zip") or "/" in text or os.sep in text


def _verify_path(path: Path) -> int:
    if path.is_file():
        return _report(path.name, verify_zip(path))
    if (path / MANIFEST).is_file() or path.is_dir():
        return _report(path.name, verify(path))
    raise UsageError(f"{path}: no such zip or folder")


def _report(name: str, result: Verification) -> int:
    for line in result.lines():
        print(line)
    print(f"{name}: {'verified' if result.ok else 'FAILED verification'}")
    return 0 if result.ok else 1


def _list(store: EvidenceStore) -> int:
    runs = store.runs()
    for run in runs:
        when = run.when.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
        if run.status is RunStatus.COMPLETE and run.manifest is not None:
            counts = run.counts
            detail = (
                f"findings={counts.get('findings', '?')} owners={counts.get('owners', '?')} "
                f"files={len(run.manifest.files) + 1} exit={run.exit_code}"
            )
        elif run.status is RunStatus.DAMAGED:
            detail = f"manifest unreadable: {run.problem}"
        else:
            detail = "no manifest (crashed, or still running)"
        print(f"{run.run_id}  {run.status.value:<10}  {when}  {detail}")
    if not runs:
        print(f"no runs in {store.location}", file=sys.stderr)
    return 0


def _prune(store: EvidenceStore, days: int | None) -> int:
    report = store.prune(datetime.now(UTC), days)
    for run_id, why in report.removed:
        print(f"removed {run_id}: {why}")
    for run_id, why in report.kept:
        print(f"kept {run_id}: {why}")
    if days is None:
        print(
            "evidence.retention_days is not set: complete runs are kept (only incomplete runs "
            "older than a day were due)",
            file=sys.stderr,
        )
    print(f"{len(report.removed)} removed, {len(report.kept)} kept in {store.location}")
    return 0
