"""How many CPU threads a training run uses: as many as the cores other processes leave free.

torch's default, one OpenMP thread per core, is the fastest choice on an idle machine and the
slowest on a busy one: its threads spin at every barrier waiting for the one that lost its
core, so two processes that each take every core run several times slower than one thread
each (docs/benchmarks.md, "Threads on a shared machine"). :class:`ThreadPolicy` measures, on
Linux, how much of the process's cores the *other* processes use,

    others = (busy time of the process's cores - the process's own CPU time) / elapsed time,

and sets ``torch.set_num_threads(threads_for(cores, others))``: once before training, again
``first_interval_s`` later (two runs started together both find the machine idle), then every
``interval_s`` of wall time while it runs, so a run that started alone steps down when
another one starts beside it, and back up when that one ends.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterable

#: /proc/stat's cpu columns that count as busy (user nice system idle iowait irq softirq steal).
_BUSY_COLUMNS = (0, 1, 2, 5, 6, 7)


def threads_for(cores: int, others_busy: float) -> int:
    """Threads for a process on ``cores`` cores when other processes keep ``others_busy`` of
    them busy (in cores): the cores left, rounded half up, at least 1 and at most ``cores``:
    ``max(1, min(cores, floor(cores - others_busy + 0.5)))``."""
    if cores < 1:
        raise ValueError(f"cores must be at least 1, got {cores}")
    return max(1, min(cores, math.floor(cores - max(0.0, others_busy) + 0.5)))


def busy_seconds(cpus: Iterable[int], stat_text: str) -> float:
    """Busy seconds of ``cpus`` since boot, summed, from the text of ``/proc/stat``
    (per-CPU ``cpuN`` lines, in clock ticks).

    Raises:
        ValueError: a listed CPU has no line.
    """
    ticks_per_s = os.sysconf("SC_CLK_TCK")
    per_cpu = {}
    for line in stat_text.splitlines():
        name, *columns = line.split()
        if name.startswith("cpu") and name[3:].isdigit():
            per_cpu[int(name[3:])] = sum(int(columns[i]) for i in _BUSY_COLUMNS
                                         if i < len(columns))
    try:
        return sum(per_cpu[cpu] for cpu in cpus) / ticks_per_s
    except KeyError as exc:
        raise ValueError(f"/proc/stat has no line for cpu{exc.args[0]}") from None


def _read_proc_stat() -> str:
    with open("/proc/stat", encoding="ascii") as stat:
        return stat.read()


class ThreadPolicy:
    """Chooses torch's CPU thread count from the cores that other processes leave free.

    Args:
        cpus: the CPUs the process may run on (default: its affinity, ``os.sched_getaffinity``).
        interval_s: wall seconds between re-choices in :meth:`update`.
        first_interval_s: wall seconds from :meth:`start` to the first re-choice.
        read_stat: returns the text of ``/proc/stat`` (replaced in tests).
        own_seconds: the process's CPU seconds, all threads (``time.process_time``).
        clock: wall seconds (``time.monotonic``).
        set_threads: applies a count (``torch.set_num_threads``).
    """

    def __init__(self, cpus: Iterable[int] | None = None, interval_s: float = 20.0,
                 first_interval_s: float = 5.0,
                 read_stat: Callable[[], str] = _read_proc_stat,
                 own_seconds: Callable[[], float] = time.process_time,
                 clock: Callable[[], float] = time.monotonic,
                 set_threads: Callable[[int], None] | None = None) -> None:
        self.cpus = sorted(os.sched_getaffinity(0) if cpus is None else cpus)
        self.interval_s = interval_s
        self._wait_s = min(first_interval_s, interval_s)
        self._read_stat, self._own_seconds, self._clock = read_stat, own_seconds, clock
        if set_threads is None:
            import torch

            set_threads = torch.set_num_threads
        self._set_threads = set_threads
        self.threads: int | None = None
        self.others_busy: float | None = None
        self._last: tuple[float, float, float] | None = None

    @classmethod
    def available(cls) -> bool:
        """Whether this system lets the policy measure (Linux: ``/proc/stat`` and affinity)."""
        return hasattr(os, "sched_getaffinity") and os.path.exists("/proc/stat")

    def _sample(self) -> tuple[float, float, float]:
        return (self._clock(), busy_seconds(self.cpus, self._read_stat()), self._own_seconds())

    def start(self, probe_s: float = 0.5, sleep: Callable[[float], None] = time.sleep) -> int:
        """Measures the other processes over ``probe_s`` seconds and sets the thread count."""
        self._last = self._sample()
        sleep(probe_s)
        self._choose(self._sample())
        assert self.threads is not None
        return self.threads

    def update(self) -> int | None:
        """Re-chooses when ``first_interval_s`` (after :meth:`start`), then ``interval_s``,
        has passed since the last choice; returns the new count when it changed, else None.
        Cheap to call every step."""
        if self._last is None:
            raise RuntimeError("ThreadPolicy.update before start")
        if self._clock() - self._last[0] < self._wait_s:
            return None
        self._wait_s = self.interval_s
        before = self.threads
        self._choose(self._sample())
        return self.threads if self.threads != before else None

    def _choose(self, now: tuple[float, float, float]) -> None:
        assert self._last is not None
        elapsed = now[0] - self._last[0]
        if elapsed > 0:
            others = ((now[1] - self._last[1]) - (now[2] - self._last[2])) / elapsed
            self.others_busy = max(0.0, others)
            threads = threads_for(len(self.cpus), self.others_busy)
            if threads != self.threads:
                self._set_threads(threads)
                self.threads = threads
        self._last = now
