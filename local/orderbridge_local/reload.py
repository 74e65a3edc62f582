"""Configuration reload while `orderbridge-local up` runs: the store setup file is watched (its
modification time and size, polled), and SIGHUP or `orderbridge-local reload` asks for one now.

Each reload is the target's `reload()` (`LocalSystem` or `ProcessRun`): the file is checked first
and refused with its problems (the running configuration stays), or applied without a restart.
The last result is written to `RESULT_FILE` so `orderbridge-local reload` can report it (its
`summary` carries the warnings too, e.g. a source whose shop the edit changes).
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from orderbridge_local.errors import NotRunningError
from orderbridge_local.system import STATE_FILE, WORK_DIR, ReloadResult

RESULT_FILE = WORK_DIR / "reload.json"


class Reloadable(Protocol):
    config_path: Path

    def reload(self) -> ReloadResult: ...


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


class ConfigWatcher:
    """Reloads `target` when its setup file changes (polled every `interval` seconds) or when
    `request()` is called (SIGHUP's handler calls it). `report(result)` hears every result;
    `generation` counts them."""

    def __init__(
        self,
        target: Reloadable,
        report: Callable[[ReloadResult], None],
        *,
        interval: float = 0.5,
        result_file: Path | None = RESULT_FILE,
    ) -> None:
        self.target = target
        self.report = report
        self.interval = interval
        self.result_file = result_file
        self.generation = 0
        self.last: ReloadResult | None = None
        self._stamp = _stamp(target.config_path)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._done = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="config-watcher", daemon=True)

    def start(self) -> ConfigWatcher:
        if self.result_file is not None:  # a result of an earlier run is not this run's
            self.result_file.unlink(missing_ok=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=10)

    def request(self) -> None:
        """Reload now, changed or not (safe from a signal handler)."""
        self._wake.set()

    def wait_for(self, generation: int, timeout: float) -> ReloadResult | None:
        """The result once `generation` reloads have happened (None if not within `timeout`)."""
        with self._done:
            self._done.wait_for(lambda: self.generation >= generation, timeout=timeout)
            return self.last if self.generation >= generation else None

    def reload_now(self) -> ReloadResult:
        result = self.target.reload()
        with self._done:
            self.generation += 1
            self.last = result
            self._done.notify_all()
        if self.result_file is not None:
            self.result_file.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.result_file.with_name(self.result_file.name + ".tmp")
            tmp.write_text(
                json.dumps(
                    {
                        "generation": self.generation,
                        "ok": result.ok,
                        "summary": result.summary(),
                        "problems": result.problems,
                        "warnings": result.warnings,
                    }
                )
            )
            tmp.replace(self.result_file)
        self.report(result)
        return result

    def _run(self) -> None:
        while not self._stop.is_set():
            asked = self._wake.wait(self.interval)
            self._wake.clear()
            if self._stop.is_set():
                return
            stamp = _stamp(self.target.config_path)
            if not asked and (stamp == self._stamp or stamp is None):
                continue
            self._stamp = stamp
            try:
                self.reload_now()
            except Exception as exc:  # an AWS or sandbox call failed: say so, keep watching
                self.report(ReloadResult(self.target.config_path, problems=[f"reload failed: {exc!r}"]))


def install_sighup(watcher: ConfigWatcher) -> None:
    """SIGHUP asks `watcher` for a reload (where the platform has SIGHUP)."""
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, lambda *_: watcher.request())


def request_reload(timeout: float = 30.0, state_file: Path = STATE_FILE) -> dict[str, Any]:
    """Ask the running `orderbridge-local up` (its pid from the state file) to reload, and return
    its result (`ok`, `summary`, `problems`). NotRunningError if none runs; TimeoutError if it
    does not answer within `timeout`."""
    try:
        state = json.loads(state_file.read_text())
        pid = int(state["pid"])
    except (OSError, ValueError, KeyError) as exc:
        raise NotRunningError(f"no running `orderbridge-local up` found ({state_file.name}: {exc})") from None
    before = _read_result(Path(state.get("reload_result") or RESULT_FILE))
    try:
        os.kill(pid, signal.SIGHUP)
    except ProcessLookupError:
        raise NotRunningError(f"`orderbridge-local up` (pid {pid}) is not running") from None
    result_file = Path(state.get("reload_result") or RESULT_FILE)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = _read_result(result_file)
        if now.get("generation", 0) > before.get("generation", 0):
            return now
        time.sleep(0.1)
    raise TimeoutError(f"`orderbridge-local up` (pid {pid}) did not report a reload within {timeout:g} s")


def _read_result(path: Path) -> dict[str, Any]:
    try:
        loaded = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}
