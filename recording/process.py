"""The SFU's handle on a recorder process.

`feed()` runs on the SFU's event loop for every forwarded packet, so it only appends to a
bounded deque (dropping and counting when full). A sender thread pickles what has queued
every `flush_interval_s` and writes it to the child's pipe; when the child falls behind,
that thread blocks in the write (outside the GIL) and the deque fills up instead. The
child, a fresh interpreter running `recording.worker` (fork+exec: the parent runs
threads, nothing of it is cloned), does all the decoding, composing and encoding.

Only the standard library is imported here; numpy/PyAV/Pillow load in the child.
"""

from __future__ import annotations

import asyncio
import logging
import os
import pickle
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from recording.options import RecordingOptions
from recording.protocol import (
    AddParticipant,
    AddSource,
    CodecSpec,
    Command,
    Item,
    Kind,
    RemoveParticipant,
    RemoveSource,
    SetLabel,
    Stop,
)

logger = logging.getLogger(__name__)

# Items per pickled batch (a batch is one pipe message).
MAX_BATCH = 256


class RecorderError(RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class RecordingResult:
    path: Path
    duration_s: float
    size_bytes: int
    thumbnail: Path | None
    dropped_packets: int
    # False when the recorder died or had to be killed: the file holds what was written
    # up to its last complete fragment, and duration_s is read from it.
    complete: bool = True
    video_frames: int = 0
    skipped_frames: int = 0
    cpu_s: float = 0.0
    error: str | None = None


class RecorderProcess:
    """One composite recording, made by a child process.

    Start it, describe the people and their sources, feed it every RTP packet of those
    sources, and stop it. Describe and feed from one thread (the SFU's event loop):
    `feed()` never blocks; `stop()` blocks (`stop_async()` runs it in a worker thread).
    Always stop (or kill) a started recorder: its threads hold it alive until then.

    `on_keyframe_request(source_id)` is called when a video source needs a keyframe (it
    joined mid-stream, or lost packets); when `start()` ran inside an event loop, the call
    is made on that loop.
    """

    def __init__(
        self,
        output: Path,
        options: RecordingOptions | None = None,
        *,
        on_keyframe_request: Callable[[str], Any] | None = None,
    ) -> None:
        self.output = Path(output)
        self.options = options if options is not None else RecordingOptions()
        self.on_keyframe_request = on_keyframe_request
        self.dropped_packets = 0  # refused by feed(): queue full, or the recorder died
        self._dropped_unsent = 0  # queued, but the child was gone
        self.fed_packets = 0
        self._queue: deque[Item] = deque()
        self._max_pending = self.options.max_pending_packets
        self._accepting = False
        self._started = False
        self._stopped = False
        self._process: subprocess.Popen[bytes] | None = None
        self._data_conn: Connection | None = None
        self._event_conn: Connection | None = None
        self._sender: threading.Thread | None = None
        self._reader: threading.Thread | None = None
        self._wake = threading.Event()
        self._sender_done = False
        self._child_gone = False
        self._result: dict[str, Any] | None = None
        self._error: str | None = None
        self._finished = threading.Event()
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Future[Any]] = set()
        self.t0: float | None = None

    # -- lifecycle ------------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def dropped(self) -> int:
        """Packets that never reached the recorder."""
        return self.dropped_packets + self._dropped_unsent

    @property
    def running(self) -> bool:
        return self._accepting and not self._child_gone

    def start(self) -> None:
        """Starts the child and the parent's two threads; recording time starts now.

        Takes a few milliseconds (the child imports its libraries on its own time; what is
        fed meanwhile waits in the queue and is placed at the right time).
        """
        if self._started:
            raise RecorderError("already started")
        self._started = True
        try:
            self._loop = asyncio.get_running_loop()
        except RuntimeError:
            self._loop = None
        self.output.parent.mkdir(parents=True, exist_ok=True)
        data_read, data_write = os.pipe()
        event_read, event_write = os.pipe()
        # The package's own directory goes first on the child's path, so it imports this
        # very code whatever the working directory.
        env = dict(os.environ)
        package_root = str(Path(__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
        self.t0 = time.monotonic()
        try:
            # A fresh interpreter (fork+exec, nothing of this threaded process is cloned),
            # and unlike multiprocessing's "spawn" it does not re-import our __main__.
            process = subprocess.Popen(
                [sys.executable, "-m", "recording.worker", str(data_read), str(event_write)],
                pass_fds=(data_read, event_write),
                stdin=subprocess.DEVNULL,
                env=env,
            )
        finally:
            os.close(data_read)
            os.close(event_write)
        self._process = process
        self._data_conn = Connection(data_write, readable=False)
        self._event_conn = Connection(event_read, writable=False)
        # The setup message is small: it fits the empty pipe, the write does not block.
        setup = (str(self.output), self.options, self.t0)
        self._data_conn.send_bytes(pickle.dumps(setup, protocol=pickle.HIGHEST_PROTOCOL))
        self._accepting = True
        self._sender = threading.Thread(target=self._send_loop, name="recorder-send", daemon=True)
        self._reader = threading.Thread(target=self._read_loop, name="recorder-read", daemon=True)
        self._sender.start()
        self._reader.start()

    def wait_ready(self, timeout: float = 30.0) -> bool:
        """Blocks until the child has set up its encoder (for tests and benchmarks)."""
        return self._ready.wait(timeout)

    def stop(self, timeout: float = 30.0) -> RecordingResult:
        """Ends the recording now and waits for the file to be finished (blocking: from a
        coroutine use `await stop_async()`)."""
        if not self._started:
            raise RecorderError("not started")
        if not self._stopped:
            self._stopped = True
            self._enqueue(Stop())
            self._accepting = False
            self._wake.set()
        deadline = time.monotonic() + timeout
        self._finished.wait(timeout)
        process = self._process
        assert process is not None
        try:
            process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            logger.warning("recorder %s did not finish in %.1f s: killed", self.output, timeout)
            process.kill()
            process.wait()
        self._shutdown_threads()
        return self._make_result()

    async def stop_async(self, timeout: float = 30.0) -> RecordingResult:
        return await asyncio.to_thread(self.stop, timeout)

    def kill(self) -> None:
        """Kills the child at once (SIGKILL), as a crash would. For tests."""
        self._accepting = False
        self._stopped = True
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        self._shutdown_threads()

    def _shutdown_threads(self) -> None:
        self._sender_done = True
        self._wake.set()
        current = threading.current_thread()
        for thread in (self._sender, self._reader):
            if thread is not None and thread is not current:
                thread.join(5)
        for conn in (self._data_conn, self._event_conn):
            if conn is not None:
                conn.close()

    def _make_result(self) -> RecordingResult:
        size = self.output.stat().st_size if self.output.exists() else 0
        result = self._result
        if result is not None:
            thumbnail = result.get("thumbnail")
            return RecordingResult(
                path=self.output,
                duration_s=float(result["duration_s"]),
                size_bytes=size,
                thumbnail=Path(thumbnail) if thumbnail else None,
                dropped_packets=self.dropped + int(result["dropped_packets"]),
                complete=True,
                video_frames=int(result["video_frames"]),
                skipped_frames=int(result["skipped_frames"]),
                cpu_s=float(result["cpu_s"]),
            )
        from recording.writer import probe_duration  # PyAV, only on this path

        return RecordingResult(
            path=self.output,
            duration_s=probe_duration(self.output) if size else 0.0,
            size_bytes=size,
            thumbnail=None,
            dropped_packets=self.dropped,
            complete=False,
            error=self._error or "recorder exited without a result",
        )

    # -- what the SFU calls -------------------------------------------------------------

    def add_participant(self, participant_id: str, label: str) -> None:
        """A person's tile, shown with a placeholder until one of their cameras sends."""
        self._command(AddParticipant(participant_id, label))

    def remove_participant(self, participant_id: str) -> None:
        self._command(RemoveParticipant(participant_id))

    def add_source(
        self,
        source_id: str,
        kind: Kind,
        codec: CodecSpec | Mapping[str, Any] | Any,
        label: str,
        screen: bool = False,
        participant: str | None = None,
    ) -> None:
        """A track to record. `codec`: a CodecSpec, a mapping (mime, clock_rate, channels,
        payload_type, parameters) or aiortc's RTCRtpCodecParameters. A video source shows in
        its participant's tile (`participant`, default: a tile of its own labelled `label`),
        or large when `screen`; audio goes into the mix."""
        if kind not in ("audio", "video"):
            raise ValueError(f"kind: audio or video, not {kind!r}")
        spec = AddSource(source_id, kind, CodecSpec.from_any(codec), label, screen, participant)
        self._command(spec)

    def remove_source(self, source_id: str) -> None:
        self._command(RemoveSource(source_id))

    def set_label(self, target_id: str, label: str) -> None:
        """Renames a participant (or a source's own tile)."""
        self._command(SetLabel(target_id, label))

    def feed(self, source_id: str, packet: bytes) -> None:
        """One RTP packet (12-byte header, payload) of a source. Never blocks."""
        if not self._accepting:
            if self._child_gone and not self._stopped:
                self.dropped_packets += 1  # the recorder died: its packets are lost
            return
        queue = self._queue
        if len(queue) >= self._max_pending:
            self.dropped_packets += 1
            return
        if type(packet) is not bytes:
            packet = bytes(packet)
        queue.append((source_id, time.monotonic(), packet))
        self.fed_packets += 1

    def _command(self, command: Command) -> None:
        if not self._started:
            raise RecorderError("start() the recorder first")
        if not self._accepting:
            return  # stopped, or the recorder died (logged): nothing to describe any more
        self._enqueue(command)
        self._wake.set()

    def _enqueue(self, command: Command) -> None:
        # Commands are never dropped: the queue bound applies to packets only.
        self._queue.append((None, time.monotonic(), command))

    # -- threads --------------------------------------------------------------------------

    def _send_loop(self) -> None:
        conn = self._data_conn
        assert conn is not None
        queue = self._queue
        interval = self.options.flush_interval_s
        while True:
            self._wake.wait(interval)
            self._wake.clear()
            done = self._sender_done
            while queue:
                batch: list[Item] = []
                while queue and len(batch) < MAX_BATCH:
                    batch.append(queue.popleft())
                try:
                    conn.send_bytes(pickle.dumps(batch, protocol=pickle.HIGHEST_PROTOCOL))
                except (OSError, ValueError):
                    self._on_child_gone()
                    lost = batch + list(queue)
                    queue.clear()
                    self._dropped_unsent += sum(1 for item in lost if item[0] is not None)
                    return
            if done:
                return

    def _on_child_gone(self) -> None:
        self._child_gone = True
        self._accepting = False

    def _read_loop(self) -> None:
        conn = self._event_conn
        assert conn is not None
        while True:
            try:
                event = conn.recv()
            except (EOFError, OSError):
                break
            kind = event[0]
            if kind == "ready":
                self._ready.set()
            elif kind == "keyframe":
                self._request_keyframe(event[1])
            elif kind == "result":
                self._result = event[1]
                self._finished.set()
            elif kind == "warning":
                logger.warning("recorder %s: %s", self.output, event[1])
            elif kind == "error":
                self._error = event[1]
                logger.error("recorder %s failed: %s", self.output, event[1])
        self._on_child_gone()
        self._finished.set()

    def _request_keyframe(self, source_id: str) -> None:
        callback = self.on_keyframe_request
        if callback is None:
            return
        loop = self._loop
        try:
            if loop is not None and not loop.is_closed():
                loop.call_soon_threadsafe(self._call_safely, callback, source_id)
            else:
                self._call_safely(callback, source_id)
        except RuntimeError:
            pass  # the loop closed meanwhile

    def _call_safely(self, callback: Callable[[str], Any], source_id: str) -> None:
        try:
            result = callback(source_id)
            if asyncio.iscoroutine(result):
                task = asyncio.ensure_future(result)
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        except Exception:
            logger.exception("keyframe request callback failed")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a live process (Linux /proc), for measurements."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks
