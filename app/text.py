"""Words for counts in what the app says ("1 video", "5 moments"), shared by the UI and the CLI."""

from __future__ import annotations


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """``n`` and the noun in the number it takes: ``counted(1, "video")`` -> "1 video", 3 -> "3 videos"."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"
