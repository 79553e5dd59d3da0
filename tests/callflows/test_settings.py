"""Telephony settings: endpoint strings, validation, string overrides."""

from __future__ import annotations

import pytest

from callflows.settings import SettingsError, TelephonySettings, parse_hostport, parse_udp_endpoint


def test_udp_endpoint_strings():
    assert parse_udp_endpoint("udp:5060:interface=127.0.0.1") == (5060, "127.0.0.1")
    assert parse_udp_endpoint("udp:port=5070") == (5070, "0.0.0.0")
    for bad in ("tcp:5060", "udp:", "udp:x", "udp:5060:bogus=1", "udp:70000"):
        with pytest.raises(SettingsError):
            parse_udp_endpoint(bad)
    assert parse_hostport("10.0.0.1:5080") == ("10.0.0.1", 5080) and parse_hostport("10.0.0.1") == ("10.0.0.1", 5060)


def test_defaults_are_valid_and_listen_parts():
    settings = TelephonySettings()
    assert (settings.listen_port, settings.interface, settings.trunk_address) == (5060, "127.0.0.1", None)


@pytest.mark.parametrize("values", [
    {"dial_plan": "("}, {"allowed_peers": ("not-an-ip",)}, {"rtp_ports": (20000, 10000)},
    {"max_calls": 0}, {"register": True}, {"trunk": "10.0.0.1:notaport"}, {"listen": "tcp:5060"},
])
def test_invalid_settings_are_refused(values):
    with pytest.raises(SettingsError):
        TelephonySettings(**values)


def test_from_mapping_converts_environment_strings():
    settings = TelephonySettings.from_mapping({
        "listen": "udp:5062", "trunk": "10.0.0.1:5080", "allowed_peers": "10.0.0.0/8, 192.168.1.5",
        "max_calls": "30", "rtp_ports": "30000-30999", "register": "true", "ring_timeout": "25",
        "recording_retention_days": "", "username": "u", "password": "p"})
    assert settings.allowed_peers == ("10.0.0.0/8", "192.168.1.5") and settings.max_calls == 30
    assert settings.rtp_ports == (30000, 30999) and settings.register is True
    assert settings.ring_timeout == 25.0 and settings.recording_retention_days is None
    with pytest.raises(SettingsError):
        TelephonySettings.from_mapping({"nonsense": "1"})
    with pytest.raises(SettingsError):
        TelephonySettings.from_mapping({"max_calls": "many"})
