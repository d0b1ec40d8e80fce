"""Call chat: message limits, rate limiting, the profanity filter, system messages.

Plain, I/O-free code that the call logic (rooms/calls/) uses; the store keeps
the resulting ChatMessage records.

Pieces:

* ChatLimits / prepare_message: normalise a message (newlines, invisible and
  control characters) and enforce its length; ChatError(code, message) with
  codes "invalid", "empty", "too_long".
* RateLimiter (rooms/ratelimit.py): a sliding window per key, clock injectable.
* ProfanityFilter (rooms/profanity.py): masks obscene words from word lists
  ("б****"); ships Russian and English lists in rooms/wordlists/.
* system_message: a kind="system" ChatMessage with Russian text and a
  machine-readable data dict (data["event"] is the kind) for clients that
  show it in their own language.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rooms.model import ChatMessage
from rooms.profanity import FILTERED_NOTICE, RUSSIAN_PREFIXES, ProfanityFilter
from rooms.ratelimit import RateLimiter

__all__ = [
    "FILTERED_NOTICE",
    "RUSSIAN_PREFIXES",
    "SYSTEM_KINDS",
    "ChatError",
    "ChatLimits",
    "ProfanityFilter",
    "RateLimiter",
    "prepare_message",
    "system_message",
]


# --------------------------------------------------------------------------- limits


class ChatError(Exception):
    """A message that cannot be posted. `code` is stable, `message` is for people."""

    def __init__(self, code: str, message: str, *, limit: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.limit = limit


@dataclass(frozen=True)
class ChatLimits:
    max_length: int = 1000  # characters, after normalising and stripping
    rate_messages: int = 5  # at most this many messages ...
    rate_window: float = 10.0  # ... per this many seconds, per participant

    def __post_init__(self) -> None:
        if self.max_length < 1:
            raise ValueError("max_length must be at least 1")
        if self.rate_messages < 1:
            raise ValueError("rate_messages must be at least 1")
        if not self.rate_window > 0:
            raise ValueError("rate_window must be positive")


# Line breaks of every kind become "\n".
_NEWLINES = re.compile(r"\r\n|[\r\v\f\x85\u2028\u2029]")
# Invisible format characters that only serve to hide words or reorder text
# (zero-width space, word joiner, BOM, soft hyphen, bidi embeddings and
# overrides). ZWJ/ZWNJ stay: emoji sequences and some scripts need them.
_INVISIBLE = frozenset(
    "\u200b\u2060\ufeff\u00ad\u180e\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)
_MAX_COMBINING = 4  # per base character: enough for any script, stops "Zalgo" text
_BLANK_LINES = re.compile(r"\n{4,}")  # more than two blank lines


def _clean_chars(text: str) -> str:
    out: list[str] = []
    combining = 0
    for ch in text:
        if ch in "\n\t":
            out.append(ch)
            combining = 0
            continue
        category = unicodedata.category(ch)
        if category == "Cc" or ch in _INVISIBLE:
            continue
        if category in ("Mn", "Me"):
            combining += 1
            if combining > _MAX_COMBINING:
                continue
        else:
            combining = 0
        out.append(ch)
    return "".join(out)


def prepare_message(text: Any, limits: ChatLimits | None = None) -> str:
    """The text to store for a chat message, or ChatError.

    Normalises to NFC; turns every kind of line break into "\\n"; drops control
    characters (except newline and tab) and invisible ones; strips trailing
    spaces on each line, keeps at most two blank lines in a row, strips the
    whole text. Then: "empty" if nothing is left, "too_long" if longer than
    limits.max_length characters.
    """
    limits = limits or ChatLimits()
    if not isinstance(text, str):
        raise ChatError("invalid", "message text must be a string")
    text = unicodedata.normalize("NFC", text)
    text = _NEWLINES.sub("\n", text)
    text = _clean_chars(text)
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    text = _BLANK_LINES.sub("\n\n\n", text).strip()
    if not text:
        raise ChatError("empty", "message is empty")
    if len(text) > limits.max_length:
        raise ChatError(
            "too_long",
            f"message is too long: {len(text)} characters, at most {limits.max_length} allowed",
            limit=limits.max_length,
        )
    return text


# --------------------------------------------------------------------------- system messages

# kind -> (what happened, the data it takes). data["event"] is always the kind.
SYSTEM_KINDS: dict[str, str] = {
    "waiting": "someone is in the waiting room; data: name, participant_id",
    "joined": "someone entered the call; data: name, participant_id",
    "left": "someone left the call; data: name, participant_id",
    "recording_ready": (
        "a recording can be watched; data: recording_id, title, author_name, duration_s,"
        " size_bytes, url, thumbnail_url, complete"
    ),
    "recording_failed": "a recording could not be made; data: recording_id, title",
    "breakout_opened": "breakout rooms opened; data: count? (int), minutes? (int)",
    "breakout_closed": "breakout rooms closed, everybody is back; data: none",
}


def _name(data: dict[str, Any]) -> str:
    name = " ".join(str(data.get("name") or "").split())
    return name or "Участник"


def _system_text(kind: str, data: dict[str, Any]) -> str:
    # Present tense: Russian past tense would need the person's gender.
    if kind == "waiting":
        return f"{_name(data)} ждёт в зале ожидания"
    if kind == "joined":
        return f"{_name(data)} входит в урок"
    if kind == "left":
        return f"{_name(data)} выходит из урока"
    if kind == "recording_ready":
        title = " ".join(str(data.get("title") or "").split())
        return f"Запись «{title}» готова" if title else "Запись урока готова"
    if kind == "recording_failed":
        title = " ".join(str(data.get("title") or "").split())
        return f"Запись «{title}» не удалась" if title else "Запись урока не удалась"
    if kind == "breakout_opened":
        text = "Открыты комнаты для работы в группах"
        count = data.get("count")
        if isinstance(count, int) and not isinstance(count, bool) and count > 0:
            text += f" ({count})"
        minutes = data.get("minutes")
        if isinstance(minutes, int) and not isinstance(minutes, bool) and minutes > 0:
            text += f" на {minutes} мин."
        return text
    if kind == "breakout_closed":
        return "Комнаты для работы в группах закрыты, все возвращаются в общий урок"
    raise ValueError(f"unknown system message kind: {kind!r}")


def system_message(kind: str, data: dict[str, Any] | None, at: datetime) -> ChatMessage:
    """A system chat message (id "" until the store assigns one).

    text is Russian; data is the given data plus "event": kind, so clients can
    show it in their own language. Kinds: see SYSTEM_KINDS.
    """
    if kind not in SYSTEM_KINDS:
        raise ValueError(f"unknown system message kind: {kind!r}")
    payload = dict(data or {})
    return ChatMessage(
        id="",
        kind="system",
        text=_system_text(kind, payload),
        at=at,
        data={**payload, "event": kind},
    )
