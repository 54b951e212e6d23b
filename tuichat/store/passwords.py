"""Account passwords: salted scrypt hashes, computed a bounded number at a time."""

from __future__ import annotations

import hashlib
import hmac
import os
import threading

# scrypt cost: about 16 MiB and a few tens of milliseconds; verified outside the state lock
SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1

# scrypt takes 16 MiB and releases the GIL: a crowd of logins at once must not take GBs
_HASHING = threading.BoundedSemaphore(max(1, os.cpu_count() or 1))


def hash_password(password: str, salt: bytes) -> bytes:
    with _HASHING:
        return hashlib.scrypt(
            password.encode("utf-8"), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32
        )


def check_password(password: str, salt: bytes, expected: bytes) -> bool:
    return hmac.compare_digest(hash_password(password, salt), expected)


def new_salt() -> bytes:
    return os.urandom(16)
