"""Call chat: message limits, rate limiting, the profanity filter, system messages.

Plain, I/O-free code that the call logic (rooms/calls/) uses; the store keeps
the resulting ChatMessage records.

Pieces:

* ChatLimits / prepare_message: normalise a message (newlines, invisible and
  control characters) and enforce its length; ChatError(code, message) with
  codes "invalid", "empty", "too_long".
* RateLimiter: a sliding window per key (participant), clock injectable.
* ProfanityFilter: masks obscene words from word lists ("б****"); ships
  Russian and English lists in rooms/wordlists/.
* system_message: a kind="system" ChatMessage with Russian text and a
  machine-readable data dict (data["event"] is the kind) for clients that
  show it in their own language.

Word-list format (rooms/wordlists/*.txt, or any file passed to the filter)
--------------------------------------------------------------------------
One entry per line; blank lines and everything after "#" are ignored.
An entry is written either all in Cyrillic or all in Latin letters:

    word      the whole word (in any case, with repeated letters: "сууука")
    stem*     a word starting with stem ("бляд*": блядь, блядский)
    *stem     a word ending with stem
    *stem*    stem anywhere in a word ("*пизд*": распиздяй)
    +entry    (Cyrillic only) also after Russian prefixes such as за-, на-,
              по-, о-, у-, вы-, от-, раз-/рас-, съ-, недо- (up to two):
              "+хуй*" also finds нахуй, похуй, охуеть (via "+хуе*");
              before a vowel only prefixes ending in a vowel, ъ or ь
              (заебал, съебал; not под+ебош, which is дебош)
    !entry    an exception (allowlist): a word matching it is never masked
              ("!употребл*"); same syntax as above, without "+"

Words are compared after lower-casing, ё -> е, dropping accents, and trying
the word both as Cyrillic (Latin and digit look-alikes: xyй, cyka, e6aть)
and, when it has a Latin letter, as Latin (Cyrillic look-alikes: fuсk with
a Cyrillic с, sh1t). Separators between letters (х.у.й, f-u-c-k, х*у*й) and
single letters spaced out (х у й) are joined before comparing.
"""

from __future__ import annotations

import re
import time
import unicodedata
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from importlib import resources
from os import PathLike
from pathlib import Path
from typing import Any

from rooms.model import ChatMessage

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


