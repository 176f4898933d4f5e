"""Reading SQL text without running it: statements, the first keyword, named parameters.

The scanner knows the literals of SQLite and PostgreSQL (quoted strings and names, SQLite's
``[name]`` and backquotes, PostgreSQL's ``E'...'`` and dollar quoting) and both kinds of
comment, so that a ``;`` or a ``:name`` inside them is not mistaken for code.
"""

from __future__ import annotations

import re
from typing import Literal

__all__ = ["first_keyword", "named_parameters", "statements", "to_positional"]

Kind = Literal["code", "literal", "comment"]

_FIRST_WORD = re.compile(r"[A-Za-z]+")
_DOLLAR_TAG = re.compile(r"\$(?:[^\W\d]\w*)?\$")
#: ``:name`` but not the second colon of a PostgreSQL ``::type`` cast.
_NAMED = re.compile(r"(?<![:\w]):([^\W\d]\w*)")


def segments(query: str, postgres: bool) -> list[tuple[Kind, str]]:
    """``query`` cut into runs of code, literals (strings, quoted names) and comments."""
    parts: list[tuple[Kind, str]] = []
    code_start = i = 0
    n = len(query)
    while i < n:
        found = _special_end(query, i, postgres)
        if found is None:
            i += 1
            continue
        kind, end = found
        if code_start < i:
            parts.append(("code", query[code_start:i]))
        parts.append((kind, query[i:end]))
        i = code_start = end
    if code_start < n:
        parts.append(("code", query[code_start:]))
    return parts


def _special_end(query: str, i: int, postgres: bool) -> tuple[Kind, int] | None:
    """Where the comment or literal starting at ``i`` ends, or None for plain code."""
    char = query[i]
    if query.startswith("--", i):
        newline = query.find("\n", i)
        return "comment", len(query) if newline < 0 else newline
    if query.startswith("/*", i):
        return "comment", _comment_end(query, i, nested=postgres)
    if char in "'\"" or (not postgres and char in "[`"):
        backslash = postgres and char == "'" and _escape_string(query, i)
        return "literal", _quote_end(query, i, "]" if char == "[" else char, backslash)
    if postgres and char == "$" and (tag := _dollar_tag(query, i)):
        close = query.find(tag, i + len(tag))
        return "literal", len(query) if close < 0 else close + len(tag)
    return None


def statements(query: str, postgres: bool) -> list[str]:
    """The statements of ``query``: split at semicolons outside literals, comments dropped."""
    found: list[str] = []
    current: list[str] = []
    for kind, text in segments(query, postgres):
        if kind == "comment":
            current.append(" ")
        elif kind == "literal":
            current.append(text)
        else:
            pieces = text.split(";")
            current.append(pieces[0])
            for piece in pieces[1:]:
                found.append("".join(current))
                current = [piece]
    found.append("".join(current))
    return [text.strip() for text in found if text.strip()]


def first_keyword(statement: str) -> str:
    """The statement's first word in upper case (``""`` if it starts otherwise)."""
    match = _FIRST_WORD.match(statement)
    return match.group().upper() if match else ""


def named_parameters(query: str, postgres: bool) -> list[str]:
    """The ``:name`` placeholders of ``query`` outside literals and comments, first use first."""
    names: dict[str, None] = {}
    for kind, text in segments(query, postgres):
        if kind == "code":
            names.update((name, None) for name in _NAMED.findall(text))
    return list(names)


def to_positional(query: str) -> tuple[list[str], str]:
    """PostgreSQL: ``:name`` placeholders rewritten as ``$1``, ``$2``, ... (one per name)."""
    names: dict[str, int] = {}

    def number(match: re.Match[str]) -> str:
        return f"${names.setdefault(match.group(1), len(names) + 1)}"

    parts = [
        _NAMED.sub(number, text) if kind == "code" else text
        for kind, text in segments(query, postgres=True)
    ]
    return list(names), "".join(parts)


def _comment_end(query: str, start: int, nested: bool) -> int:
    depth, i = 0, start
    while i < len(query):
        if query.startswith("/*", i) and (nested or depth == 0):
            depth += 1
            i += 2
        elif query.startswith("*/", i):
            depth -= 1
            i += 2
            if depth == 0:
                return i
        else:
            i += 1
    return len(query)


def _quote_end(query: str, start: int, closing: str, backslash: bool) -> int:
    i = start + 1
    while i < len(query):
        char = query[i]
        if backslash and char == "\\":
            i += 2
        elif char == closing:
            if closing != "]" and query.startswith(closing, i + 1):
                i += 2
            else:
                return i + 1
        else:
            i += 1
    return len(query)


def _escape_string(query: str, quote: int) -> bool:
    """True for PostgreSQL's E'...' strings, where a backslash escapes the next character."""
    if quote == 0 or query[quote - 1] not in "eE":
        return False
    return quote == 1 or not (query[quote - 2].isalnum() or query[quote - 2] in "_$")


def _dollar_tag(query: str, start: int) -> str | None:
    if start > 0 and (query[start - 1].isalnum() or query[start - 1] in "_$"):
        return None
    match = _DOLLAR_TAG.match(query, start)
    return match.group() if match else None
