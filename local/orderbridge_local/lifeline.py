"""Children of the local run die with their parent, so no moto, sandbox or functions process outlives it.

`die_with_parent(pid)` in a child: on Linux the kernel sends it SIGKILL when its parent dies
(`PR_SET_PDEATHSIG`); elsewhere a watchdog thread exits when the parent is gone.

`python -m orderbridge_local.lifeline --parent PID -- module [args...]` runs `python -m module args`
under that rule (moto's server, the sandboxes).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import runpy
import signal
import sys
import threading
import time

PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: int) -> None:
    """Be killed when `parent_pid` (this process's parent) exits; exit now if it already has."""
    armed = False
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
            armed = libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
    if os.getppid() != parent_pid:  # the parent died before the rule was in place
        os._exit(1)
    if not armed:

        def watch() -> None:
            while os.getppid() == parent_pid:
                time.sleep(0.5)
            os._exit(1)

        threading.Thread(target=watch, name="lifeline", daemon=True).start()


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) < 4 or args[0] != "--parent" or args[2] != "--":
        raise SystemExit("usage: python -m orderbridge_local.lifeline --parent PID -- module [args...]")
    die_with_parent(int(args[1]))
    module, rest = args[3], args[4:]
    sys.argv = [module, *rest]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
