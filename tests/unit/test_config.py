"""Unit tests for the config file and the `[NICK@]HOST[:PORT]` target."""

from __future__ import annotations

from pathlib import Path

import pytest

from tuichat.config import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    NICKLEN,
    ConfigError,
    Settings,
    config_path,
    default_nick,
    default_username,
    load,
    parse_target,
)
from tuichat.net.protocol import is_valid_nick

# parse_target -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("localhost", (None, "localhost", DEFAULT_PORT)),
        ("chat.example.org", (None, "chat.example.org", DEFAULT_PORT)),
        ("chat.example.org:6697", (None, "chat.example.org", 6697)),
        ("alice@chat.example.org", ("alice", "chat.example.org", DEFAULT_PORT)),
        ("alice@chat.example.org:7000", ("alice", "chat.example.org", 7000)),
        ("[bot]@10.0.0.1:1", ("[bot]", "10.0.0.1", 1)),
        ("x@h:65535", ("x", "h", 65535)),
        ("[::1]", (None, "::1", DEFAULT_PORT)),
        ("[::1]:6697", (None, "::1", 6697)),
        ("alice@[::1]:6667", ("alice", "::1", 6667)),
        ("alice@[fe80::1%eth0]:7000", ("alice", "fe80::1%eth0", 7000)),
        ("::1", (None, "::1", DEFAULT_PORT)),
        ("2001:db8::42", (None, "2001:db8::42", DEFAULT_PORT)),
        ("bob@::1", ("bob", "::1", DEFAULT_PORT)),
        ("  host:6668  ", (None, "host", 6668)),
        ("a" * NICKLEN + "@h", ("a" * NICKLEN, "h", DEFAULT_PORT)),
    ],
)
def test_parse_target(text: str, expected: tuple[str | None, str, int]) -> None:
    assert parse_target(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("host:abc", "is not a port number"),
        ("host:0", "is not a port number"),
        ("host:65536", "is not a port number"),
        ("host:-1", "is not a port number"),
        ("host:+80", "is not a port number"),
        ("host:6667x", "is not a port number"),
        ("[::1]:99999", "is not a port number"),
        ("1alice@host", "is not a valid nick"),
        ("al ice@host", "is not a valid nick"),
        ("@host", "is not a valid nick"),
        ("a.b@host", "is not a valid nick"),
        ("a" * (NICKLEN + 1) + "@h", "is not a valid nick"),
        ("[::1", "missing ']'"),
        ("alice@[::1:6667", "missing ']'"),
        ("[::1]6667", "expected :PORT after ]"),
        ("[::1]x:1", "expected :PORT after ]"),
        ("", "no host given"),
        ("   ", "no host given"),
        (":6667", "no host given"),
        ("alice@", "no host given"),
        ("[]:6667", "no host given"),
    ],
)
def test_parse_target_errors(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_target(text)


@pytest.mark.parametrize("text", ["host:²", "host:٣", "[::1]:\uff16\uff16\uff16\uff17"])
def test_parse_target_rejects_non_ascii_digits(text: str) -> None:
    with pytest.raises(ConfigError, match="is not a port number"):
        parse_target(text)


def test_config_error_is_one_line() -> None:
    with pytest.raises(ConfigError) as info:
        parse_target("al ice@host")
    assert "\n" not in str(info.value)


# load ---------------------------------------------------------------------------------------------


def write(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "config.toml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def test_load_a_good_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        # comment
        nick = "alice"
        server = "chat.example.org:6697"
        channels = ["#general", "#random"]
        theme = "nord"
        realname = "Alice Liddell ü"
        password = "s3cret"
        """,
    )
    assert load(path) == Settings(
        nick="alice",
        host="chat.example.org",
        port=6697,
        channels=["#general", "#random"],
        theme="nord",
        realname="Alice Liddell ü",
        password="s3cret",
    )


def test_load_an_ipv6_server(tmp_path: Path) -> None:
    settings = load(write(tmp_path, 'server = "[::1]:7000"\n'))
    assert (settings.host, settings.port) == ("::1", 7000)


def test_load_an_empty_file_gives_defaults(tmp_path: Path) -> None:
    assert load(write(tmp_path, "")) == Settings()
    assert Settings().host == DEFAULT_HOST and Settings().port == DEFAULT_PORT


def test_load_an_empty_channel_list(tmp_path: Path) -> None:
    assert load(write(tmp_path, "channels = []\n")).channels == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('nick = "alice', "bad config file"),  # unterminated string
        ("nick = alice\n", "bad config file"),
        ("[server\n", "bad config file"),
        ('nick = "a"\nnick = "b"\n', "bad config file"),  # duplicate key
        ('nick = "alice"\nport = 6667\n', "unknown setting 'port'"),
        ('[server]\nhost = "h"\n', "server must be a non-empty string"),
        ('colour = "red"\n', "unknown setting 'colour'"),
        ("nick = 5\n", "nick must be a non-empty string"),
        ('nick = ""\n', "nick must be a non-empty string"),
        ("theme = true\n", "theme must be a non-empty string"),
        ('realname = ["x"]\n', "realname must be a non-empty string"),
        ("password = 1.5\n", "password must be a non-empty string"),
        ('channels = "#general"\n', "channels must be a list of names"),
        ("channels = [1, 2]\n", "channels must be a list of names"),
        ('channels = ["#a", ""]\n', "channels must be a list of names"),
        ('nick = "1alice"\n', "'1alice' is not a valid nick"),
        ('nick = "al ice"\n', "'al ice' is not a valid nick"),
        (f'nick = "{"a" * (NICKLEN + 1)}"\n', "is not a valid nick"),
        ('server = "host:99999"\n', "is not a port number"),
        ('server = "[::1"\n', "missing"),
    ],
)
def test_load_bad_files(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[")) as info:
        load(path)
    assert "\n" not in str(info.value)


def test_errors_name_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "nick = 5\n")
    with pytest.raises(ConfigError, match=str(path)):
        load(path)


def test_load_a_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = write(tmp_path, b'realname = "Zo\xeb"\n')  # Latin-1
    with pytest.raises(ConfigError, match="bad config file"):
        load(path)


def test_missing_explicit_file_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match="does not exist"):
        load(path)


def test_a_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load(tmp_path)


def test_missing_default_file_gives_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert config_path() == tmp_path / "tuichat" / "config.toml"
    assert load() == Settings()


def test_default_file_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    (tmp_path / "tuichat").mkdir()
    (tmp_path / "tuichat" / "config.toml").write_text('nick = "carol"\n', encoding="utf-8")
    assert load().nick == "carol"


def test_bad_default_file_is_still_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    (tmp_path / "tuichat").mkdir()
    (tmp_path / "tuichat" / "config.toml").write_text("nick = \n", encoding="utf-8")
    with pytest.raises(ConfigError, match="bad config file"):
        load()


def test_empty_xdg_config_home_falls_back_to_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", "")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert config_path() == tmp_path / ".config" / "tuichat" / "config.toml"
    assert load() == Settings()


# defaults from the login name ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("login", "nick"),
    [
        ("alice", "alice"),
        ("jean.dupont", "jean_dupont"),
        ("1984user", "u1984user"),
        ("-dash", "u-dash"),
        ("", "guest"),
        ("x" * 40, "x" * NICKLEN),
        ("élodie", "_lodie"),
    ],
)
def test_default_nick(monkeypatch: pytest.MonkeyPatch, login: str, nick: str) -> None:
    monkeypatch.setattr("getpass.getuser", lambda: login)
    assert default_nick() == nick
    assert is_valid_nick(default_nick(), NICKLEN)


def test_default_nick_and_username_without_a_login(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail() -> str:
        raise OSError("no login name")

    monkeypatch.setattr("getpass.getuser", fail)
    assert default_nick() == "guest"
    assert default_username() == "tuichat"


def test_default_username(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("getpass.getuser", lambda: "jean dupont@corp")
    assert default_username() == "jeandupontcorp"
    monkeypatch.setattr("getpass.getuser", lambda: "ü" * 5)
    assert default_username() == "tuichat"
