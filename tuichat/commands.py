"""What the user typed, turned into actions: lines to send and things to show. Pure.

`interpret(text, window, nick)` returns a list of actions that the app carries out; it never
touches the network or the screen itself, so every command can be unit-tested. `completions`
says what Tab may complete a word to.
"""

from __future__ import annotations

from dataclasses import dataclass

from tuichat.client_state import ACTION, ERROR, INFO, MESSAGE, NOTICE, ClientState, Window
from tuichat.net.protocol import Line, casefold


@dataclass(frozen=True)
class Send:
    """A line for the server (a `Line`, or raw text from /quote)."""

    line: Line | str


@dataclass(frozen=True)
class ShowOwn:
    """Show a message we sent in `target`'s window."""

    target: str
    text: str
    kind: str = MESSAGE


@dataclass(frozen=True)
class OpenWindow:
    name: str
    select: bool = True


@dataclass(frozen=True)
class CloseWindow:
    pass


@dataclass(frozen=True)
class ClearWindow:
    pass


@dataclass(frozen=True)
class Quit:
    reason: str


@dataclass(frozen=True)
class Show:
    """A line of help or an error in the current window."""

    text: str
    kind: str = INFO


Action = Send | ShowOwn | OpenWindow | CloseWindow | ClearWindow | Quit | Show

# the longest text we put in one PRIVMSG: what is left of 512 bytes once the server has added
# ":nick!user@host PRIVMSG target :" and CRLF, with room for a long nick and host
MESSAGE_BYTES = 400

HELP: dict[str, tuple[str, str]] = {
    "join": ("/join #channel [key]", "join a channel (its window opens)"),
    "part": ("/part [#channel] [reason]", "leave a channel (default: this one)"),
    "msg": ("/msg NICK|#channel text", "send a message without switching windows"),
    "query": ("/query NICK [text]", "open a private conversation"),
    "me": ("/me text", "describe an action: * nick text"),
    "notice": ("/notice NICK|#channel text", "send a notice"),
    "nick": ("/nick NEWNICK", "change your nick"),
    "topic": ("/topic [text]", "show or set this channel's topic"),
    "names": ("/names [#channel]", "list who is in a channel"),
    "whois": ("/whois NICK", "show who somebody is"),
    "away": ("/away [reason]", "mark yourself away"),
    "back": ("/back", "you are back: no longer away"),
    "invite": ("/invite NICK [#channel]", "invite somebody to this or another channel"),
    "kick": ("/kick NICK [reason]", "remove somebody from this channel (operators)"),
    "mode": ("/mode [target] +modes [args]", "show or change channel or user modes"),
    "ban": ("/ban NICK|MASK", "ban from this channel (nick!user@host mask; operators)"),
    "unban": ("/unban MASK", "lift a ban in this channel (operators)"),
    "list": ("/list", "list the server's channels"),
    "close": ("/close", "close this window (leaves the channel)"),
    "clear": ("/clear", "clear this window's log"),
    "quote": ("/quote RAW LINE", "send a raw IRC line"),
    "register": ("/register PASSWORD", "register your nick as an account (log in with --password)"),
    "help": ("/help [command]", "this help"),
    "quit": ("/quit [reason]", "leave the server and exit"),
}
COMMANDS = sorted(HELP)


def _messages(command: str, target: str, text: str, kind: str) -> list[Action]:
    from tuichat.net.protocol import split_text

    actions: list[Action] = []
    room = MESSAGE_BYTES - len(target.encode()) - (len("\x01ACTION \x01") if kind == ACTION else 0)
    for piece in split_text(text, room):
        wire = f"\x01ACTION {piece}\x01" if kind == ACTION else piece
        actions.append(Send(Line(command, (target, wire))))
        actions.append(ShowOwn(target, piece, kind))
    return actions


def _need(usage: str) -> list[Action]:
    return [Show(f"usage: {usage}", ERROR)]


