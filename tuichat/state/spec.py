"""One declared spec per command, next to its handler: the facts dispatch checks before the handler
runs (as in ergo's commands.go and ircstates' `@line_handler`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

H = TypeVar("H", bound=Callable[..., None])

_SPECS = "_command_specs"  # the attribute of a handler that holds its specs


@dataclass(frozen=True, slots=True)
class Spec:
    """What a command needs before its handler runs, each refused with its numeric."""

    name: str
    # the handler, a method of a command family: handler(state, user, line, now, out)
    handler: Callable[..., None]
    min_params: int = 0  # fewer parameters: 461
    before_registration: bool = False  # allowed before registration completes (else 451)
    oper: bool = False  # for IRC operators only (else 481, after the 461 check)
    free: bool = False  # costs nothing against the server's flood control


def command(
    name: str,
    *,
    min_params: int = 0,
    before_registration: bool = False,
    oper: bool = False,
    free: bool = False,
) -> Callable[[H], H]:
    """Declare the handler below as the one for `name` (stacked: one handler, several commands)."""

    def declare(handler: H) -> H:
        spec = Spec(name, handler, min_params, before_registration, oper, free)
        setattr(handler, _SPECS, (*getattr(handler, _SPECS, ()), spec))
        return handler

    return declare


def commands_of(cls: type) -> dict[str, Spec]:
    """The commands `cls` handles (declared in it and its bases), by name."""
    found: dict[str, Spec] = {}
    for klass in reversed(cls.__mro__):
        for value in vars(klass).values():
            for spec in getattr(value, _SPECS, ()):
                found[spec.name] = spec
    return found
