"""The optional config file (`~/.config/tuichat/config.toml`) and the `[NICK@]HOST[:PORT]` target.

Example config:

    nick = "alice"
    server = "chat.example.org:6667"
    channels = ["#general", "#random"]
    theme = "nord"
    realname = "Alice Liddell"
"""

from __future__ import annotations

import getpass
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from tuichat.net.protocol import DEFAULT_PORT, NICKLEN, is_valid_nick

DEFAULT_HOST = "localhost"


class ConfigError(Exception):
    """A bad argument or config file; its text is the one line shown to the user."""


@dataclass
class Settings:
    nick: str | None = None
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    channels: list[str] = field(default_factory=list)
    theme: str | None = None
    realname: str | None = None
    password: str | None = None


def config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "tuichat" / "config.toml"


def load(path: Path | None = None) -> Settings:
    """Read the config file; a missing default file is fine, a missing named one is not."""
    explicit = path is not None
    path = path or config_path()
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        if explicit:
            raise ConfigError(f"config file {path} does not exist") from None
        return Settings()
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"bad config file {path}: {error}") from None
    except OSError as error:
        raise ConfigError(f"cannot read config file {path}: {error.strerror}") from None
    settings = Settings()
    for key, value in data.items():
        if key in ("nick", "theme", "realname", "password", "server"):
            if not isinstance(value, str) or not value:
                raise ConfigError(f"bad config file {path}: {key} must be a non-empty string")
            if key == "server":
                _, settings.host, settings.port = parse_target(value)
            elif key == "nick":
                if not is_valid_nick(value, NICKLEN):
                    raise ConfigError(f"bad config file {path}: {value!r} is not a valid nick")
                settings.nick = value
            else:
                setattr(settings, key, value)
        elif key == "channels":
            if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
                raise ConfigError(f"bad config file {path}: channels must be a list of names")
            settings.channels = list(value)
        else:
            raise ConfigError(f"bad config file {path}: unknown setting {key!r}")
    return settings


def parse_target(text: str, default_port: int = DEFAULT_PORT) -> tuple[str | None, str, int]:
    """`alice@host:6667`, `host`, `alice@[::1]:6667`, `::1` -> (nick or None, host, port)."""
    nick: str | None = None
    rest = text.strip()
    if "@" in rest:
        nick, _, rest = rest.partition("@")
        if not is_valid_nick(nick, NICKLEN):
            raise ConfigError(
                f"{nick!r} is not a valid nick (letters, digits, [ ] \\ ` _ ^ {{ | }} -)"
            )
    port_text = ""
    if rest.startswith("["):
        end = rest.find("]")
        if end < 0:
            raise ConfigError(f"{text!r}: missing ']' after an IPv6 address")
        host, after = rest[1:end], rest[end + 1 :]
        if after:
            if not after.startswith(":"):
                raise ConfigError(f"{text!r}: expected :PORT after ]")
            port_text = after[1:]
    elif rest.count(":") == 1:
        host, port_text = rest.split(":")
    else:
        host = rest  # a name, an IPv4 address, or a bare IPv6 address
    if not host:
        raise ConfigError(f"{text!r}: no host given")
    port = default_port
    if port_text or rest.endswith(":"):
        if not re.fullmatch(r"[0-9]{1,5}", port_text) or not 0 < int(port_text) < 65536:
            raise ConfigError(f"{text!r}: {port_text!r} is not a port number")
        port = int(port_text)
    return nick, host, port


def default_username() -> str:
    try:
        name = getpass.getuser()
    except Exception:
        return "tuichat"
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "", name)
    return cleaned[:16] or "tuichat"


def default_nick() -> str:
    """The login name, made into a valid nick."""
    try:
        name = getpass.getuser()
    except Exception:
        name = ""
    nick = re.sub(r"[^A-Za-z0-9\[\]\\`_^{|}-]", "_", name)[:NICKLEN]
    if nick and not is_valid_nick(nick, NICKLEN):
        nick = ("u" + nick)[:NICKLEN]
    return nick if is_valid_nick(nick, NICKLEN) else "guest"
