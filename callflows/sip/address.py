"""SIP URIs and name-addr header values (From, To, Contact, Route), RFC 3261 sections 19 and 20."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

from callflows.sip.message import SipParseError, parse_params

_HOSTPORT = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-.]+)(?::([0-9]{1,5}))?$")


@dataclass(frozen=True)
class SipUri:
    user: str
    host: str
    port: int | None = None
    params: dict[str, str] = field(default_factory=dict, compare=False, hash=False)
    scheme: str = "sip"

    def __str__(self) -> str:
        user = f"{self.user}@" if self.user else ""
        port = f":{self.port}" if self.port else ""
        params = "".join(f";{k}={v}" if v else f";{k}" for k, v in self.params.items())
        return f"{self.scheme}:{user}{self.host}{port}{params}"

    @property
    def address(self) -> tuple[str, int]:
        """Where a datagram for this URI goes (no DNS: hosts are IP literals or names resolved later)."""
        return self.host.strip("[]"), self.port or 5060

    @property
    def is_ip(self) -> bool:
        try:
            ipaddress.ip_address(self.host.strip("[]"))
        except ValueError:
            return False
        return True


def parse_uri(text: str) -> SipUri:
    text = text.strip()
    scheme, colon, rest = text.partition(":")
    scheme = scheme.lower()
    if not colon or scheme not in ("sip", "sips"):
        raise SipParseError(f"not a SIP URI {text[:60]!r}")
    rest = rest.split("?", 1)[0]
    rest, _, param_text = rest.partition(";")
    user, at, hostport = rest.rpartition("@")
    if not at:
        user, hostport = "", rest
    user = user.split(":", 1)[0]  # drop a password, we never use it
    m = _HOSTPORT.match(hostport)
    if not m:
        raise SipParseError(f"bad host in URI {text[:60]!r}")
    port = int(m.group(2)) if m.group(2) else None
    if port is not None and not 0 < port < 65536:
        raise SipParseError(f"bad port in URI {text[:60]!r}")
    return SipUri(user, m.group(1), port, parse_params(param_text), scheme)


@dataclass(frozen=True)
class NameAddr:
    """A From/To/Contact/Route value: optional display name, URI, header parameters (tag, expires)."""

    uri: SipUri
    display: str = ""
    params: dict[str, str] = field(default_factory=dict, compare=False, hash=False)

    @property
    def tag(self) -> str:
        return self.params.get("tag", "")

    def with_tag(self, tag: str) -> NameAddr:
        return NameAddr(self.uri, self.display, {**self.params, "tag": tag})

    def __str__(self) -> str:
        display = f'"{self.display}" ' if self.display else ""
        params = "".join(f";{k}={v}" if v else f";{k}" for k, v in self.params.items())
        return f"{display}<{self.uri}>{params}"


def parse_name_addr(text: str) -> NameAddr:
    text = text.strip()
    if "<" in text:
        display, _, rest = text.partition("<")
        uri_text, close, params = rest.partition(">")
        if not close:
            raise SipParseError(f"unclosed < in {text[:60]!r}")
        display = display.strip().strip('"').strip()
    else:
        # addr-spec form: parameters after the URI belong to the header, not the URI (RFC 3261 20.10)
        uri_text, _, params = text.partition(";")
        params = ";" + params if params else ""
        display = ""
    return NameAddr(parse_uri(uri_text), display, parse_params(params))
