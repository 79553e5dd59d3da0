"""The ``email`` channel against a local twisted.mail ESMTP server: headers, UTF-8 body, auth, failures."""

from __future__ import annotations

import email
from email.policy import default as default_policy
from types import SimpleNamespace

import pytest_twisted
from twisted.cred import checkers, portal
from twisted.internet import defer, reactor
from twisted.mail import imap4, smtp
from zope.interface import implementer

from crm.db import Database
from crm.migrate import upgrade
from notify.channels import Channels, Message
from notify.channels.email import EmailChannel


@implementer(smtp.IMessage)
class _Mail:
    def __init__(self, inbox, recipient):
        self.inbox, self.recipient, self.lines = inbox, recipient, []

    def lineReceived(self, line):
        self.lines.append(line)

    def eomReceived(self):
        self.inbox.append((self.recipient, b"\n".join(self.lines)))
        return defer.succeed(None)

    def connectionLost(self):
        pass


@implementer(smtp.IMessageDelivery)
class Mailbox:
    """Accepts mail for @example.com, refuses other domains with 550."""

    def __init__(self):
        self.inbox, self.senders, self.logins = [], [], []

    def receivedHeader(self, helo, origin, recipients):
        return b"Received: by the test server"

    def validateFrom(self, helo, origin):
        self.senders.append(str(origin))
        return origin

    def validateTo(self, user):
        if user.dest.domain != b"example.com":
            raise smtp.SMTPBadRcpt(user)
        return lambda: _Mail(self.inbox, str(user.dest))


@implementer(portal.IRealm)
class _Realm:
    def __init__(self, box):
        self.box = box

    def requestAvatar(self, avatar_id, mind, *interfaces):
        self.box.logins.append(avatar_id)
        return smtp.IMessageDelivery, self.box, lambda: None


class MailServer(smtp.SMTPFactory):
    protocol = smtp.ESMTP

    def __init__(self, box):
        users = checkers.InMemoryUsernamePasswordDatabaseDontUse(alerts=b"pa55")
        super().__init__(portal.Portal(_Realm(box), [users]))
        self.box = box

    def buildProtocol(self, addr):
        p = super().buildProtocol(addr)
        p.delivery = self.box
        p.challengers = {b"LOGIN": imap4.LOGINCredentials, b"PLAIN": imap4.PLAINCredentials}
        return p


@pytest_twisted.async_yield_fixture
async def rig(sqlite_url):
    db = Database(sqlite_url, reactor)
    upgrade(db.engine)
    db.startService()
    box = Mailbox()
    port = reactor.listenTCP(0, MailServer(box), interface="127.0.0.1")
    channels = Channels(db.deliveries, reactor)
    try:
        yield SimpleNamespace(db=db, box=box, channels=channels, port=port.getHost().port)
    finally:
        await port.stopListening()
        await db.stopService()


NOTICE = Message("owner@example.com", "您的车辆京A12345于5月1日23:30发生主电源断电报警。\n请致电400-800-1234。",
                 "incident_notice", subject="【Watchline】车辆京A12345主电源断电报警", incident_id=None)


@pytest_twisted.ensureDeferred
async def test_utf8_mail_with_headers_reaches_the_server_and_is_recorded(rig):
    rig.channels.register(EmailChannel(reactor, "127.0.0.1", rig.port, "alerts@watchline.example"))
    delivery = await rig.channels.send("email", NOTICE)
    assert (delivery.status, delivery.attempts, delivery.subject) == ("sent", 1, NOTICE.subject)
    [(recipient, raw)] = rig.box.inbox
    assert recipient == "owner@example.com" and rig.box.senders == ["alerts@watchline.example"]
    mail = email.message_from_bytes(raw, policy=default_policy)
    assert mail["From"] == "alerts@watchline.example" and mail["To"] == "owner@example.com"
    assert mail["Subject"] == "【Watchline】车辆京A12345主电源断电报警"
    assert mail["Message-ID"] == delivery.external_id and mail["Date"]
    assert mail.get_content_charset() == "utf-8"
    assert mail.get_content().strip() == NOTICE.body
    assert rig.box.logins == []  # no username configured: no AUTH


@pytest_twisted.ensureDeferred
async def test_authenticates_when_a_username_is_configured(rig):
    rig.channels.register(EmailChannel(reactor, "127.0.0.1", rig.port, "alerts@watchline.example",
                                       username="alerts", password="pa55"))
    delivery = await rig.channels.send("email", NOTICE)
    assert delivery.status == "sent" and rig.box.logins == [b"alerts"] and len(rig.box.inbox) == 1


@pytest_twisted.ensureDeferred
async def test_refused_mailbox_fails_without_retry(rig):
    rig.channels.register(EmailChannel(reactor, "127.0.0.1", rig.port, "alerts@watchline.example", retry_delay=0.01))
    delivery = await rig.channels.send("email", NOTICE.to("owner@elsewhere.example"))
    assert (delivery.status, delivery.attempts) == ("failed", 1)
    assert "550" in delivery.error and rig.box.inbox == []


@pytest_twisted.ensureDeferred
async def test_starttls_required_but_not_offered_fails(rig):
    rig.channels.register(EmailChannel(reactor, "127.0.0.1", rig.port, "alerts@watchline.example", starttls=True,
                                       retries=0))
    delivery = await rig.channels.send("email", NOTICE)
    assert delivery.status == "failed" and "TLS" in delivery.error and rig.box.inbox == []


@pytest_twisted.ensureDeferred
async def test_server_down_is_tried_again_then_fails(rig):
    rig.channels.register(EmailChannel(reactor, "127.0.0.1", 1, "alerts@watchline.example", retries=2,
                                       retry_delay=0.01, timeout=2))
    delivery = await rig.channels.send("email", NOTICE)
    assert (delivery.status, delivery.attempts) == ("failed", 3)
    assert "ConnectionRefused" in delivery.error


@pytest_twisted.ensureDeferred
async def test_not_an_address_is_refused_before_connecting(rig):
    rig.channels.register(EmailChannel(reactor, "127.0.0.1", rig.port))
    delivery = await rig.channels.send("email", NOTICE.to("+8613800138000"))
    assert (delivery.status, delivery.error) == ("failed", "not an e-mail address: '+8613800138000'")
