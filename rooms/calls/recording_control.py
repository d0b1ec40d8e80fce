"""Recording the call's main room: start, stop, stop before the disk fills, finish the file.

`RecordingControl` receives the call's core; it takes the core's lock for starting
and stopping, and hands the running recorder to the core (`attach_recorder`), which
keeps it told who is in the main room as people come, go and publish.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import replace
from datetime import datetime
from typing import Any

from rooms.calls.core import CallCore, now
from rooms.calls.errors import CallError
from rooms.calls.participant import Participant
from rooms.model import RECORDING_VIEWER_ROLES, RecordingRecord, RecordingStatus
from rooms.recordings import (
    CallRecorder,
    RecordingService,
    RecordingUnavailable,
    finished_record,
    new_recording_id,
    ready_chat_data,
)
from rooms.vocabulary import Role

logger = logging.getLogger(__name__)


class RecordingControl:
    def __init__(self, call: CallCore, service: RecordingService | None) -> None:
        self.call = call
        self.service = service
        self._finishing: set[asyncio.Task[None]] = set()  # stopped recordings being finished
        self._disk_watch: asyncio.Task[None] | None = None  # of the running recording

    def default_title(self, at: datetime) -> str:
        lesson = self.call.lesson
        day = lesson.starts_at.date() if lesson.starts_at else at.date()
        date = day.strftime("%d.%m.%Y")
        return ", ".join(p for p in (lesson.title[: 198 - len(date)], date) if p)

    async def start(
        self, host: Participant, title: str | None, visibility: list[str] | None
    ) -> dict[str, Any]:
        """Start recording the main room; everyone is told (and so is whoever joins later)."""
        call = self.call
        call.require_host(host)
        service = self.service
        async with call.locked():
            if call.recorder is not None:
                raise CallError("recording_active", "this call is being recorded already")
            if service is None:
                raise CallError("recording_unavailable", "recording is not available here")
            try:
                service.check_can_start()
            except RecordingUnavailable as exc:
                raise CallError(exc.code, str(exc)) from None
            record = self._new_record(host, title, visibility)
            recorder = await self._start_recorder(service, record, host)
            call.attach_recorder(recorder)
            self._watch_disk(recorder)
        logger.info("%s started recording %s in %s", host.user_id, record.id, call.id)
        state = recorder.state()
        await call.broadcast({"type": "recording", "recording": state})
        return state

    def _new_record(
        self, host: Participant, title: str | None, visibility: list[str] | None
    ) -> RecordingRecord:
        at = now()
        title = " ".join((title or "").split())[:200] or self.default_title(at)
        viewers = {Role(v) for v in visibility} if visibility is not None else None
        recording_id = new_recording_id()
        return RecordingRecord(
            id=recording_id,
            call_id=self.call.id,
            integration=self.call.lesson.integration,
            title=title,
            author_user_id=host.user_id,
            author_name=host.name,
            started_at=at,
            visibility=tuple(
                role
                for role in RECORDING_VIEWER_ROLES
                if viewers is None or role in viewers or role is Role.TEACHER
            ),
            file=f"{recording_id}.mp4",
        )

    async def _start_recorder(
        self, service: RecordingService, record: RecordingRecord, host: Participant
    ) -> CallRecorder:
        recorder_ref: list[CallRecorder] = []
        process = service.process(record, lambda source: recorder_ref[0].request_keyframe(source))
        try:
            await service.library.save(record)
            process.start()
            service.running += 1
        except Exception as exc:
            logger.exception("could not start recording %s", record.id)
            await service.library.save(
                replace(record, status=RecordingStatus.FAILED, error=str(exc)[:300])
            )
            raise CallError("recording_failed", "the recording could not start") from None
        recorder = CallRecorder(record, process, host.id)
        recorder_ref.append(recorder)
        return recorder

    async def stop(self, host: Participant) -> None:
        call = self.call
        call.require_host(host)
        async with call.locked():
            recorder = call.recorder
            if recorder is None:
                raise CallError("no_recording", "nothing is being recorded")
            self._end(recorder)
        logger.info("%s stopped recording %s in %s", host.user_id, recorder.record.id, call.id)
        await call.broadcast({"type": "recording", "recording": None})

    def _end(self, recorder: CallRecorder) -> None:
        """The recording stops now; its file is finished in the background."""
        self.call.detach_recorder()
        self._stop_disk_watch()
        task = asyncio.ensure_future(self._finish(recorder))
        self._finishing.add(task)
        task.add_done_callback(self._finishing.discard)

    def _watch_disk(self, recorder: CallRecorder) -> None:
        """Stop the recording (keeping what it has) before the disk fills up."""
        service = self.service
        assert service is not None
        call = self.call

        async def watch() -> None:
            while call.recorder is recorder:
                await asyncio.sleep(service.disk_check_seconds)
                if not service.disk_nearly_full():
                    continue
                async with call.locked():
                    if call.recorder is not recorder:
                        return
                    logger.warning("disk nearly full: recording %s stopped", recorder.record.id)
                    self._end(recorder)
                await call.broadcast(
                    {"type": "recording", "recording": None, "reason": "disk_full"}
                )
                return

        self._disk_watch = asyncio.ensure_future(watch())

    def _stop_disk_watch(self) -> None:
        watch, self._disk_watch = self._disk_watch, None
        if watch is not None and watch is not asyncio.current_task():
            watch.cancel()

    async def finish_all(self) -> None:
        """Stop a running recording and wait until every stopped one is finished."""
        recorder = self.call.detach_recorder()
        self._stop_disk_watch()
        if recorder is not None:
            await self._finish(recorder)
        while self._finishing:
            await asyncio.gather(*list(self._finishing), return_exceptions=True)

    async def _finish(self, recorder: CallRecorder) -> None:
        """Finish the file, then list it, post it into the chat and tell the journal."""
        service = self.service
        assert service is not None
        record = await self._finished(service, recorder)
        if record.status == RecordingStatus.READY:
            service.finished += 1
            await self.call.post_system(
                "recording_ready",
                ready_chat_data(record),
                room="*",  # for everyone, in a breakout room or not
            )
            service.ready(self.call.lesson, record)
        else:
            service.failed += 1
            await self.call.post_system(
                "recording_failed", {"recording_id": record.id, "title": record.title}, room="*"
            )

    async def _finished(self, service: RecordingService, recorder: CallRecorder) -> RecordingRecord:
        """Stop the recorder and save what became of its record (ready or failed)."""
        library = service.library
        record = replace(recorder.record, status=RecordingStatus.PROCESSING, ended_at=now())
        try:
            try:
                await library.save(record)
            except Exception:  # the store is down: the recorder must be stopped all the same
                logger.exception("saving recording %s as processing failed", record.id)
            result = await recorder.stop()
            logger.info(
                "recording %s of %s finished: %.1f s, %.1f MB, %d frames (%d skipped to keep up),"
                " %d packets dropped, %.1f CPU s, complete: %s",
                record.id,
                self.call.id,
                result.duration_s,
                result.size_bytes / 1e6,
                result.video_frames,
                result.skipped_frames,
                result.dropped_packets,
                result.cpu_s,
                result.complete,
            )
            record = finished_record(record, result, record.ended_at)
            await library.save(record)
        except Exception:
            logger.exception("finishing recording %s failed", record.id)
            record = replace(record, status=RecordingStatus.FAILED, error="finishing failed")
            with contextlib.suppress(Exception):
                await library.save(record)
        finally:
            service.running -= 1
        return record
