"""Peak memory of a process tree, sampled from /proc (Linux), for the benchmarks.

A run is a main process and its render workers (and multiprocessing's resource tracker): the
peak that matters is what they hold together, which no single `ru_maxrss` says
(`RUSAGE_CHILDREN` gives the largest reaped descendant, not the sum). `TreeSampler` reads
`/proc/<pid>/status` of the root and of every descendant (found through
`/proc/<pid>/task/<tid>/children`, not by walking all of /proc, which cost seconds of CPU at ten
samples a second in a CPU-bound run) and keeps:

- `peak_total`: the largest sum of VmRSS over the tree seen at one sample (the concurrent peak,
  to within the sampling interval);
- `hwm`: each process's own peak (VmHWM, kept by the kernel, so exact as of the last sample),
  by pid, with its command line: `main` is the root's, `workers` the multiprocessing workers'
  (render), `helpers` everything else (multiprocessing's resource tracker; the `ldconfig`, `gcc`
  and `ld` that `ctypes.util.find_library` starts while WeasyPrint loads its libraries). Their
  sum bounds the tree's peak from above (the processes need not peak at the same moment).

psutil is not a dependency; /proc is read directly.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

MB = 1024 * 1024


def _status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of a process in bytes; empty once it is gone."""
    values: dict[str, int] = {}
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return values
    for line in text.splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            name, amount = line.split(":", 1)
            try:
                values[name] = int(amount.split()[0]) * 1024
            except (ValueError, IndexError):
                continue
    return values


def descendants(pid: int) -> list[int]:
    """Every live descendant of `pid`, children of all its threads included."""
    found: list[int] = []
    pending = [pid]
    while pending:
        parent = pending.pop()
        try:
            tids = os.listdir(f"/proc/{parent}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                text = Path(f"/proc/{parent}/task/{tid}/children").read_text()
            except OSError:
                continue
            for child in text.split():
                found.append(int(child))
                pending.append(int(child))
    return found


@dataclass
class TreeSampler:
    """Samples the tree rooted at `root` (default: this process) every `interval` seconds."""

    root: int = field(default_factory=os.getpid)
    interval: float = 0.1
    peak_total: int = 0
    hwm: dict[int, int] = field(default_factory=dict)
    commands: dict[int, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> TreeSampler:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def sample(self) -> None:
        total = 0
        for pid in (self.root, *descendants(self.root)):
            status = _status(pid)
            total += status.get("VmRSS", 0)
            if "VmHWM" in status:
                self.hwm[pid] = max(self.hwm.get(pid, 0), status["VmHWM"])
                if pid not in self.commands:
                    self.commands[pid] = _command(pid)
        self.peak_total = max(self.peak_total, total)

    @property
    def main(self) -> int:
        """The root's own peak (VmHWM)."""
        return self.hwm.get(self.root, 0)

    @property
    def workers(self) -> list[int]:
        """Each multiprocessing worker's own peak, largest first."""
        return sorted(
            (peak for pid, peak in self.hwm.items() if pid != self.root and _is_worker(self, pid)),
            reverse=True,
        )

    @property
    def helpers(self) -> list[int]:
        """Every other descendant's own peak, largest first."""
        return sorted(
            (
                peak
                for pid, peak in self.hwm.items()
                if pid != self.root and not _is_worker(self, pid)
            ),
            reverse=True,
        )

    def summary(self) -> str:
        """The tree's peak, then main, workers and helpers separately."""
        workers, helpers = self.workers, self.helpers
        listed = " + ".join(f"{peak / MB:,.0f}" for peak in workers) or "none"
        return (
            f"peak of the process tree {self.peak_total / MB:,.0f} MB (sum of RSS, sampled every "
            f"{self.interval:g} s); own peaks (VmHWM): main {self.main / MB:,.0f} MB, "
            f"{len(workers)} worker(s) {listed} MB, {len(helpers)} helper process(es) "
            f"{max(helpers, default=0) / MB:,.0f} MB at most; sum of main and workers "
            f"{(self.main + sum(workers)) / MB:,.0f} MB (an upper bound)"
        )


def _command(pid: int) -> str:
    try:
        return (
            Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
    except OSError:
        return ""


def _is_worker(sampler: TreeSampler, pid: int) -> bool:
    command = sampler.commands.get(pid, "")
    return "multiprocessing.spawn" in command or "--multiprocessing-fork" in command
