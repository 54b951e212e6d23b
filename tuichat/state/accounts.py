"""Accounts: logging in (SASL PLAIN) and registering (draft/account-registration)."""

from __future__ import annotations

import base64
import binascii
import math

from tuichat.limits import address_key
from tuichat.net import protocol as p
from tuichat.net.protocol import Line, casefold
from tuichat.state.core import Core
from tuichat.state.model import User
from tuichat.state.outbox import Outbox
from tuichat.state.spec import command
from tuichat.store import check_password, hash_password, new_salt

MAX_SASL_FAILURES = 3  # wrong passwords before the connection is closed


class Accounts(Core):
    """AUTHENTICATE, REGISTER, VERIFY."""

    @command("AUTHENTICATE", min_params=1, before_registration=True)
    def _authenticate(self, user: User, line: Line, now: float, out: Outbox) -> None:
        arg = line.params[0]
        if user.account is not None:
            self._reply(out, user, p.ERR_SASLALREADY, "You have already authenticated")
            return
        if self.store is None or "sasl" not in user.caps:
            self._reply(out, user, p.ERR_SASLFAIL, "SASL authentication failed")
            return
        if arg == "*":
            user.sasl = None
            self._reply(out, user, p.ERR_SASLABORTED, "SASL authentication aborted")
            return
        if user.sasl is None:
            if arg.upper() != "PLAIN":
                self._reply(out, user, p.RPL_SASLMECHS, "PLAIN", "are available SASL mechanisms")
                self._reply(out, user, p.ERR_SASLFAIL, "SASL authentication failed")
                return
            if self.config.require_tls_auth and not user.tls:
                self._reply(out, user, p.ERR_SASLFAIL, "SASL PLAIN needs a TLS connection here")
                return
            user.sasl = ("PLAIN", "")
            out.send(user, b"AUTHENTICATE +\r\n")
            return
        mechanism, data = user.sasl
        if arg != "+":
            data += arg
        if len(data) > 4 * 400:
            user.sasl = None
            self._reply(out, user, p.ERR_SASLTOOLONG, "SASL message too long")
            return
        if len(arg) == 400:  # more to come
            user.sasl = (mechanism, data)
            return
        user.sasl = None
        try:
            fields = base64.b64decode(data, validate=True).split(b"\0")
            authzid, authcid, password = (field.decode("utf-8") for field in fields)
        except (binascii.Error, ValueError):
            self._reply(out, user, p.ERR_SASLFAIL, "SASL authentication failed")
            return
        name = authcid or authzid
        if authzid and casefold(authzid) != casefold(authcid):
            self._reply(out, user, p.ERR_SASLFAIL, "SASL authentication failed")
            return
        self._check_login(user, name, password, now, out)

    def _check_login(self, user: User, name: str, password: str, now: float, out: Outbox) -> None:
        """Verify a password outside the state lock, then log in or fail."""
        assert self.store is not None
        key = ("account", casefold(name))
        wait = self._guess_wait(user, key, now)
        if wait:
            # refused unchecked, and not one of this connection's failures: nothing was guessed
            text = f"Too many failed logins; try again in {wait} seconds"
            self._reply(out, user, p.ERR_SASLFAIL, text)
            return
        # counted before the check, which runs outside the lock: a burst of attempts from many
        # connections at once cannot all pass before the first failure is known
        self._guessed(user, key, now)
        found = self.store.account(casefold(name))
        if found is None:
            # hash anyway, so a missing account takes as long as a wrong password
            salt, digest, display = new_salt(), b"", name
        else:
            display, salt, digest = found

        def verify() -> object:
            return check_password(password, salt, digest) and found is not None

        def then(ok: object, now: float, follow: Outbox) -> None:
            if ok:
                self._guesses_by_name.succeeded(key)
                self._guesses_by_address.forgive(address_key(user.host), now)
                assert self.store is not None
                self.store.logged_in(casefold(display), int(now * 1000))
            if user.gone:
                return
            if ok:
                self._login(user, display, now, follow)
                self._reply(follow, user, p.RPL_SASLSUCCESS, "SASL authentication successful")
            else:
                self._reply(follow, user, p.ERR_SASLFAIL, "SASL authentication failed")
                user.sasl_failures += 1
                if user.sasl_failures >= MAX_SASL_FAILURES:  # no guessing passwords here
                    self.disconnect(user, "Too many failed logins", now, follow)

        out.defer(verify, then)

    def _login(self, user: User, account: str, now: float, out: Outbox) -> None:
        guest = user.party
        user.account = account
        if guest is not None:
            self._adopt(user, guest, out)
        if user.nick and casefold(user.nick) == casefold(account):
            user.nick_deadline = None
        mask = user.prefix or f"{user.nick or '*'}!{user.username or '*'}@{user.host}"
        self._reply(out, user, p.RPL_LOGGEDIN, mask, account, f"You are now logged in as {account}")
        if user.registered:
            data = self._from(user, "ACCOUNT", account, trailing=False)
            for other in self._neighbours(user):
                if "account-notify" in other.caps:
                    out.send(other, data)

    @command("REGISTER", min_params=3, before_registration=True)
    def _register(self, user: User, line: Line, now: float, out: Outbox) -> None:
        name, _email, password = line.params[0], line.params[1], line.params[2]
        if name == "*":
            name = user.nick
        if self.store is None or not self.config.open_registration:
            self._fail(out, user, "REGISTER", "DISALLOWED", name or "*", "Registration is closed")
            return
        if user.account is not None:
            self._fail(
                out,
                user,
                "REGISTER",
                "ALREADY_AUTHENTICATED",
                user.account,
                "You are already logged in",
            )
            return
        if not name:
            self._fail(out, user, "REGISTER", "NEED_NICK", "*", "Choose a nick first")
            return
        if not p.is_valid_nick(name, self.config.nicklen):
            self._fail(
                out,
                user,
                "REGISTER",
                "BAD_ACCOUNT_NAME",
                name or "*",
                "Account names follow the rules for nicks",
            )
            return
        if user.nick and casefold(name) != casefold(user.nick):
            self._fail(
                out,
                user,
                "REGISTER",
                "ACCOUNT_NAME_MUST_BE_NICK",
                name,
                "Register your current nick",
            )
            return
        if len(password) < 8:
            self._fail(
                out, user, "REGISTER", "WEAK_PASSWORD", name, "Passwords need at least 8 characters"
            )
            return
        if self.store.account(casefold(name)) is not None:
            self._fail(out, user, "REGISTER", "ACCOUNT_EXISTS", name, "Account already exists")
            return
        if casefold(name) in self.expiring:
            text = "That account is being deleted; try again in a minute"
            self._fail(out, user, "REGISTER", "TEMPORARILY_UNAVAILABLE", name, text)
            return
        address = address_key(user.host)
        if not self._registrations.take(address, 1, now):
            minutes = math.ceil(self._registrations.retry_after(address, 1, now) / 60)
            text = f"Too many accounts registered from your address; try again in {minutes} min"
            self._fail(out, user, "REGISTER", "TEMPORARILY_UNAVAILABLE", name, text)
            return
        salt = new_salt()

        def digest() -> object:
            return hash_password(password, salt)

        def then(result: object, now: float, follow: Outbox) -> None:
            assert self.store is not None and isinstance(result, bytes)
            if user.gone:
                return
            if not self.store.create_account(casefold(name), name, salt, result, int(now * 1000)):
                self._fail(
                    follow, user, "REGISTER", "ACCOUNT_EXISTS", name, "Account already exists"
                )
                return
            server = self.config.server_name
            success = Line("REGISTER", ("SUCCESS", name, "Account created"), source=server)
            follow.send(user, success.encode(trailing=True))
            self._login(user, name, now, follow)

        out.defer(digest, then)

    @command("VERIFY", min_params=2, before_registration=True)
    def _verify(self, user: User, line: Line, now: float, out: Outbox) -> None:
        # accounts need no e-mail check here, so there is never a code to verify
        self._fail(
            out,
            user,
            "VERIFY",
            "INVALID_CODE",
            line.params[0],
            "No verification is pending for this account",
        )

    def expire_accounts(self, before: float) -> list[str]:
        """Delete the accounts registered before `before` that nobody logged in to since, but
        those logged in now (see Store.expire_accounts); return their folded names. Their
        names cannot be registered again until `expired` says their history is gone too."""
        if self.store is None:
            return []
        in_use = {casefold(user.account) for user in self.clients if user.account is not None}
        names = self.store.expire_accounts(int(before * 1000), in_use)
        if names:
            gone = set(names)
            self.expiring |= gone
            for chan in self.channels.values():
                if chan.founder in gone:
                    chan.founder = None
        return names

    def expired(self, names: list[str]) -> None:
        """The private history of the expired accounts `names` is deleted: free the names."""
        self.expiring.difference_update(names)
