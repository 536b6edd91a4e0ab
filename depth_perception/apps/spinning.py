"""Spinning an rclpy executor in a background thread that is joined before the process exits.

The tools (demo, bench, start-up bench) and the integration tests subscribe from their own
process while the nodes run in others. A daemon thread left inside ``executor.spin()`` is
still in rclpy's C++ wait when the interpreter finalizes; when that call returns and asks for
the GIL, Python ends the thread with a forced unwind through a C++ frame that does not allow
it, and the whole process aborts with "terminate called without an active exception"
(SIGABRT, exit code -6 after the work was done and printed). Seen in CI for
``bench --startup`` and reproduced here about one run in four; the core dump showed the
spinner thread in ``take_gil`` -> ``PyThread_exit_thread`` under ``_rclpy_pybind11``.
:class:`BackgroundSpinner` spins in short ``spin_once`` steps and ``stop()`` joins the thread,
so no thread is inside rclpy when the node, the context or the interpreter go away.
"""

from __future__ import annotations

import threading
from typing import Any

# Short enough that stop() returns promptly, long enough that an idle spinner costs nothing.
SPIN_STEP_S = 0.05


class BackgroundSpinner:
    """Spins ``executor`` in a thread until :meth:`stop`, which joins the thread.

    Also a context manager. A subscription destroyed from another thread while it sits in
    the executor's wait set makes rclpy raise ``InvalidHandle`` in the spinning thread;
    the spinner goes on (``executor.spin`` would die of it and nothing more would arrive).
    Any other error ends the spinning, is printed and is kept in :attr:`error`.
    """

    def __init__(self, executor: Any, name: str = "ros-spinner") -> None:
        self.executor = executor
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    @property
    def running(self) -> bool:
        """Whether the spinning thread is still alive."""
        return self._thread.is_alive()

    def _run(self) -> None:
        from rclpy._rclpy_pybind11 import InvalidHandle

        while not self._stop.is_set():
            try:
                self.executor.spin_once(timeout_sec=SPIN_STEP_S)
            except InvalidHandle:
                continue
            except Exception as error:
                if self._stop.is_set():
                    return  # the context went down while stopping: nothing more to receive
                self.error = error
                raise  # threading's excepthook prints it, as it would for executor.spin()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop spinning, join the thread, then shut the executor down.

        Call it before destroying the executor's nodes or shutting rclpy down. Idempotent.
        Raises RuntimeError if the thread is still inside a callback after ``timeout_s``.
        """
        self._stop.set()
        self._thread.join(timeout=timeout_s)
        if self._thread.is_alive():
            raise RuntimeError(
                f"the ROS spinner thread did not stop within {timeout_s:.0f} s "
                "(a callback is still running)"
            )
        self.executor.shutdown()

    def __enter__(self) -> BackgroundSpinner:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
