"""Terminal output: aligned tables that respect the width of Chinese characters, trees, colour."""

from __future__ import annotations

import os
import sys
import unicodedata


def width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def pad(text: str, n: int) -> str:
    return text + " " * max(0, n - width(text))


def clip(text: str, n: int) -> str:
    if width(text) <= n:
        return text
    out, used = "", 0
    for ch in text:
        w = width(ch)
        if used + w > n - 1:
            break
        out, used = out + ch, used + w
    return out + "…"


def table(headers: list[str], rows: list[list], max_width: int | None = None) -> str:
    cells = [[str(c) for c in headers]] + [["" if c is None else str(c) for c in r] for r in rows]
    if max_width:
        cells = [[clip(c, max_width) for c in r] for r in cells]
    widths = [max(width(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(pad(c, w) for c, w in zip(r, widths)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def colour_enabled() -> bool:
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR")


def paint(text: str, colour: str) -> str:
    codes = {"green": "32", "red": "31", "yellow": "33", "grey": "90", "bold": "1", "cyan": "36"}
    return f"\033[{codes[colour]}m{text}\033[0m" if colour_enabled() else text


VERDICT_COLOURS = {"supported": "green", "refuted": "red", "pending": "yellow", "not checkable": "grey"}


def badge(verdict: str) -> str:
    return paint(f"[{verdict}]", VERDICT_COLOURS.get(verdict, "bold"))
