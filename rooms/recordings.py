"""Recording calls: the library of finished files, and the tap that feeds a recorder.

`recording/` makes a composite video out of RTP packets and knows nothing of lessons;
this module decides what goes into it (the main room's people and their tracks), where
the file goes and what is remembered about it (a RecordingRecord in the store, and the
same record as a JSON file next to the video, so that a node whose store is its own
memory still lists its recordings after a restart).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import shutil
import struct
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from recording.options import RecordingOptions
from recording.process import RecorderProcess, RecordingResult
from recording.protocol import Kind
from rooms.chat import system_message
from rooms.model import RecordingRecord, RecordingStatus
from rooms.store import Store
from rooms.vocabulary import Lesson
from sfu.producer import CachedPacket, Producer

logger = logging.getLogger(__name__)

# (lesson, record) once a recording can be watched (the journal's webhook listens).
ReadyObserver = Callable[[Lesson, RecordingRecord], None]

# RTP version 2, no padding/extension/CSRC; marker+payload type; seq; timestamp; SSRC.
_RTP_HEADER = struct.Struct("!BBHII")
# The recorder tells sources apart by id, not SSRC: one constant keeps the header valid.
_RECORDER_SSRC = 0x5552_4F4B


class RecordingUnavailable(Exception):
    """Recording cannot start on this node; `code`: recording_unavailable (switched off),
    recording_busy (as many recordings as allowed are running) or recording_no_space (the
    disk is nearly full)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def new_recording_id() -> str:
    return "rec_" + secrets.token_hex(8)


class RecordingLibrary:
    """Finished and running recordings of this node: files, sidecar records, the store."""

    def __init__(self, directory: Path, store: Store, node_id: str = "") -> None:
        self.directory = Path(directory)
        self.store = store
        # Stamped on every record saved here: the node other nodes fetch the file from.
        self.node_id = node_id
        # Whether a node is alive (set by the server from its node records): at start-up
        # a sidecar of another live node (a shared directory) is that node's to list.
        self.node_alive: Callable[[str], Awaitable[bool]] | None = None

    def path(self, name: str) -> Path:
        """A file of the library by its stored name (never outside the directory)."""
        if not name or "/" in name or name.startswith("."):
            raise ValueError(f"not a library file name: {name!r}")
        return self.directory / name

    def holds(self, record: RecordingRecord) -> bool:
        """Its sidecar is in this directory (written here, or a directory nodes share)."""
        return self._sidecar(record.id).is_file()

    def _sidecar(self, recording_id: str) -> Path:
        return self.directory / f"{recording_id}.json"

    async def save(self, record: RecordingRecord) -> None:
        """The sidecar first (atomically replaced), then the store."""
        if self.node_id:
            record = replace(record, node=self.node_id)
        await asyncio.to_thread(self._write_sidecar, record)
        await self.store.put_recording(record)

    def _write_sidecar(self, record: RecordingRecord) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        target = self._sidecar(record.id)
        temporary = target.with_suffix(".json.tmp")
        temporary.write_text(json.dumps(record.to_json(), ensure_ascii=False), encoding="utf-8")
        os.replace(temporary, target)

    async def get(self, recording_id: str) -> RecordingRecord | None:
        return await self.store.get_recording(recording_id)

    async def delete(self, record: RecordingRecord) -> None:
        """Remove a recording: its sidecar first (so a restart cannot bring it back), then
        its record in the store, then the video and the still."""
        await asyncio.to_thread(self._unlink, self._sidecar(record.id))
        await self.store.delete_recording(record.id)
        for name in (record.file, record.thumbnail):
            if name:
                await asyncio.to_thread(self._unlink, self.path(name))
        logger.info("recording %s of %s deleted", record.id, record.call_id)

    @staticmethod
    def _unlink(path: Path) -> None:
        path.unlink(missing_ok=True)

    async def delete_older_than(self, cutoff: datetime) -> int:
        """Delete this node's finished recordings that ended before `cutoff` (retention)."""
        if not self.directory.is_dir():
            return 0
        deleted = 0
        for sidecar in sorted(self.directory.glob("rec_*.json")):
            try:
                record = RecordingRecord.from_json(json.loads(sidecar.read_text("utf-8")))
            except (OSError, ValueError, KeyError, TypeError):
                continue
            if record.status not in (RecordingStatus.READY, RecordingStatus.FAILED):
                continue  # running, or being finished
            if (record.ended_at or record.started_at) < cutoff:
                await self.delete(record)
                deleted += 1
        return deleted

    async def load(self) -> tuple[int, list[RecordingRecord]]:
        """At start-up: put every sidecar's record into the store.

        A sidecar of another live node (a shared directory) is left to that node. A
        record still "recording" or "processing" was cut short by the previous run of
        this node (a crash, a kill): its file holds what was written up to the last
        fragment, so it is listed as ready (not complete) with the duration read from it.
        Returns how many records were loaded, and those that were cut short.
        """
        recovered: list[RecordingRecord] = []
        if not self.directory.is_dir():
            return 0, recovered
        loaded = 0
        alive: dict[str, bool] = {}  # node id -> alive, asked once per node
        for sidecar in sorted(self.directory.glob("rec_*.json")):
            try:
                record = RecordingRecord.from_json(json.loads(sidecar.read_text("utf-8")))
            except (OSError, ValueError, KeyError, TypeError):
                logger.warning("skipping unreadable recording record %s", sidecar)
                continue
            if await self._another_live_node(record, alive):
                continue  # a shared directory: that node lists it (and finishes it)
            # Written here, maybe under an earlier id (a node's id may change at a restart).
            record = replace(record, node=self.node_id or record.node)
            if record.status in (RecordingStatus.RECORDING, RecordingStatus.PROCESSING):
                record = await asyncio.to_thread(self._interrupted, record)
                await asyncio.to_thread(self._write_sidecar, record)
                recovered.append(record)
            await self.store.put_recording(record)
            loaded += 1
        return loaded, recovered

    async def _another_live_node(self, record: RecordingRecord, alive: dict[str, bool]) -> bool:
        node = record.node
        if not node or node == self.node_id or self.node_alive is None:
            return False
        if node not in alive:
            alive[node] = await self.node_alive(node)
        return alive[node]

    def _interrupted(self, record: RecordingRecord) -> RecordingRecord:
        from recording.writer import probe_duration  # PyAV: only on this rare path

        path = self.directory / record.file if record.file else None
        size = path.stat().st_size if path is not None and path.exists() else 0
        duration = probe_duration(path) if path is not None and size else 0.0
        status = RecordingStatus.READY if duration > 0 else RecordingStatus.FAILED
        logger.warning("recording %s was cut short by a restart: %s", record.id, status)
        return replace(
            record,
            status=status,
            ended_at=record.ended_at or record.started_at,
            duration_s=duration,
            size_bytes=size,
            complete=False,
            error="the server stopped while recording",
        )


