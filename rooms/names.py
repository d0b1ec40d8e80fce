"""Names as people see them: one normal form, nothing invisible, nothing that spoofs.

A name is shown in the participant list, on tiles, in chat and in
recordings. NUL and other control characters, bidi overrides (which turn
"Иванов" into something else on screen), zero-width characters and lone
surrogates are removed; runs of whitespace become one space; the result is
NFC. A name with nothing visible left is refused.
"""

from __future__ import annotations

import unicodedata

# Control, format (bidi, zero-width), surrogate, unassigned and private-use.
_DROPPED = frozenset({"Cc", "Cf", "Cs", "Cn", "Co"})
_SPACES = frozenset({"Zs", "Zl", "Zp"})


class BadName(ValueError):
    """A name that cannot be shown: `code` is `name_empty` or `name_too_long`."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def clean_name(raw: str, max_length: int = 100) -> str:
    """The name to show for `raw`; BadName if nothing visible is left or it is too long."""
    chars = []
    for ch in unicodedata.normalize("NFC", raw):
        category = unicodedata.category(ch)
        if ch in "\t\n\r" or category in _SPACES:
            chars.append(" ")
        elif category not in _DROPPED:
            chars.append(ch)
    name = " ".join("".join(chars).split())
    if not name:
        raise BadName("name_empty", "the name has no visible characters")
    if len(name) > max_length:
        raise BadName("name_too_long", f"the name is longer than {max_length} characters")
    return name
