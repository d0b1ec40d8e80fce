"""When a lesson or call may be scheduled: sane bounds, so every date stays computable.

A lesson ending in the year 9999 once made its token expiry overflow and
stopped the sweeper for every lesson; anything outside these bounds is refused
when it is created.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta


@dataclass(frozen=True)
class ScheduleLimits:
    max_duration: timedelta = timedelta(hours=12)
    # Starts, ends and repeat end dates lie within this distance of now.
    horizon: timedelta = timedelta(days=366)


class ScheduleError(ValueError):
    """A schedule outside the limits; `field` names which part ("starts_at", "ends_at", "until")."""

    def __init__(self, code: str, message: str, field: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field


def check_schedule(
    starts_at: datetime,
    ends_at: datetime,
    now: datetime,
    limits: ScheduleLimits,
    until: date | None = None,
) -> None:
    """Raise ScheduleError unless start < end, the length and every date are within limits."""
    if ends_at <= starts_at:
        raise ScheduleError("invalid_time_range", "ends_at must be after starts_at.", "ends_at")
    hours = limits.max_duration / timedelta(hours=1)
    if ends_at - starts_at > limits.max_duration:
        raise ScheduleError("too_long", f"It may last at most {hours:g} hours.", "ends_at")
    days = limits.horizon.days
    for field, when in (("starts_at", starts_at), ("ends_at", ends_at)):
        if abs(when - now) > limits.horizon:
            raise ScheduleError(
                "date_out_of_range", f"{field} must be within {days} days of now.", field
            )
    if until is not None and until > (now + limits.horizon).date():
        raise ScheduleError(
            "date_out_of_range", f"until must be within {days} days of now.", "until"
        )
