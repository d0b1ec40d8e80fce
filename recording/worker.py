"""The recorder process: reads batches from the SFU, runs the session on a frame clock.

Started as `python -m recording.worker DATA_FD EVENT_FD` by `recording.process`; the first
message on DATA_FD is (output path, RecordingOptions, t0).

Event time: items carry the parent's `time.monotonic()`. Frame `i` (at `T = t0 + i/fps`)
is composed once every item up to `T` has been handled: either a later item has already
arrived, or the wall clock passed `T + input_lag_s`. So frames follow real time while
the recorder keeps up, and a backlog (the process starting, a busy moment) is worked off
in order with the same timing. Audio up to `T - audio_delay_s` is final by then.
"""

from __future__ import annotations

import logging
import os
import pickle
import signal
import time
import traceback
from collections import deque
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recording.options import RecordingOptions
from recording.protocol import Event, Item, Stop

if TYPE_CHECKING:
    from recording.session import RecordingSession

logger = logging.getLogger(__name__)

# Items held in the child before it stops reading the pipe (the parent then queues, and
# drops when its own queue is full).
MAX_INBOX_ITEMS = 5000


class Inbox:
    """Items from the parent in feed order; `end` is set when Stop arrives (or the parent
    goes away)."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self.items: deque[Item] = deque()
        self.end: float | None = None

    @property
    def full(self) -> bool:
        return len(self.items) >= MAX_INBOX_ITEMS

    def covers(self, t: float) -> bool:
        """Whether every item up to `t` is here (or no more fit: handle some first)."""
        return self.end is not None or self.full or (bool(self.items) and self.items[-1][1] > t)

    def receive(self, timeout: float) -> None:
        """Waits up to `timeout` for a batch, then takes whatever else is ready."""
        if self.end is not None or self.full:
            return
        try:
            ready = self._conn.poll(max(0.0, timeout))
            while ready and not self.full:
                self._take(pickle.loads(self._conn.recv_bytes()))
                if self.end is not None:
                    return
                ready = self._conn.poll(0)
        except (EOFError, OSError):
            # The parent is gone: finish the file with what we have.
            self.end = time.monotonic()

    def _take(self, batch: list[Item]) -> None:
        for item in batch:
            if item[0] is None and isinstance(item[2], Stop):
                self.end = item[1]
                return
            self.items.append(item)


def run(
    data_conn: Connection,
    event_conn: Connection,
    output: str,
    options: RecordingOptions,
    t0: float,
) -> None:
    """Entry point of the recorder process."""
    logging.basicConfig(level=logging.WARNING)
    if options.niceness:
        # Before any thread starts (the encoder's): Linux niceness is per thread, inherited.
        try:
            os.nice(options.niceness)
        except OSError:
            pass
    # Ctrl-C in a terminal reaches the whole process group: the server decides when the
    # recording ends. SIGTERM ends it at once, with a complete file.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    terminated = False

    def on_term(signum: int, frame: Any) -> None:
        nonlocal terminated
        terminated = True

    signal.signal(signal.SIGTERM, on_term)

    def notify(event: Event) -> None:
        try:
            event_conn.send(event)
        except (OSError, ValueError):
            pass

    try:
        from recording.session import RecordingSession

        session = RecordingSession(Path(output), options, t0, notify)
    except Exception:
        notify(("error", traceback.format_exc()))
        return
    notify(("ready", os.getpid()))
    inbox = Inbox(data_conn)
    try:
        end = _frame_loop(session, inbox, options, t0, lambda: terminated)
        notify(("result", session.finish(end)))
    except Exception:
        notify(("error", traceback.format_exc()))
        try:
            session.writer.close()
        except Exception:
            pass


def _frame_loop(
    session: RecordingSession,
    inbox: Inbox,
    options: RecordingOptions,
    t0: float,
    terminated: Callable[[], bool],
) -> float:
    period = 1 / options.fps
    index = 0
    while True:
        if terminated() and inbox.end is None:
            inbox.end = time.monotonic()
        frame_t = t0 + index * period
        if inbox.end is not None and frame_t >= inbox.end:
            break
        deadline = frame_t + options.input_lag_s
        while not inbox.covers(frame_t):
            wait = deadline - time.monotonic()
            if wait <= 0:
                break
            inbox.receive(wait)
        inbox.receive(0)
        _handle_until(session, inbox, frame_t)
        last = inbox.end is not None and frame_t + period >= inbox.end
        if last or time.monotonic() - deadline <= options.max_behind_s:
            session.video_frame(index, frame_t)
        else:
            session.skip_frame()
        session.audio_until(frame_t - options.audio_delay_s)
        index += 1
    assert inbox.end is not None
    _handle_until(session, inbox, inbox.end)
    return inbox.end


def _handle_until(session: RecordingSession, inbox: Inbox, t: float) -> None:
    items = inbox.items
    while items and items[0][1] <= t:
        source_id, item_t, data = items.popleft()
        try:
            if source_id is None:
                session.command(data, item_t)
            else:
                session.packet(source_id, item_t, data)
        except Exception:
            # Packets come from remote peers: a malformed one must not end the recording.
            session.counters.bad_packets += 1
            if session.counters.bad_packets <= 10:
                logger.warning("recorder: item for %s failed", source_id, exc_info=True)


def main(argv: list[str]) -> int:
    data_fd, event_fd = int(argv[1]), int(argv[2])
    data_conn = Connection(data_fd, writable=False)
    event_conn = Connection(event_fd, readable=False)
    try:
        output, options, t0 = pickle.loads(data_conn.recv_bytes())
    except (EOFError, OSError):
        return 1
    run(data_conn, event_conn, output, options, t0)
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv))
