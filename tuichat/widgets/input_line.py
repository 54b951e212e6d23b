"""The input line: history on Up/Down, Tab completion of nicks, commands and channels."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from textual.binding import Binding, BindingType
from textual.widgets import Input

HISTORY = 500


class InputLine(Input):
    """An `Input` with history and completion. `candidates(word, at_start)` lists what Tab can
    complete `word` to."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "history(-1)", "previous input", show=False),
        Binding("down", "history(1)", "next input", show=False),
        Binding("tab", "complete", "complete", show=False, priority=True),
    ]

    def __init__(
        self, candidates: Callable[[str, bool], list[str]], *, id: str | None = None
    ) -> None:
        super().__init__(placeholder="type a message, or /help", id=id)
        self._candidates = candidates
        self.history: list[str] = []
        self._history_pos = 0
        self._draft = ""
        self._completion: tuple[str, int, list[str], int] | None = None

    def remember(self, text: str) -> None:
        if text and (not self.history or self.history[-1] != text):
            self.history.append(text)
            del self.history[:-HISTORY]
        self._history_pos = len(self.history)
        self._draft = ""

    def action_history(self, delta: int) -> None:
        if not self.history:
            return
        if self._history_pos == len(self.history):
            self._draft = self.value
        pos = max(0, min(len(self.history), self._history_pos + delta))
        self._history_pos = pos
        self.value = self.history[pos] if pos < len(self.history) else self._draft
        self.cursor_position = len(self.value)

    def action_complete(self) -> None:
        value, cursor = self.value, self.cursor_position
        if self._completion is not None and self._completion[0] == value[:cursor]:
            _, start, matches, index = self._completion
            index = (index + 1) % len(matches)
        else:
            start = value.rfind(" ", 0, cursor) + 1
            word = value[start:cursor]
            if not word:
                return
            matches = self._candidates(word, start == 0)
            if not matches:
                return
            index = 0
        choice = matches[index]
        if start == 0 and not choice.startswith(("/", "#", "&")):
            choice += ":"
        completed = value[:start] + choice + " "
        rest = value[cursor:]
        self.value = completed + rest
        self.cursor_position = len(completed)
        self._completion = (completed, start, matches, index)
