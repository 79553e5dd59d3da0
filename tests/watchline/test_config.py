"""Config: defaults from design.md, TOML, environment overrides, one-line errors naming the key."""

import pytest

from watchline.config import ConfigError, load_config


def test_defaults_are_the_embedded_contract():
    c = load_config(environ={})
    assert (c.database.url, c.mq.url, c.live.url) == ("sqlite:///watchline.db", "memory://", "memory://")
    assert (c.ingest.jt808, c.ingest.gt06) == ("tcp:5015", "tcp:5023")
    assert c.api.listen == "tcp:8080:interface=127.0.0.1"
    assert c.sip.listen == "udp:5060:interface=127.0.0.1" and c.sip.trunk == ""


def test_toml_then_environment(tmp_path):
    path = tmp_path / "w.toml"
    path.write_text('[database]\nurl = "postgresql://db/x"\n[notify]\nlines = 10\n[ingest]\ngt06 = ""\n')
    c = load_config(path, environ={"WATCHLINE_NOTIFY_LINES": "12", "WATCHLINE_INGEST_JT808_ACCEPT_UNKNOWN": "yes",
                                   "WATCHLINE_SIP_ALLOWED_PEERS": "10.0.0.1, 10.0.0.2"})
    assert c.database.url == "postgresql://db/x"
    assert c.notify.lines == 12 and c.ingest.jt808_accept_unknown is True
    assert c.ingest.gt06 == ""  # an empty listener is off
    assert c.sip.allowed_peers == ["10.0.0.1", "10.0.0.2"]


@pytest.mark.parametrize("toml, env, key", [
    ('[api]\nlisten = "tcp:99999999"', {}, "api.listen"),
    ('[notify]\nlines = "ten"', {}, "notify.lines"),
    ("[notify]\nlines = -1", {}, "notify.lines"),
    ('[database]\nurl = "mysql://x"', {}, "database.url"),
    ('[notify]\nphone_region = "XX"', {}, "notify.phone_region"),
    ('[notify]\nquiet_hours = "24:00-07:00"', {}, "notify.quiet_hours"),
    ('[notify]\nsmpp_url = "http://u:p@smsc"', {}, "notify.smpp_url"),
    ('[notify]\nwebhook_urls = ["ftp://x"]', {}, "notify.webhook_urls"),
    ("", {"WATCHLINE_NOTIFY_SMTP_PORT": "70000"}, "notify.smtp_port"),
    ("[ingest]\nbogus = 1", {}, "ingest.bogus"),
    ("[nope]\na = 1", {}, "nope"),
    ("", {"WATCHLINE_LIVE_URL": "memcached://x"}, "live.url"),
    ("", {"WATCHLINE_INGEST_IDLE_TIMEOUT": "soon"}, "ingest.idle_timeout"),
    ("", {"WATCHLINE_API_LISTEN_PORT": "1"}, "WATCHLINE_API_LISTEN_PORT"),
    ("[sip]\nlisten = \"tcp:5060\"", {}, "sip.listen"),
    ("= broken", {}, "not valid TOML"),
])
def test_bad_values_name_the_key(tmp_path, toml, env, key):
    path = tmp_path / "w.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError) as err:
        load_config(path, environ=env)
    assert key in str(err.value) and "\n" not in str(err.value)
