"""Telephony settings (config section ``[sip]``), validated once when built."""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


class SettingsError(ValueError):
    pass


def parse_udp_endpoint(text: str) -> tuple[int, str]:
    """``udp:5060:interface=127.0.0.1`` (or ``udp:port=5060``) -> (port, interface).
    Twisted's endpoint strings have no UDP server type, so the UDP form is read here."""
    parts = text.split(":")
    if not parts or parts[0] != "udp" or len(parts) < 2:
        raise SettingsError(f"not a UDP endpoint: {text!r} (expected udp:PORT[:interface=ADDR])")
    port, interface = None, "0.0.0.0"
    for i, part in enumerate(parts[1:]):
        key, eq, value = part.partition("=")
        if not eq and i == 0:
            key, value = "port", part
        if key == "port" and value.isdigit():
            port = int(value)
        elif key == "interface" and value:
            interface = value
        else:
            raise SettingsError(f"bad UDP endpoint option {part!r} in {text!r}")
    if port is None or not 0 <= port < 65536:
        raise SettingsError(f"bad UDP port in {text!r}")
    return port, interface


def parse_hostport(text: str, default_port: int = 5060) -> tuple[str, int]:
    host, _, port = text.strip().rpartition(":")
    if not host:
        return text.strip(), default_port
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise SettingsError(f"bad host:port {text!r}")
    return host.strip("[]"), int(port)


@dataclass(frozen=True)
class TelephonySettings:
    listen: str = "udp:5060:interface=127.0.0.1"
    public_host: str | None = None  # the address put in Via/Contact/SDP; default: the listen interface
    trunk: str | None = None  # host:port; outbound calls go to sip:<number>@trunk
    username: str | None = None  # digest credentials for the trunk
    password: str | None = None
    register: bool = False  # REGISTER with the trunk and keep it refreshed
    register_expires: int = 3600
    allowed_peers: tuple[str, ...] = ("127.0.0.1", "::1")  # IPs or CIDRs; the trunk's is always allowed
    max_calls: int = 60  # concurrent legs, both directions
    dial_plan: str = r"^\+?[0-9]{3,15}$"  # outbound numbers must match this
    rtp_ports: tuple[int, int] = (20000, 29999)
    recordings_dir: str = "recordings"
    prompt_cache_dir: str = "prompt-cache"
    prompt_templates_dir: str | None = None  # jinja2 templates for prompt texts
    recording_retention_days: float | None = 90.0
    ring_timeout: float = 30.0
    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0

    def __post_init__(self) -> None:
        port, interface = parse_udp_endpoint(self.listen)
        if self.trunk:
            parse_hostport(self.trunk)
        try:
            re.compile(self.dial_plan)
        except re.error as exc:
            raise SettingsError(f"bad dial_plan regex: {exc}") from exc
        for peer in self.allowed_peers:
            try:
                ipaddress.ip_network(peer, strict=False)
            except ValueError as exc:
                raise SettingsError(f"bad allowed peer {peer!r}") from exc
        first, last = self.rtp_ports
        if not 1024 <= first < last <= 65535:
            raise SettingsError(f"bad rtp_ports {self.rtp_ports}")
        if self.max_calls < 1:
            raise SettingsError("max_calls must be at least 1")
        if self.register and not self.trunk:
            raise SettingsError("register needs a trunk")

    @property
    def listen_port(self) -> int:
        return parse_udp_endpoint(self.listen)[0]

    @property
    def interface(self) -> str:
        return parse_udp_endpoint(self.listen)[1]

    @property
    def trunk_address(self) -> tuple[str, int] | None:
        return parse_hostport(self.trunk) if self.trunk else None

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> TelephonySettings:
        """Build from a config section whose values may be strings (environment overrides)."""
        fields = {f.name: f for f in dataclasses.fields(cls)}
        kwargs: dict[str, Any] = {}
        for key, value in values.items():
            if key not in fields:
                raise SettingsError(f"unknown [sip] setting {key!r}")
            try:
                kwargs[key] = _convert(key, value, getattr(cls, key, None))
            except ValueError as exc:
                raise SettingsError(f"bad [sip] {key} = {value!r}: {exc}") from exc
        try:
            return cls(**kwargs)
        except (TypeError, ValueError) as exc:
            raise SettingsError(str(exc)) from exc


def _convert(key: str, value: Any, default: Any) -> Any:
    if isinstance(value, list):
        return tuple(value)
    if not isinstance(value, str):
        return value
    if key == "allowed_peers":
        return tuple(v.strip() for v in value.split(",") if v.strip())
    if key == "rtp_ports":
        first, _, last = value.partition("-")
        return int(first), int(last)
    if isinstance(default, bool):
        return value.strip().lower() in ("1", "true", "yes", "on")
    if isinstance(default, int):
        return int(value)
    if isinstance(default, float) or key == "recording_retention_days":
        return float(value) if value.strip() else None
    if key in ("trunk", "username", "password", "public_host", "prompt_templates_dir") and not value:
        return None  # an empty override unsets an optional setting
    return value
