"""Wiring of the campaign runner: only where telephony has a trunk, on the process's one set of trunk lines."""

from twisted.internet import reactor

from tests.conftest import free_port
from watchline.config import load_config
from watchline.service import Watchline


def config(tmp_path, trunk: str):
    return load_config(environ={
        "WATCHLINE_DATABASE_URL": f"sqlite:///{tmp_path / 'w.db'}", "WATCHLINE_API_LISTEN": "",
        "WATCHLINE_INGEST_JT808": "", "WATCHLINE_INGEST_GT06": "",
        "WATCHLINE_SIP_LISTEN": f"udp:{free_port()}:interface=127.0.0.1", "WATCHLINE_SIP_TRUNK": trunk})


def test_campaigns_share_the_trunk_lines_with_incident_calls(tmp_path):
    app = Watchline(config(tmp_path, "127.0.0.1:5999"), reactor)  # wiring only: nothing started
    assert app.campaigns.parent is app and app.campaigns.notice.telephony is app.telephony
    assert app.campaigns.lines is app.trunk_lines() is app.engine.notifier.lines
    assert app.trunk_lines().capacity == 30


def test_no_trunk_no_campaign_runner(tmp_path):
    app = Watchline(config(tmp_path, ""), reactor)
    assert not hasattr(app, "campaigns")