@dataclass
class RecordingService:
    """What a node needs to record calls, shared by all its calls."""

    library: RecordingLibrary
    options: RecordingOptions
    enabled: bool = True
    min_free_bytes: int = 1024 * 1024 * 1024
    # Recordings this node runs at once (each recorder takes up to most of a core).
    max_concurrent: int = 4
    # A running recording is stopped (and kept) when free space falls below this, and
    # how often that is checked.
    stop_free_bytes: int = 256 * 1024 * 1024
    disk_check_seconds: float = 5.0

    def __post_init__(self) -> None:
        self.on_ready: list[ReadyObserver] = []
        self.running = 0  # recorders started and not yet finished
        self.finished = 0  # finished with a watchable file (GET /metrics)
        self.failed = 0  # finished with nothing usable

    def check_can_start(self) -> None:
        if not self.enabled:
            raise RecordingUnavailable(
                "recording_unavailable", "recording is switched off on this server"
            )
        if self.running >= self.max_concurrent:
            raise RecordingUnavailable(
                "recording_busy",
                f"this server is recording {self.running} calls already, its maximum",
            )
        directory = self.library.directory
        directory.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(directory).free
        # Never start what the disk watch would stop at once.
        if free < max(self.min_free_bytes, self.stop_free_bytes):
            raise RecordingUnavailable(
                "recording_no_space",
                f"not enough disk space for a recording ({free // 2**20} MB free)",
            )

    def disk_nearly_full(self) -> bool:
        try:
            return shutil.disk_usage(self.library.directory).free < self.stop_free_bytes
        except OSError:
            return False

    async def load(self) -> int:
        """At start-up: list the library; a recording cut short by the last run that left a
        playable file is posted into its call's chat and announced, as a finished one is."""
        loaded, recovered = await self.library.load()
        store = self.library.store
        for record in recovered:
            lesson = await store.get_lesson(record.call_id)
            if record.status != RecordingStatus.READY or lesson is None:
                continue  # nothing to show, or a call the store has forgotten
            message = system_message("recording_ready", ready_chat_data(record), datetime.now(UTC))
            await store.append_chat(record.call_id, replace(message, room="*"))
            self.ready(lesson, record)
        return loaded

    def process(
        self, record: RecordingRecord, on_keyframe_request: Callable[[str], Any]
    ) -> RecorderProcess:
        """A recorder (not started) writing `record`'s file."""
        return RecorderProcess(
            self.library.path(record.file), self.options, on_keyframe_request=on_keyframe_request
        )

    def ready(self, lesson: Lesson, record: RecordingRecord) -> None:
        for observer in self.on_ready:
            try:
                observer(lesson, record)
            except Exception:
                logger.exception("recording-ready observer failed")


