"""Registration: challenge, refresh before expiry, retry after failure."""

from __future__ import annotations

from twisted.internet.task import Clock

from callflows.sip.auth import DigestCredentials, verify
from callflows.sip.endpoint import SipEndpoint, response_for
from callflows.sip.register import Registration

REGISTRAR = ("10.0.0.9", 5060)


class Registrar:
    """Stands in for the trunk: answers what the test tells it to."""

    def __init__(self):
        self.requests = []

    def write(self, data, addr):
        from callflows.sip.message import parse_message

        self.requests.append(parse_message(data))


def setup(**kwargs):
    clock = Clock()
    endpoint = SipEndpoint(None, clock)
    endpoint.transport = registrar = Registrar()
    registration = Registration(endpoint, clock, REGISTRAR, "watchline", "10.0.0.1:5060",
                                "<sip:watchline@10.0.0.1:5060>", DigestCredentials("watchline", "pw"), **kwargs)
    return clock, endpoint, registrar, registration


def reply(endpoint, request, status, **headers):
    response = response_for(request, status, "x", "regtag")
    for name, value in headers.items():
        response.headers.add(name.replace("_", "-"), value)
    endpoint.datagramReceived(response.to_bytes(), REGISTRAR)


def test_challenge_then_refresh_halfway_and_a_minute_early():
    clock, endpoint, registrar, registration = setup(expires=600)
    registration.start()
    first = registrar.requests[-1]
    assert first.method == "REGISTER" and first.headers.get("expires") == "600"
    reply(endpoint, first, 401, www_authenticate='Digest realm="t", nonce="n", qop="auth"')
    second = registrar.requests[-1]
    assert second.cseq[0] == first.cseq[0] + 1 and second.call_id == first.call_id
    assert verify(second.headers.get("authorization"), "REGISTER", "pw")
    reply(endpoint, second, 200, contact="<sip:watchline@10.0.0.1:5060>;expires=100")
    assert registration.registered and registration.granted == 100
    clock.advance(49)
    assert len(registrar.requests) == 2
    clock.advance(1)  # 100 s granted: refreshed at half
    third = registrar.requests[-1]
    assert len(registrar.requests) == 3 and "authorization" not in third.headers
    reply(endpoint, third, 200, expires="3600")
    assert registration.granted == 3600
    clock.advance(3539)
    assert len(registrar.requests) == 3
    clock.advance(1)  # a minute before expiry
    assert len(registrar.requests) == 4


def test_failure_and_timeout_retry_later():
    clock, endpoint, registrar, registration = setup(retry_after=30)
    registration.start()
    reply(endpoint, registrar.requests[-1], 403)
    assert not registration.registered and registration.last_status == 403
    clock.advance(30)
    assert len(registrar.requests) == 2
    for _ in range(70):
        clock.advance(0.5)  # no answer at all: timer F, then retry
    assert registration.last_status == 408  # timer F at 62 s
    assert max(r.cseq[0] for r in registrar.requests) == 2
    clock.advance(30)
    assert max(r.cseq[0] for r in registrar.requests) == 3


def test_interval_too_brief_uses_min_expires_and_stop_cancels():
    clock, endpoint, registrar, registration = setup(expires=60)
    registration.start()
    reply(endpoint, registrar.requests[-1], 423, min_expires="300")
    assert registrar.requests[-1].headers.get("expires") == "300"
    reply(endpoint, registrar.requests[-1], 200)
    registration.stop()
    clock.advance(1000)
    assert len(registrar.requests) == 2