class RateLimiter:
    """At most `max_events` per `window` seconds per key (a sliding window).

    check(key, now) records an event and returns None when it is allowed;
    otherwise it records nothing and returns the seconds until one more event
    would be allowed. `now` defaults to `clock()` (time.monotonic).
    """

    _SWEEP_EVERY = 1024  # checks between sweeps of idle keys

    def __init__(
        self,
        max_events: int = 5,
        window: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_events < 1:
            raise ValueError("max_events must be at least 1")
        if not window > 0:
            raise ValueError("window must be positive")
        self.max_events = max_events
        self.window = float(window)
        self.clock = clock
        self._events: dict[str, deque[float]] = {}
        self._checks = 0

    @classmethod
    def for_limits(
        cls, limits: ChatLimits, clock: Callable[[], float] = time.monotonic
    ) -> RateLimiter:
        return cls(limits.rate_messages, limits.rate_window, clock)

    def check(self, key: str, now: float | None = None) -> float | None:
        if now is None:
            now = self.clock()
        self._checks += 1
        if self._checks % self._SWEEP_EVERY == 0:
            self._sweep(now)
        events = self._events.setdefault(key, deque())
        horizon = now - self.window
        while events and events[0] <= horizon:
            events.popleft()
        if len(events) < self.max_events:
            events.append(now)
            return None
        return max(events[0] - horizon, 1e-3)

    def forget(self, key: str) -> None:
        """Drop a key's history (the participant left)."""
        self._events.pop(key, None)

    def reset(self) -> None:
        self._events.clear()

    def __len__(self) -> int:
        return len(self._events)

    def _sweep(self, now: float) -> None:
        horizon = now - self.window
        for key in [k for k, ev in self._events.items() if not ev or ev[-1] <= horizon]:
            del self._events[key]


# --------------------------------------------------------------------------- profanity

# Russian prefixes a "+entry" may follow (at most two of them: "поза-", "недо-по-").
RUSSIAN_PREFIXES: tuple[str, ...] = (
    "за", "на", "по", "о", "об", "обо", "от", "ото", "вы", "до", "у", "про", "пере",
    "при", "раз", "рас", "разъ", "под", "подъ", "над", "недо", "не", "ни", "съ",
    "сь", "взъ", "въ", "изъ", "отъ", "объ",
)  # fmt: skip

FILTERED_NOTICE = {
    "ru": "Некоторые слова в вашем сообщении скрыты: в чате урока так писать нельзя.",
    "en": "Some words in your message were hidden: they are not allowed in the lesson chat.",
}

_CYRILLIC = frozenset("абвгдежзийклмнопрстуфхцчшщъыьэюя")
_LATIN = frozenset("abcdefghijklmnopqrstuvwxyz")
_VOWELS = frozenset("аеиоуыэюя")
# Look-alikes read as Cyrillic: Latin letters and digits that pass for Cyrillic ones.
_TO_CYRILLIC = {
    **dict(zip("abcehikmnoptuxy", "авсеникмпортиху", strict=True)),
    "0": "о",
    "3": "з",
    "4": "ч",
    "6": "б",
    "@": "а",
    "і": "и",  # Ukrainian (ї folds to і)
    "є": "е",
}
# Look-alikes read as Latin: Cyrillic letters and digits/symbols that pass for Latin ones.
_TO_LATIN = {
    **dict(zip("авекмнопрстухи", "abekmhonpctyxu", strict=True)),
    "0": "o",
    "1": "i",
    "3": "e",
    "4": "a",
    "5": "s",
    "7": "t",
    "@": "a",
    "$": "s",
    "і": "i",
}

# A word: letters, digits, combining marks, and the look-alike symbols @ and $.
_W = r"(?:[^\W_]|[@$\u0300-\u036f])"
# May stand between the letters of one word. Not apostrophes: "who're", "as's".
_SEP = r"[.,*\-_~\"|+/\\:;=^]"
_RUN = re.compile(rf"{_W}+(?:{_SEP}{{1,3}}{_W}+)*")
_SEGMENT = re.compile(rf"{_W}+")
_MASKABLE = re.compile(_W)
# Single letters spaced out: "х у й".
_SPACED = re.compile(r"(?<![^\W_])[^\W\d_](?: [^\W\d_]){2,}(?![^\W_])")
_SPACED_MAX = 12  # letters joined at most
_REPEATS = re.compile(r"(.)\1\1+")


def _fold(word: str) -> str:
    """Lower case without accents (ё -> е, é -> e, у́ -> у), but й stays й."""
    word = unicodedata.normalize("NFD", word.lower())
    word = "".join(ch for ch in word if ch == "\u0306" or not unicodedata.combining(ch))
    return unicodedata.normalize("NFC", word)


def _views(word: str) -> tuple[str | None, str | None]:
    """The word read as Cyrillic and as Latin; None where it cannot be read so."""
    folded = _fold(word)
    if not any(ch.isalpha() for ch in folded):
        return None, None
    cyr: list[str] | None = []
    lat: list[str] | None = []
    has_latin = False
    for ch in folded:
        if cyr is not None:
            if ch in _CYRILLIC:
                cyr.append(ch)
            elif ch in _TO_CYRILLIC:
                cyr.append(_TO_CYRILLIC[ch])
            else:
                cyr = None
        if lat is not None:
            if ch in _LATIN:
                lat.append(ch)
                has_latin = True
            elif ch in _TO_LATIN:
                lat.append(_TO_LATIN[ch])
            else:
                lat = None
        if cyr is None and lat is None:
            break

    def squeeze(chars: list[str] | None) -> str | None:
        # Runs of three or more of a letter count as two: entries match
        # repeated letters anyway, and this bounds regex backtracking.
        return _REPEATS.sub(r"\1\1", "".join(chars)) if chars else None

    return squeeze(cyr), squeeze(lat) if has_latin else None


@dataclass(frozen=True)
class _Entry:
    script: str  # "cyr" or "lat"
    pattern: str  # regex source, for fullmatch against a view


def _letters_pattern(stem: str) -> str:
    """Regex for stem where each letter may repeat: "ass" -> a+s{2,}."""
    out = []
    for match in re.finditer(r"(.)\1*", stem):
        letter, count = re.escape(match.group(1)), len(match.group())
        out.append(f"{letter}+" if count == 1 else f"{letter}{{{count},}}")
    return "".join(out)


def _parse_entry(raw: str, prefixes: tuple[str, ...], allow: bool, where: str) -> _Entry:
    text = raw.strip()
    with_prefixes = text.startswith("+")
    if with_prefixes:
        if allow:
            raise ValueError(f"{where}: '+' is not allowed in an exception: {raw!r}")
        text = text[1:]
    head, tail = text.startswith("*"), text.endswith("*") and len(text) > 1
    stem = _fold(text.strip("*"))
    if not stem:
        raise ValueError(f"{where}: empty entry: {raw!r}")
    if set(stem) <= _CYRILLIC:
        script = "cyr"
    elif set(stem) <= _LATIN:
        script = "lat"
    else:
        raise ValueError(f"{where}: an entry must be all Cyrillic or all Latin letters: {raw!r}")
    if with_prefixes and script != "cyr":
        raise ValueError(f"{where}: '+' (Russian prefixes) is for Cyrillic entries: {raw!r}")
    pattern = _letters_pattern(stem)
    if with_prefixes and stem[0] in _VOWELS:
        # Russian spelling: a prefix ending in a consonant takes ъ before a
        # vowel (съебать, подъебать); so "под" + "ебош" is дебош, not мат.
        prefixes = tuple(p for p in prefixes if p[-1] in _VOWELS or p[-1] in "ъь")
    if with_prefixes and prefixes:
        alternatives = "|".join(
            _letters_pattern(p) for p in sorted(prefixes, key=len, reverse=True)
        )
        pattern = f"(?:{alternatives}){{0,2}}{pattern}"
    if head:
        pattern = ".*" + pattern
    if tail:
        pattern += ".*"
    return _Entry(script, pattern)


def _compile(entries: list[_Entry], script: str) -> re.Pattern[str] | None:
    patterns = sorted({e.pattern for e in entries if e.script == script})
    return re.compile("|".join(f"(?:{p})" for p in patterns)) if patterns else None


class ProfanityFilter:
    """Masks obscene words: every letter but the first becomes "*" ("б****").

    entries: list lines (see the module docstring; "!x" lines are exceptions);
    files: word-list files to read as well; allow: exception entries (without
    "!"); defaults: start from the shipped Russian and English lists;
    prefixes: what "+entries" may follow.
    """

    def __init__(
        self,
        entries: Iterable[str] = (),
        *,
        files: Iterable[str | PathLike[str]] = (),
        allow: Iterable[str] = (),
        defaults: bool = False,
        prefixes: Iterable[str] = RUSSIAN_PREFIXES,
    ) -> None:
        self.prefixes = tuple(_fold(p) for p in prefixes if p.strip())
        words: list[_Entry] = []
        exceptions: list[_Entry] = []
        sources: list[tuple[str, Iterable[str]]] = []
        if defaults:
            sources.extend(_shipped_lists())
        for path in files:
            sources.append((str(path), Path(path).read_text(encoding="utf-8").splitlines()))
        sources.append(("entries", entries))
        for name, lines in sources:
            for number, line in enumerate(lines, 1):
                line = line.split("#", 1)[0].strip()
                if not line:
                    continue
                where = f"{name}:{number}"
                if line.startswith("!"):
                    exceptions.append(_parse_entry(line[1:], self.prefixes, True, where))
                else:
                    words.append(_parse_entry(line, self.prefixes, False, where))
        for number, line in enumerate(allow, 1):
            if line.strip():
                exceptions.append(_parse_entry(line, self.prefixes, True, f"allow:{number}"))
        self.size = len(words)
        self._words = {s: _compile(words, s) for s in ("cyr", "lat")}
        self._allow = {s: _compile(exceptions, s) for s in ("cyr", "lat")}

    @classmethod
    def default(
        cls,
        *,
        files: Iterable[str | PathLike[str]] = (),
        entries: Iterable[str] = (),
        allow: Iterable[str] = (),
    ) -> ProfanityFilter:
        """The shipped Russian and English lists, plus any extra files, entries, exceptions."""
        files, entries, allow = tuple(files), tuple(entries), tuple(allow)
        if not (files or entries or allow):
            return _default_filter()
        return cls(entries, files=files, allow=allow, defaults=True)

    def __repr__(self) -> str:
        return f"<ProfanityFilter {self.size} entries>"

    # ---------------------------------------------------------------- matching

    def is_offensive(self, word: str) -> bool:
        """Whether one word (possibly with separators or look-alikes) is to be masked."""
        views = dict(zip(("cyr", "lat"), _views(word), strict=True))
        for script, view in views.items():
            if view is None:
                continue
            words, allow = self._words[script], self._allow[script]
            if words is None or (allow is not None and allow.fullmatch(view)):
                continue
            if words.fullmatch(view):
                return True
        return False

    def find(self, text: str) -> list[tuple[int, int]]:
        """(start, end) spans of the offending words in text, in order, not overlapping."""
        spans: list[tuple[int, int]] = []
        for run in _RUN.finditer(text):
            segments = list(_SEGMENT.finditer(text, run.start(), run.end()))
            bad = [s.span() for s in segments if self.is_offensive(s.group())]
            if bad:
                spans.extend(bad)
            elif len(segments) > 1 and self.is_offensive("".join(s.group() for s in segments)):
                spans.append(run.span())
        for spaced in _SPACED.finditer(text):
            spans.extend(self._find_spaced(spaced.start(), spaced.group()))
        return _merge(spans)

    def _find_spaced(self, offset: int, group: str) -> list[tuple[int, int]]:
        letters = group[::2]  # "х у й" -> "хуй"; index i is at offset + 2 * i
        found = []
        i = 0
        while i <= len(letters) - 3:
            for j in range(min(len(letters), i + _SPACED_MAX), i + 2, -1):
                if self.is_offensive(letters[i:j]):
                    found.append((offset + 2 * i, offset + 2 * (j - 1) + 1))
                    i = j
                    break
            else:
                i += 1
        return found

    def filter(self, text: str) -> tuple[str, bool]:
        """(text with offending words masked, whether anything was masked).

        Everything but the masked letters is kept exactly as it was.
        """
        spans = self.find(text)
        if not spans:
            return text, False
        out = []
        last = 0
        for start, end in spans:
            out.append(text[last:start])
            out.append(_mask(text[start:end]))
            last = end
        out.append(text[last:])
        return "".join(out), True


def _mask(word: str) -> str:
    first = True

    def star(match: re.Match[str]) -> str:
        nonlocal first
        if first:
            first = False
            return match.group()
        return "*"

    return _MASKABLE.sub(star, word)


def _merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start < merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


_SHIPPED = ("ru.txt", "en.txt")


def _shipped_lists() -> list[tuple[str, list[str]]]:
    folder = resources.files("rooms") / "wordlists"
    return [
        (f"rooms/wordlists/{name}", (folder / name).read_text(encoding="utf-8").splitlines())
        for name in _SHIPPED
    ]


@lru_cache(maxsize=1)
def _default_filter() -> ProfanityFilter:
    return ProfanityFilter(defaults=True)


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
