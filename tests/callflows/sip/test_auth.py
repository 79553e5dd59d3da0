"""Digest authentication against the RFC 7616 and RFC 2617 worked examples."""

from __future__ import annotations

import pytest

from callflows.sip.auth import Challenge, DigestCredentials, digest_response, parse_challenge, verify
from callflows.sip.message import SipParseError

# RFC 7616 section 3.9.1
RFC7616 = dict(username="Mufasa", password="Circle of Life", realm="http-auth@example.org", method="GET",
               uri="/dir/index.html", nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", qop="auth",
               nc="00000001", cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ")


def test_rfc7616_md5_and_sha256_vectors():
    assert digest_response("MD5", **RFC7616) == "8ca523f5e9506fed4657c9700eebdbec"
    assert digest_response("SHA-256", **RFC7616) == "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"


def test_rfc2617_vector_without_cnonce_style_qop():
    # RFC 2617 section 3.5
    assert digest_response("MD5", "Mufasa", "Circle Of Life", "testrealm@host.com", "GET", "/dir/index.html",
                           "dcd98b7102dd2f0e8b11d0f600bfb0c093", "auth", "00000001",
                           "0a4f113b") == "6629fae49393a05397450978507c4ef1"


def test_parse_challenge():
    c = parse_challenge('Digest realm="trunk", nonce="n1", qop="auth,auth-int", algorithm=SHA-256, '
                        'opaque="o", stale=TRUE')
    assert c == Challenge("trunk", "n1", "SHA-256", ("auth", "auth-int"), "o", True)
    assert parse_challenge('Digest realm="r",nonce="n"').algorithm == "MD5"
    for bad in ('Basic realm="r"', 'Digest realm="r"', 'Digest realm="r", nonce="n", algorithm=SHA-1'):
        with pytest.raises(SipParseError):
            parse_challenge(bad)


@pytest.mark.parametrize("algorithm,qop", [("MD5", ()), ("MD5", ("auth",)), ("SHA-256", ("auth",)),
                                           ("SHA-256", ())])
def test_authorization_verifies_and_counts_nonce_uses(algorithm, qop):
    creds = DigestCredentials("trunkuser", "s3cret")
    challenge = Challenge("trunk.test", "abc", algorithm, qop, "op")
    first = creds.authorization(challenge, "INVITE", "sip:4000@10.0.0.1")
    second = creds.authorization(challenge, "INVITE", "sip:4000@10.0.0.1")
    assert verify(first, "INVITE", "s3cret") and verify(second, "INVITE", "s3cret")
    assert not verify(first, "INVITE", "wrong") and not verify(first, "BYE", "s3cret")
    assert f"algorithm={algorithm}" in first and 'opaque="op"' in first
    if qop:
        assert "nc=00000001" in first and "nc=00000002" in second
        renewed = creds.authorization(Challenge("trunk.test", "new", algorithm, qop), "INVITE", "u")
        assert "nc=00000001" in renewed  # a new nonce starts counting again
    else:
        assert "qop" not in first
