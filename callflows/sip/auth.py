"""HTTP Digest authentication for SIP (RFC 3261 22, RFC 8760): MD5 and SHA-256, with or without qop=auth.

The client side answers a 401/407 challenge from a trunk; ``verify`` is the server side, used to check
the client against known vectors and by anything that must challenge a peer itself.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass

from callflows.sip.message import SipParseError

_ALGORITHMS = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}
_PARAM = re.compile(r'\s*([A-Za-z0-9_\-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^,\s]*)\s*,?')


@dataclass(frozen=True)
class Challenge:
    realm: str
    nonce: str
    algorithm: str = "MD5"
    qop: tuple[str, ...] = ()
    opaque: str | None = None
    stale: bool = False


def parse_challenge(value: str) -> Challenge:
    """``Digest realm="x", nonce="y", qop="auth,auth-int", algorithm=SHA-256`` -> Challenge."""
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() != "digest":
        raise SipParseError(f"not a Digest challenge: {value[:40]!r}")
    params = parse_auth_params(rest)
    if "realm" not in params or "nonce" not in params:
        raise SipParseError("Digest challenge without realm or nonce")
    algorithm = params.get("algorithm", "MD5").upper()
    if algorithm not in _ALGORITHMS:
        raise SipParseError(f"unsupported Digest algorithm {algorithm}")
    qop = tuple(q.strip().lower() for q in params.get("qop", "").split(",") if q.strip())
    return Challenge(params["realm"], params["nonce"], algorithm, qop, params.get("opaque"),
                     params.get("stale", "").lower() == "true")


def parse_auth_params(text: str) -> dict[str, str]:
    params: dict[str, str] = {}
    for m in _PARAM.finditer(text):
        value = m.group(2)
        if value.startswith('"'):
            value = value[1:-1].replace('\\"', '"')
        params[m.group(1).lower()] = value
    return params


def _h(algorithm: str, text: str) -> str:
    return _ALGORITHMS[algorithm](text.encode("utf-8")).hexdigest()


def digest_response(algorithm: str, username: str, password: str, realm: str, method: str, uri: str,
                    nonce: str, qop: str | None = None, nc: str = "", cnonce: str = "") -> str:
    ha1 = _h(algorithm, f"{username}:{realm}:{password}")
    ha2 = _h(algorithm, f"{method}:{uri}")
    if qop:
        return _h(algorithm, f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")
    return _h(algorithm, f"{ha1}:{nonce}:{ha2}")


@dataclass
class DigestCredentials:
    """A username/password for one trunk; counts nonce uses for ``nc``."""

    username: str
    password: str
    _nonce: str = ""
    _count: int = 0

    def authorization(self, challenge: Challenge, method: str, uri: str, cnonce: str | None = None) -> str:
        if challenge.nonce != self._nonce:
            self._nonce, self._count = challenge.nonce, 0
        self._count += 1
        qop = "auth" if "auth" in challenge.qop else None
        nc = f"{self._count:08x}"
        cnonce = cnonce or secrets.token_hex(8)
        response = digest_response(challenge.algorithm, self.username, self.password, challenge.realm,
                                   method, uri, challenge.nonce, qop, nc, cnonce)
        parts = [f'username="{self.username}"', f'realm="{challenge.realm}"', f'nonce="{challenge.nonce}"',
                 f'uri="{uri}"', f'response="{response}"', f"algorithm={challenge.algorithm}"]
        if qop:
            parts += [f"qop={qop}", f"nc={nc}", f'cnonce="{cnonce}"']
        if challenge.opaque is not None:
            parts.append(f'opaque="{challenge.opaque}"')
        return "Digest " + ", ".join(parts)


def verify(authorization: str, method: str, password: str) -> bool:
    """Server side: does this Authorization header prove ``password`` for ``method``?"""
    scheme, _, rest = authorization.strip().partition(" ")
    if scheme.lower() != "digest":
        return False
    p = parse_auth_params(rest)
    algorithm = p.get("algorithm", "MD5").upper()
    if algorithm not in _ALGORITHMS or not all(k in p for k in ("username", "realm", "nonce", "uri", "response")):
        return False
    expected = digest_response(algorithm, p["username"], password, p["realm"], method, p["uri"], p["nonce"],
                               p.get("qop"), p.get("nc", ""), p.get("cnonce", ""))
    return secrets.compare_digest(expected, p["response"].lower())
