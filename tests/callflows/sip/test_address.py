"""SIP URIs and name-addr values."""

from __future__ import annotations

import pytest

from callflows.sip.address import NameAddr, SipUri, parse_name_addr, parse_uri
from callflows.sip.message import SipParseError


def test_uri_parts():
    uri = parse_uri("sip:alice:secret@10.0.0.1:5070;transport=udp;lr?subject=x")
    assert (uri.user, uri.host, uri.port, uri.params) == ("alice", "10.0.0.1", 5070, {"transport": "udp", "lr": ""})
    assert uri.address == ("10.0.0.1", 5070) and uri.is_ip
    assert str(parse_uri("sip:4000@[::1]:5060")) == "sip:4000@[::1]:5060"
    assert parse_uri("sip:trunk.example.com").address == ("trunk.example.com", 5060)
    assert not parse_uri("sip:trunk.example.com").is_ip


@pytest.mark.parametrize("text", ["tel:+123", "sip:", "sip:a@", "sip:a@host:99999", "sip:a@ho st", "nonsense"])
def test_bad_uris(text):
    with pytest.raises(SipParseError):
        parse_uri(text)


def test_name_addr_forms():
    value = parse_name_addr('"Bob Smith" <sip:bob@h:5062;transport=udp>;tag=abc;expires=60')
    assert value.display == "Bob Smith" and value.tag == "abc" and value.params["expires"] == "60"
    assert value.uri.params == {"transport": "udp"}
    bare = parse_name_addr("sip:bob@h;tag=9")  # addr-spec: ;tag belongs to the header
    assert bare.tag == "9" and bare.uri.params == {}
    assert str(NameAddr(SipUri("a", "h")).with_tag("t")) == "<sip:a@h>;tag=t"
    with pytest.raises(SipParseError):
        parse_name_addr("<sip:bob@h")
