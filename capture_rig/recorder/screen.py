"""The prompter's terminal screen: drawing only (the logic is :mod:`capture_rig.recorder.prompter`).

:func:`render` turns the session into lines of text (pure, tested headless); :class:`CursesScreen`
puts them on the terminal with the sentence in bold in the middle of the screen, and reads keys.
"""

from __future__ import annotations

import unicodedata

from capture_rig.recorder.prompter import KEYS, PromptSession


def display_width(text: str) -> int:
    """Columns ``text`` takes on a terminal (CJK characters take two)."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def wrap(text: str, columns: int) -> list[str]:
    lines, line = [], ""
    for ch in text:
        if display_width(line + ch) > columns:
            lines.append(line)
            line = ""
        line += ch
    return lines + ([line] if line else [])


def render(session: PromptSession, width: int = 80, height: int = 24, message: str = "") -> list[tuple[str, str]]:
    """The screen as (style, text) lines: styles ``title``, ``sentence``, ``status``, ``help``."""
    counts = session.counts()
    total = len(session.items)
    finished = total - counts["pending"]
    lines = [
        (
            "title",
            f"actor {session.plan['actor_id']}   {finished}/{total} done   "
            f"recorded {counts['recorded']}  skipped {counts['skipped']}  bad {counts['bad']}",
        )
    ]
    item = session.current
    if item is None:
        body = [("sentence", "All sentences of the plan are done. Thank you!")]
    else:
        body = [
            ("status", f"emotion: {item['emotion'].upper()}      take {item['take_id']}  sentence {item['sentence_id']}"),
            ("status", ""),
        ]
        # the sentence spaced out so that it reads large; wrapped to the screen
        spaced = " ".join(item["text"])
        body += [("sentence", line) for line in wrap(spaced, max(10, width - 8))]
    state = "● RECORDING — press r to stop" if session.recording else "ready — press r to record"
    top = max(1, (height - len(body) - 4) // 2)
    lines += [("status", "")] * (top - 1) + body + [("status", ""), ("status", state)]
    if message:
        lines.append(("status", message))
    lines += [("status", "")] * max(0, height - len(lines) - 1)
    lines.append(("help", "   ".join(f"{k}: {v}" for k, v in KEYS.items())))
    return lines[:height]


class CursesScreen:  # pragma: no cover - needs a terminal
    def __init__(self, stdscr):
        import curses

        self.curses = curses
        self.stdscr = stdscr
        curses.curs_set(0)

    def draw(self, session: PromptSession, message: str = "") -> None:
        height, width = self.stdscr.getmaxyx()
        self.stdscr.erase()
        styles = {"title": self.curses.A_REVERSE, "sentence": self.curses.A_BOLD, "status": 0, "help": self.curses.A_DIM}
        for row, (style, text) in enumerate(render(session, width, height, message)):
            column = max(0, (width - display_width(text)) // 2) if style == "sentence" else 1
            try:
                self.stdscr.addstr(row, column, text, styles[style])
            except self.curses.error:  # text wider than the window
                pass
        self.stdscr.refresh()

    def key(self) -> str:
        return chr(self.stdscr.getch())
