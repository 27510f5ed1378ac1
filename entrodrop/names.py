"""Text people give things (run and study names, notes): no control or invisible format characters.

NUL, ESC (terminal escapes), bidi overrides (U+202E shows "abc\u202etxt.exe" as "abcexe.txt"),
zero-width and line-separator characters make a name lie about itself on a page, in a log or in
a terminal, so they are refused with a message rather than stripped behind the user's back.
"""

from __future__ import annotations

import unicodedata

# Categories refused: controls (Cc), format characters (Cf: bidi, zero-width), line and
# paragraph separators, lone surrogates. The zero-width joiner stays: emoji sequences need it.
REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})
ALLOWED = frozenset({"\u200d"})
NOTES_ALLOWED = frozenset({"\n", "\t", "\r"})  # notes may have lines and tabs; names may not


def control_character_problem(text: str, allow: frozenset[str] = frozenset()) -> str | None:
    """Why `text` is refused (its first control or format character, named), or None."""
    for position, char in enumerate(text):
        if char in ALLOWED or char in allow:
            continue
        if unicodedata.category(char) in REFUSED_CATEGORIES:
            name = unicodedata.name(char, "a control character")
            return (
                f"control character U+{ord(char):04X} ({name}) at position {position} is not "
                "allowed: names and notes are plain printable text"
            )
    return None


def check_printable(text: str, allow: frozenset[str] = frozenset()) -> str:
    """`text` unchanged, or ValueError naming its first control or format character."""
    problem = control_character_problem(text, allow)
    if problem is not None:
        raise ValueError(problem)
    return text
