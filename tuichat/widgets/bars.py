"""The two one-line bars around the log: the topic bar above it (what the current window is) and
the status line below it (who and where you are, the connection, who is typing)."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from tuichat.client_state import Window
from tuichat.text import plain, render


class TopicBar(Static):
    """The current window's name and topic (a channel), or what kind of window it is."""

    def show(self, window: Window, network: str) -> None:
        if window.kind == "channel":
            topic = render(window.topic) if window.topic else Text("(no topic)", style="dim")
            text = Text(plain(window.name) + "  ", style="bold").append_text(topic)
        elif window.kind == "query":
            text = Text(f"private conversation with {plain(window.name)}", style="bold")
        else:
            text = Text(f"{plain(network)} — server messages", style="bold")
        self.update(text)


class StatusLine(Static):
    """Our nick, the server, the connection (and its lag), lines waiting to be sent, typers."""

    def show(
        self,
        nick: str,
        server: str,
        connection: str,
        *,
        insecure: bool,
        lag: float | None,
        unsent: int,
        typers: list[str],
    ) -> None:
        status = Text()
        status.append(plain(nick), style="bold")
        status.append(f"  {plain(server)}  ")
        style = "green" if connection == "connected" else "bold red"
        status.append(connection, style=style)
        if insecure:
            status.append("  INSECURE: certificate not checked", style="bold red")
        if lag is not None and connection == "connected":
            status.append(f"  lag {lag * 1000:.0f} ms", style="dim")
        if unsent:
            status.append(f"  {unsent} unsent", style="bold yellow")
        if typers:
            names = ", ".join(plain(nick) for nick in typers)
            verb = "is" if len(typers) == 1 else "are"
            status.append(f"  {names} {verb} typing…", style="italic")
        self.update(status)
