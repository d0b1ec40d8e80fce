"""The chat's profanity filter: masks obscene words from word lists ("б****").

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
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from os import PathLike
from pathlib import Path

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
