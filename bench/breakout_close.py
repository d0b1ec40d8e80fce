"""The breakout bench's last phase: the teacher closes the rooms at once; how soon is
everybody back in the main room, and does the other lesson notice?

A pupil is back when it heard the rooms closed, answered an offer made after that,
and received a packet of the teacher's microphone sent after it heard (the main
room's router forwarded it: in the rooms nobody hears the teacher).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from bench.breakout_members import Member
from bench.breakout_options import Options
from bench.cli import say
from bench.measure import percentile

SAMPLE_INTERVAL = 0.05


@dataclass
class Closing:
    t0: float  # breakout_close sent
    back: list[float | None]  # per pupil: seconds after t0 (None: not back in time)
    told: list[float | None]  # per pupil: when it heard the rooms closed
    everyone_back: bool
    witness_gap_ms: float | None = None  # filled in once the witness has stopped
    server_loop_lag_ms: float | None = None

    def figures(self) -> dict[str, Any]:
        back = [b for b in self.back if b is not None]
        told = [t for t in self.told if t is not None]
        return {
            "everyone_back": self.everyone_back,
            "pupils": len(self.back),
            "back_count": len(back),
            "back_p50_s": percentile(back, 50) if back else None,
            "back_max_s": max(back) if back else None,
            "told_max_s": max(told) if told else None,
            "witness_gap_ms": self.witness_gap_ms,
            "server_loop_lag_ms": self.server_loop_lag_ms,
        }


def back_at(member: Member, teacher_id: str, since: float) -> float | None:
    """When `member` was back in the main room after `since` (None: not yet)."""
    assert member.bot is not None
    told = member.heard_closed()
    heard = member.back_fresh.get(teacher_id)
    answered = [o.answered for o in member.bot.offers if o.started >= since]
    if told is None or heard is None or not answered:
        return None
    return max(told, heard, answered[0])


async def close_rooms(members: list[Member], options: Options) -> Closing:
    """The teacher closes the rooms with no countdown; wait until everybody is back
    (or `options.timeout`)."""
    teacher, pupils = members[0], members[1:]
    assert teacher.bot is not None
    t0 = time.monotonic()
    for m in members:  # from now on what they receive counts here, not for the rooms
        m.closed_at = t0
    await teacher.bot.send({"type": "breakout_close", "countdown_seconds": 0})
    deadline = t0 + options.timeout
    while True:
        back = [back_at(m, teacher.id, t0) for m in pupils]
        if all(b is not None for b in back) or time.monotonic() >= deadline:
            break
        await asyncio.sleep(SAMPLE_INTERVAL)
    told = [m.heard_closed() for m in pupils]
    closing = Closing(
        t0,
        [None if b is None else b - t0 for b in back],
        [None if t is None else t - t0 for t in told],
        all(b is not None for b in back),
    )
    latest = max((b for b in closing.back if b is not None), default=None)
    say(
        options,
        f"rooms closed: everybody back after {latest:.2f} s"
        if closing.everyone_back and latest is not None
        else f"rooms closed: {sum(b is not None for b in back)} of {len(pupils)} back in time",
    )
    return closing
