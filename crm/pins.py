"""Service PINs: stored only as an argon2id hash, compared in constant time, never logged.

A 4–8 digit PIN has too little entropy for any hash cost to stop an offline search by someone who
holds the database, so the real defences are elsewhere: hashes never leave the database (not in the
API, exports or logs) and a caller gets three attempts per verification call. The argon2id cost is
therefore tuned for bulk work — a 10,000-vehicle import hashes in a few seconds on two cores — while
each guess still costs a memory-hard evaluation.
"""

from __future__ import annotations

import re

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
PIN_RE = re.compile(r"^[0-9]{4,8}$")


def is_valid_pin(pin: str) -> bool:
    return bool(PIN_RE.match(pin))


def hash_pin(pin: str) -> str:
    if not is_valid_pin(pin):
        raise ValueError("PIN must be 4 to 8 digits")
    return _hasher.hash(pin)


def verify_pin(pin_hash: str | None, pin: str) -> bool:
    """Constant-time check (argon2's own comparison); False for a missing or corrupt hash."""
    if not pin_hash or not is_valid_pin(pin):
        return False
    try:
        return _hasher.verify(pin_hash, pin)
    except (VerificationError, InvalidHashError):
        return False
