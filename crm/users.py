"""``db.users``: users/agents with roles and skills, and their API bearer tokens (stored hashed).

Tokens are 256-bit random strings, so one SHA-256 is enough to store them safely (unlike PINs,
they cannot be guessed); the hash also makes the lookup an indexed equality.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone

import sqlalchemy as sa

from crm.audit import AuditStore
from crm.schema import api_tokens, users

ROLES = ("admin", "supervisor", "agent", "dispatcher", "platform")


@dataclass(frozen=True)
class User:
    id: int
    name: str
    role: str
    skills: tuple[str, ...]
    active: bool


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class UsersStore:
    def __init__(self, db) -> None:
        self.db = db

    def issue_token_blocking(self, role: str, name: str | None = None, skills: tuple[str, ...] = ()) -> str:
        return self.db.pool.do_blocking(self._issue_thd, role, name, skills)

    async def issue_token(self, role: str, name: str | None = None, skills: tuple[str, ...] = ()) -> str:
        return await self.db.pool.do(self._issue_thd, role, name, skills)

    @staticmethod
    def _issue_thd(conn, role: str, name: str | None, skills: tuple[str, ...]) -> str:
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}; expected one of {', '.join(ROLES)}")
        now = datetime.now(timezone.utc)
        name = name or f"{role}-{secrets.token_hex(3)}"
        row = conn.execute(sa.select(users).where(users.c.name == name)).first()
        if row is None:
            user_id = conn.execute(users.insert().values(
                name=name, role=role, skills=",".join(skills), active=True, created_at=now)).inserted_primary_key[0]
        elif row.role != role:
            raise ValueError(f"user {name!r} already exists with role {row.role}")
        else:
            user_id = row.id
        token = "wl_" + secrets.token_urlsafe(32)
        conn.execute(api_tokens.insert().values(token_hash=token_hash(token), user_id=user_id, created_at=now))
        AuditStore.insert(conn, "cli", "token_issued", "user", user_id, {"name": name, "role": role})
        return token

    async def user_for_token(self, token: str) -> User | None:
        def _thd(conn):
            row = conn.execute(
                sa.select(users).join(api_tokens, api_tokens.c.user_id == users.c.id).where(
                    api_tokens.c.token_hash == token_hash(token),
                    api_tokens.c.revoked_at.is_(None),
                    users.c.active.is_(True),
                )
            ).first()
            return None if row is None else self._model_from_row(row)

        return await self.db.pool.do(_thd)

    @staticmethod
    def _model_from_row(row) -> User:
        return User(row.id, row.name, row.role, tuple(s for s in row.skills.split(",") if s), row.active)
