"""The trust-on-first-use question: a server's self-signed certificate, seen for the first time."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from tuichat.text import plain


class TrustDialog(ModalScreen[bool]):
    """Shows the fingerprint and asks whether to trust it, like ssh does. Dismisses with the
    answer: True to trust (and remember) it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "trust"),
        Binding("n,escape", "answer(False)", "refuse"),
    ]

    def __init__(self, host: str, port: int, fingerprint: str) -> None:
        super().__init__()
        self.host = host
        self.port = port
        self.fingerprint = fingerprint

    def compose(self) -> ComposeResult:
        text = Text()
        text.append(f"The server {plain(self.host)} port {self.port} has a certificate that no ")
        text.append("authority vouches for (self-signed). Its SHA-256 fingerprint is:\n\n")
        text.append(self.fingerprint, style="bold")
        text.append(
            "\n\nCompare it with the one its operator sees (tuichat serve prints it at start). "
            "Trust it? tuichat will remember it and refuse this server if it ever changes."
        )
        with Vertical(id="trust-dialog"):
            yield Static(text, id="trust-text")
            with Horizontal(id="trust-buttons"):
                yield Button("Trust (y)", variant="warning", id="trust-yes")
                yield Button("Refuse (n)", variant="primary", id="trust-no")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "trust-yes")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)
