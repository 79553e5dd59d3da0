"""Configuration: one validated, frozen dataclass per TOML section, read once at start-up.

Sources, later wins: built-in defaults → the TOML file → ``WATCHLINE_<SECTION>_<KEY>`` environment
variables. Any bad value stops start-up with one ``ConfigError`` line naming the key and the fault.
Listeners are Twisted endpoint strings; an empty string turns a listener off.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import timedelta
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    """A configuration value is wrong; the message names the key."""


def _endpoint(kind: str) -> dict[str, str]:
    """Field metadata: the value is a listener endpoint string (``server`` or ``udp``)."""
    return {"endpoint": kind}


@dataclass(frozen=True)
class DatabaseConfig:
    url: str = "sqlite:///watchline.db"
    pool_size: int = 5  # threads running SQL (SQLite always uses one writer thread)
    echo: bool = False


@dataclass(frozen=True)
class MqConfig:
    url: str = "memory://"
    exchange: str = "watchline"


@dataclass(frozen=True)
class LiveConfig:
    url: str = "memory://"
    prefix: str = "watchline:"


@dataclass(frozen=True)
class IngestConfig:
    jt808: str = field(default="tcp:5015", metadata=_endpoint("server"))
    gt06: str = field(default="tcp:5023", metadata=_endpoint("server"))
    jt808_accept_unknown: bool = False
    gt06_accept_unknown: bool = False
    gt06_timezone: str = "+00:00"  # UTC offset of classic GT06 packets whose login does not say
    gt06_ack_locations: bool = False  # echo 0x12/0x22 locations (some firmware wants it, gt06.md §6)
    idle_timeout: float = 180.0
    max_frame_bytes: int = 4096
    max_buffer_bytes: int = 65536
    max_bad_frames: int = 10
    amqp_url: str = ""  # a RabbitMQ holding a platform's forwarded positions/events (Traccar AMQP)
    amqp_queue: str = ""
    amqp_exchange: str = "traccar"  # the topic exchange the platform publishes to
    position_batch_size: int = 100  # rows per write: small, so alarm writes never wait long behind one
    position_flush_interval: float = 0.5


@dataclass(frozen=True)
class ApiConfig:
    listen: str = field(default="tcp:8080:interface=127.0.0.1", metadata=_endpoint("server"))
    max_body_bytes: int = 4 * 1024 * 1024


@dataclass(frozen=True)
class SipConfig:
    listen: str = field(default="udp:5060:interface=127.0.0.1", metadata=_endpoint("udp"))
    trunk: str = ""  # host:port; outbound calls go to sip:<number>@trunk
    username: str = ""
    password: str = ""
    register: bool = False  # REGISTER with the trunk and keep it refreshed
    public_host: str = ""  # address put in Via/Contact/SDP; default: the listen interface
    allowed_peers: list[str] = field(default_factory=lambda: ["127.0.0.1", "::1"])
    max_calls: int = 200
    dial_plan: str = r"^\+?[0-9]{3,15}$"
    rtp_ports: str = "20000-29999"
    recordings: str = "recordings"
    retention_days: int = 90
    prompt_cache: str = "prompt-cache"
    ring_timeout: float = 30.0


@dataclass(frozen=True)
class AlarmsConfig:
    rules: str = ""  # a rules file; empty = the built-in defaults
    ack_timeout: float = 900.0


@dataclass(frozen=True)
class NotifyConfig:
    lines: int = 30
    phone_region: str = "CN"  # region for phone numbers written without a country code
    quiet_hours: str = "22:00-07:00"  # routine alarms then get an SMS instead of a call; "" = never quiet
    operator: str = "Watchline"  # the name notices are signed with
    hotline: str = ""  # the number notices tell owners to call
    smpp_url: str = ""  # smpp://system_id:password@host:2775; empty = no SMS
    smpp_source: str = ""  # sender address: digits, or an alphanumeric name the SMSC allows
    smtp_host: str = ""  # empty = no e-mail
    smtp_port: int = 25
    smtp_from: str = "watchline@localhost"
    smtp_username: str = ""  # set = authenticate (AUTH PLAIN/LOGIN/CRAM-MD5)
    smtp_password: str = ""
    smtp_starttls: bool = False  # require STARTTLS (the server's certificate is verified)
    webhook_urls: list[str] = field(default_factory=list)  # customer endpoints notices are POSTed to
    webhook_retries: int = 3  # after the first try, on 5xx/429/connection errors, 1 s, 2 s, 4 s apart


@dataclass(frozen=True)
class GeoConfig:
    average_speed_kmh: float = 40.0
    max_position_age: float = 900.0
    on_site_radius_m: float = 200.0


@dataclass(frozen=True)
class Config:
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    mq: MqConfig = field(default_factory=MqConfig)
    live: LiveConfig = field(default_factory=LiveConfig)
    ingest: IngestConfig = field(default_factory=IngestConfig)
    api: ApiConfig = field(default_factory=ApiConfig)
    sip: SipConfig = field(default_factory=SipConfig)
    alarms: AlarmsConfig = field(default_factory=AlarmsConfig)
    notify: NotifyConfig = field(default_factory=NotifyConfig)
    geo: GeoConfig = field(default_factory=GeoConfig)


_URL_SCHEMES = {
    "database.url": ("sqlite", "postgresql"),
    "mq.url": ("memory", "amqp"),
    "live.url": ("memory", "redis"),
}


def load_config(path: str | os.PathLike | None = None, environ: Mapping[str, str] | None = None) -> Config:
    environ = os.environ if environ is None else environ
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as e:
            raise ConfigError(f"{path}: cannot read config file: {e.strerror}") from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{path}: not valid TOML: {e}") from None
    sections = {}
    for sf in fields(Config):
        raw = data.pop(sf.name, {})
        if not isinstance(raw, dict):
            raise ConfigError(f"{sf.name}: must be a [{sf.name}] table")
        sections[sf.name] = _section(sf.name, sf.default_factory, raw, environ)
    if data:
        raise ConfigError(f"{sorted(data)[0]}: unknown section")
    for key in environ:
        if key.startswith("WATCHLINE_") and not _known_env(key):
            raise ConfigError(f"{key}: unknown setting (no such section/key)")
    return Config(**sections)


def _known_env(name: str) -> bool:
    return any(
        name == f"WATCHLINE_{sf.name}_{kf.name}".upper()
        for sf in fields(Config)
        for kf in fields(sf.default_factory)
    ) or name in {"WATCHLINE_CONFIG"}


def _section(name: str, cls: type, raw: dict[str, Any], environ: Mapping[str, str]):
    values = {}
    known = {f.name: f for f in fields(cls)}
    for key in raw:
        if key not in known:
            raise ConfigError(f"{name}.{key}: unknown key")
    hints = typing.get_type_hints(cls)
    for key, f in known.items():
        dotted = f"{name}.{key}"
        env = f"WATCHLINE_{name}_{key}".upper()
        if env in environ:
            value = _from_env(dotted, hints[key], environ[env])
        elif key in raw:
            value = _typed(dotted, hints[key], raw[key])
        else:
            continue
        _validate(dotted, f, value)
        values[key] = value
    return cls(**values)


def _from_env(dotted: str, hint: Any, text: str) -> Any:
    if hint is bool:
        low = text.strip().lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off", ""):
            return False
        raise ConfigError(f"{dotted}: expected true or false, got {text!r}")
    if _is_list(hint):
        return [part.strip() for part in text.split(",") if part.strip()]
    if hint in (int, float):
        try:
            return hint(text)
        except ValueError:
            raise ConfigError(f"{dotted}: expected {'an integer' if hint is int else 'a number'}, got {text!r}") from None
    return text


def _is_list(hint: Any) -> bool:
    return typing.get_origin(hint) is list


def _typed(dotted: str, hint: Any, value: Any) -> Any:
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{dotted}: expected true or false, got {value!r}")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{dotted}: expected an integer, got {value!r}")
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{dotted}: expected a number, got {value!r}")
    if _is_list(hint):
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return value
        raise ConfigError(f"{dotted}: expected a list of strings, got {value!r}")
    if isinstance(value, str):
        return value
    raise ConfigError(f"{dotted}: expected a string, got {value!r}")


def _validate(dotted: str, f: dataclasses.Field, value: Any) -> None:
    kind = f.metadata.get("endpoint")
    if kind and value:
        _check_endpoint(dotted, kind, value)
    if dotted in _URL_SCHEMES:
        scheme = value.split(":", 1)[0].split("+", 1)[0]
        if scheme not in _URL_SCHEMES[dotted]:
            allowed = " or ".join(f"{s}://" for s in _URL_SCHEMES[dotted])
            raise ConfigError(f"{dotted}: unsupported URL {value!r}; expected {allowed}")
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0:
        raise ConfigError(f"{dotted}: must not be negative, got {value!r}")
    if dotted == "notify.quiet_hours" and value and not re.fullmatch(r"(?:[01]\d|2[0-3]):[0-5]\d-(?:[01]\d|2[0-3]):[0-5]\d",
                                                                     value):
        raise ConfigError(f"{dotted}: expected HH:MM-HH:MM, got {value!r}")
    if dotted == "notify.smpp_url" and value and not re.fullmatch(r"smpp://[^:@/\s]+(?::[^@/\s]*)?@[^:/@\s]+(?::\d{1,5})?/?",
                                                                  value):
        raise ConfigError(f"{dotted}: expected smpp://system_id:password@host[:port], got {value!r}")
    if dotted == "notify.webhook_urls":
        for url in value:
            if not re.fullmatch(r"https?://[^\s/]+(/\S*)?", url):
                raise ConfigError(f"{dotted}: expected http(s) URLs, got {url!r}")
    if dotted == "notify.smtp_port" and not 0 < value <= 65535:
        raise ConfigError(f"{dotted}: port {value} out of range (1-65535)")
    if dotted == "ingest.gt06_timezone" and not re.fullmatch(r"[+-](0\d|1[0-4]):[0-5]\d", value):
        raise ConfigError(f"{dotted}: expected a UTC offset like +08:00, got {value!r}")
    if dotted == "sip.rtp_ports" and not re.fullmatch(r"\d{2,5}-\d{2,5}", value):
        raise ConfigError(f"{dotted}: expected LOW-HIGH, got {value!r}")
    if dotted == "sip.dial_plan":
        try:
            re.compile(value)
        except re.error as e:
            raise ConfigError(f"{dotted}: not a valid regular expression: {e}") from None
    if dotted == "notify.phone_region":
        import phonenumbers

        if value not in phonenumbers.SUPPORTED_REGIONS:
            raise ConfigError(f"{dotted}: unknown region {value!r} (ISO 3166 alpha-2, e.g. CN)")


def _check_endpoint(dotted: str, kind: str, value: str) -> None:
    from twisted.internet import endpoints
    from twisted.internet.testing import MemoryReactor

    if kind == "udp":
        if not re.fullmatch(r"udp:\d{1,5}(:interface=[0-9A-Za-z.:\-]+)?", value):
            raise ConfigError(f"{dotted}: expected udp:PORT[:interface=ADDR], got {value!r}")
        return
    port = re.match(r"^(?:tcp|ssl|tcp6):(?:port=)?(\d+)", value)
    if port and int(port.group(1)) > 65535:
        raise ConfigError(f"{dotted}: port {port.group(1)} out of range (0-65535)")
    try:
        endpoints.serverFromString(MemoryReactor(), value)
    except Exception as e:  # the parser raises ValueError, KeyError or TypeError by case
        raise ConfigError(f"{dotted}: not a valid Twisted endpoint string {value!r}: {e}") from None


def udp_listen(value: str) -> tuple[int, str]:
    """``udp:5060:interface=127.0.0.1`` → (5060, "127.0.0.1")."""
    m = re.fullmatch(r"udp:(\d{1,5})(?::interface=(.+))?", value)
    if not m:
        raise ConfigError(f"sip.listen: expected udp:PORT[:interface=ADDR], got {value!r}")
    return int(m.group(1)), m.group(2) or ""


def utc_offset(value: str) -> timedelta:
    """``+08:00`` → timedelta(hours=8) (the value was validated at load)."""
    sign = -1 if value.startswith("-") else 1
    hours, minutes = value[1:].split(":")
    return sign * timedelta(hours=int(hours), minutes=int(minutes))