def interpret(text: str, window: Window, chantypes: str = "#&") -> list[Action]:
    """The actions for one line typed in `window`."""
    if not text.strip():
        return []
    if not text.startswith("/") or text.startswith("//"):
        body = text[1:] if text.startswith("//") else text
        if window.kind == "server":
            return [Show("this is the server window: /join #channel or /msg NICK text", ERROR)]
        return _messages("PRIVMSG", window.name, body, MESSAGE)
    word, _, rest = text[1:].partition(" ")
    command = word.lower()
    rest = rest.strip()
    args = rest.split()
    in_channel = window.kind == "channel"

    def is_channel(name: str) -> bool:
        return bool(name) and name[0] in chantypes

    if command == "join":
        if not args:
            return _need(HELP["join"][0])
        names = ",".join(n if is_channel(n) else "#" + n for n in args[0].split(",") if n)
        return [Send(Line("JOIN", (names, *args[1:2])))]
    if command in ("part", "leave"):
        if args and is_channel(args[0]):
            channel, reason = args[0], rest[len(args[0]) :].strip()
        elif in_channel:
            channel, reason = window.name, rest
        else:
            return _need(HELP["part"][0])
        return [Send(Line("PART", (channel, reason) if reason else (channel,)))]
    if command in ("msg", "notice"):
        if len(args) < 2:
            return _need(HELP[command][0])
        target = args[0]
        body = rest[len(target) :].strip()
        if command == "notice":
            return _messages("NOTICE", target, body, NOTICE)
        return _messages("PRIVMSG", target, body, MESSAGE)
    if command == "query":
        if not args:
            return _need(HELP["query"][0])
        actions: list[Action] = [OpenWindow(args[0])]
        body = rest[len(args[0]) :].strip()
        if body:
            actions += _messages("PRIVMSG", args[0], body, MESSAGE)
        return actions
    if command == "me":
        if window.kind == "server":
            return [Show("/me works in a channel or a private conversation", ERROR)]
        if not rest:
            return _need(HELP["me"][0])
        return _messages("PRIVMSG", window.name, rest, ACTION)
    if command == "nick":
        if len(args) != 1:
            return _need(HELP["nick"][0])
        return [Send(Line("NICK", (args[0],)))]
    if command == "topic":
        if args and is_channel(args[0]):
            channel, topic = args[0], rest[len(args[0]) :].strip()
        elif in_channel:
            channel, topic = window.name, rest
        else:
            return _need(HELP["topic"][0])
        return [Send(Line("TOPIC", (channel, topic) if topic else (channel,)))]
    if command == "names":
        channel = args[0] if args else (window.name if in_channel else "")
        if not channel:
            return _need(HELP["names"][0])
        return [Send(Line("NAMES", (channel,)))]
    if command == "whois":
        if not args:
            return _need(HELP["whois"][0])
        return [Send(Line("WHOIS", (args[0],)))]
    if command == "away":
        return [Send(Line("AWAY", (rest or "away",)))]
    if command == "back":
        return [Send(Line("AWAY"))]
    if command == "invite":
        if not args or (len(args) < 2 and not in_channel):
            return _need(HELP["invite"][0])
        channel = args[1] if len(args) > 1 else window.name
        return [Send(Line("INVITE", (args[0], channel)))]
    if command == "kick":
        if args and is_channel(args[0]):
            channel, args, rest = args[0], args[1:], rest[len(args[0]) :].strip()
        elif in_channel:
            channel = window.name
        else:
            return _need(HELP["kick"][0])
        if not args:
            return _need(HELP["kick"][0])
        reason = rest[len(args[0]) :].strip()
        return [Send(Line("KICK", (channel, args[0], reason) if reason else (channel, args[0])))]
    if command == "mode":
        if not args:
            if not in_channel:
                return _need(HELP["mode"][0])
            return [Send(Line("MODE", (window.name,)))]
        if args[0][0] in "+-" and in_channel:
            return [Send(Line("MODE", (window.name, *args)))]
        return [Send(Line("MODE", tuple(args)))]
    if command in ("ban", "unban"):
        if len(args) != 1 or not in_channel:
            return _need(HELP[command][0])
        mask = args[0] if any(ch in args[0] for ch in "!@*") else f"{args[0]}!*@*"
        sign = "+" if command == "ban" else "-"
        return [Send(Line("MODE", (window.name, f"{sign}b", mask)))]
    if command == "list":
        return [Send(Line("LIST", tuple(args[:1])))]
    if command == "close":
        return [CloseWindow()]
    if command == "clear":
        return [ClearWindow()]
    if command == "register":
        if len(args) != 1:
            return _need(HELP["register"][0])
        return [Send(Line("REGISTER", ("*", "*", args[0])))]
    if command in ("quote", "raw"):
        if not rest:
            return _need(HELP["quote"][0])
        return [Send(rest)]
    if command == "help":
        if args:
            name = args[0].lstrip("/").lower()
            if name not in HELP:
                return [Show(f"no such command: /{name}", ERROR)]
            usage, what = HELP[name]
            return [Show(f"{usage} — {what}")]
        lines: list[Action] = [Show("commands (Tab completes; /help COMMAND for one):")]
        lines += [Show(f"  {HELP[name][0]:<30} {HELP[name][1]}") for name in COMMANDS]
        lines.append(
            Show(
                "keys: Ctrl+N/Ctrl+P or Alt+1..9 switch windows, PageUp/PageDown scroll, "
                "Up/Down input history, Ctrl+Q quit"
            )
        )
        return lines
    if command in ("quit", "exit"):
        return [Quit(rest)]
    return [Show(f"unknown command /{word} (try /help)", ERROR)]


def completions(word: str, at_start: bool, state: ClientState) -> list[str]:
    """What Tab may complete `word` to: a command at the start of the line, a channel, or a nick
    of the current window (and a query's partner)."""
    folded = casefold(word)
    if at_start and word.startswith("/"):
        pool = ["/" + name for name in COMMANDS]
    elif word[:1] in state.chantypes:
        pool = [w.name for w in state.windows.values() if w.kind == "channel"]
    else:
        pool = sorted(state.nicks(state.current), key=casefold)
        window = state.windows.get(state.current)
        if window is not None and window.kind == "query":
            pool.append(window.name)
    return [name for name in pool if casefold(name).startswith(folded)]
