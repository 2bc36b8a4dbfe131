"""Child processes that never outlive the process that started them."""

import os
import signal
import sys
import threading
import time


def die_with_parent(parent_pid):  # pragma: no cover - runs in child processes
    """Make this process exit when the process ``parent_pid`` is gone.

    On Linux the kernel sends SIGKILL when the parent dies (``PR_SET_PDEATHSIG``);
    everywhere, a daemon thread compares ``os.getppid()`` with ``parent_pid`` four
    times a second (an orphan is re-parented) and calls ``os._exit``.
    """
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent_pid:  # died before prctl took effect
        os._exit(1)

    def watch():
        while True:
            time.sleep(0.25)
            if os.getppid() != parent_pid:
                os._exit(1)

    threading.Thread(target=watch, name="rasterquant-parent-watch", daemon=True).start()