class RecordedPerson(Protocol):
    """Whom a recorder records: what it reads of a person in the main room.

    rooms.calls.Participant is one; this module does not import the calls (they import it).
    """

    @property
    def id(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def producers(self) -> Mapping[str, Producer]: ...


class CallRecorder:
    """One running recording of a call's main room.

    `sync()` tells it who is in the main room; it then taps those people's producers:
    each forwarded packet is handed to the recorder process as it is (a 12-byte header
    and the payload the SFU already holds) - nothing is decoded on the forwarding path.
    """

    def __init__(
        self, record: RecordingRecord, process: RecorderProcess, author_participant_id: str
    ) -> None:
        self.record = record
        self.process = process
        self.author_participant_id = author_participant_id
        self.started = time.monotonic()
        self._people: dict[str, str] = {}  # participant id -> label
        # producer id -> (producer, participant id, label, is a screen share)
        self._producers: dict[str, tuple[Producer, str, str, bool]] = {}
        self._announced: set[str] = set()  # sources the recorder has been told about
        self._stopped = False

    @property
    def elapsed_s(self) -> float:
        return time.monotonic() - self.started

    def state(self) -> dict[str, Any]:
        """What participants see: the indicator's title, author and running time."""
        record = self.record
        return {
            "id": record.id,
            "title": record.title,
            "author": {
                "id": self.author_participant_id,
                "user_id": record.author_user_id,
                "name": record.author_name,
            },
            "started_at": record.started_at.isoformat(),
            "elapsed_s": round(self.elapsed_s, 3),
        }

    def sync(self, people: Iterable[RecordedPerson]) -> None:
        """Record exactly these people (the main room) and their current producers."""
        if self._stopped:
            return
        process = self.process
        people = list(people)
        wanted_people = {p.id: p.name for p in people}
        wanted_producers: dict[str, tuple[Producer, str, str, bool]] = {}
        for participant in people:
            for source, producer in participant.producers.items():
                if not producer.closed:
                    wanted_producers[producer.id] = (
                        producer,
                        participant.id,
                        participant.name,
                        source == "screen",
                    )
        for producer_id in [i for i in self._producers if i not in wanted_producers]:
            producer = self._producers.pop(producer_id)[0]
            producer.remove_tap(self._tap)
            if producer_id in self._announced:
                self._announced.discard(producer_id)
                process.remove_source(producer_id)
        for participant_id in [i for i in self._people if i not in wanted_people]:
            del self._people[participant_id]
            process.remove_participant(participant_id)
        for participant_id, name in wanted_people.items():
            if participant_id not in self._people:
                process.add_participant(participant_id, name)
            elif self._people[participant_id] != name:
                process.set_label(participant_id, name)
            self._people[participant_id] = name
        for producer_id, entry in wanted_producers.items():
            if producer_id not in self._producers:
                self._producers[producer_id] = entry
                entry[0].add_tap(self._tap)

    def _tap(self, producer: Producer, packet: CachedPacket) -> None:
        source_id = producer.id
        codec = packet.codec
        if codec.payloadType is None:  # never so for a negotiated codec
            return
        if source_id not in self._announced:
            entry = self._producers.get(source_id)
            if entry is None:
                return
            _, participant_id, label, screen = entry
            # The codec is known from the first packet on (what the publisher negotiated).
            kind: Kind = "audio" if producer.kind == "audio" else "video"
            self.process.add_source(
                source_id, kind, codec, label, screen=screen, participant=participant_id
            )
            self._announced.add(source_id)
        header = _RTP_HEADER.pack(
            0x80,
            (packet.marker << 7) | codec.payloadType,
            packet.seq,
            packet.ts,
            _RECORDER_SSRC,
        )
        self.process.feed(source_id, header + packet.payload)

    def request_keyframe(self, source_id: str) -> Any:
        entry = self._producers.get(source_id)
        if entry is None:
            return None
        return entry[0].request_keyframe()

    def detach(self) -> None:
        """Stop tapping (the recorder gets nothing more)."""
        self._stopped = True
        for producer, *_ in self._producers.values():
            producer.remove_tap(self._tap)
        self._producers.clear()

    async def stop(self, timeout: float = 60.0) -> RecordingResult:
        self.detach()
        return await self.process.stop_async(timeout)


def ready_chat_data(record: RecordingRecord) -> dict[str, Any]:
    """data of the recording_ready chat message (the call page draws its card from it)."""
    url, thumbnail_url = record.links()
    return {
        "recording_id": record.id,
        "title": record.title,
        "author_name": record.author_name,
        "duration_s": record.duration_s,
        "size_bytes": record.size_bytes,
        "url": url,
        "thumbnail_url": thumbnail_url,
        "complete": record.complete,
        "visibility": [role.value for role in record.visibility],
    }


def finished_record(
    record: RecordingRecord, result: RecordingResult, ended_at: datetime | None = None
) -> RecordingRecord:
    """The record once its recorder has stopped."""
    usable = result.size_bytes > 0 and result.duration_s > 0
    return replace(
        record,
        status=RecordingStatus.READY if usable else RecordingStatus.FAILED,
        ended_at=ended_at or datetime.now(UTC),
        duration_s=round(result.duration_s, 3),
        size_bytes=result.size_bytes,
        thumbnail=result.thumbnail.name if result.thumbnail is not None else None,
        complete=result.complete,
        error=result.error if not usable or not result.complete else None,
    )
