"""The ``email`` channel: one ESMTP session per notice to the configured mail server (twisted.mail).

UTF-8 throughout (subject and body may be Chinese). STARTTLS is required when configured, and
authentication used when a username is set. A connection failure or a 4xx answer is tried again after a
pause; a 5xx answer (unknown mailbox, refused sender) is final. The delivery's external id is the queue
id from the server's reply to DATA ("queued as <id>"), else the Message-ID we gave the mail.
"""

from __future__ import annotations

import re
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formatdate, make_msgid
from io import BytesIO

from twisted.internet.defer import Deferred
from twisted.mail import smtp

from notify.channels import DeliveryFailed, Message, SendResult, with_retries

_WIRE = SMTP.clone(linesep="\n")  # the sender turns "\n" into CRLF itself; CRLF here would double it
_ADDRESS = re.compile(r"[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+")


class _Sender(smtp.ESMTPSender):
    def sentMail(self, code, resp, numOk, addresses, log):  # noqa: N802 (Twisted's name)
        self.factory.data_reply = resp  # keep the queue id the server gave for DATA
        super().sentMail(code, resp, numOk, addresses, log)


class _SenderFactory(smtp.ESMTPSenderFactory):
    protocol = _Sender
    data_reply = b""


class EmailChannel:
    name = "email"

    def __init__(self, reactor, host: str, port: int = 25, sender: str = "watchline@localhost", *,
                 username: str = "", password: str = "", starttls: bool = False, retries: int = 2,
                 timeout: float = 30.0, retry_delay: float = 5.0, clock=None, helo: str | None = None) -> None:
        self.reactor = reactor
        self.clock = clock or reactor
        self.host = host
        self.port = port
        self.sender = sender
        self.username = username
        self.password = password
        self.starttls = starttls
        self.retries = retries
        self.timeout = timeout
        self.retry_delay = retry_delay
        self.helo = helo

    def compose(self, message: Message) -> EmailMessage:
        mail = EmailMessage()
        mail["From"] = self.sender
        mail["To"] = message.recipient
        mail["Subject"] = message.subject or message.body.splitlines()[0][:60]
        mail["Date"] = formatdate(self.clock.seconds(), localtime=False)
        mail["Message-ID"] = make_msgid(domain=self.sender.rpartition("@")[2] or None)
        if message.incident_id is not None:
            mail["X-Watchline-Incident"] = str(message.incident_id)
        if message.work_order_id is not None:
            mail["X-Watchline-Work-Order"] = str(message.work_order_id)
        mail.set_content(message.body, charset="utf-8")
        return mail

    async def send(self, message: Message) -> SendResult:
        if not _ADDRESS.fullmatch(message.recipient):
            raise DeliveryFailed(f"not an e-mail address: {message.recipient!r}")
        mail = self.compose(message)
        raw = mail.as_bytes(policy=_WIRE)
        reply, attempts = await with_retries(lambda n: self._deliver(message.recipient, raw), retries=self.retries,
                                             clock=self.clock, base_delay=self.retry_delay)
        queued = re.search(rb"queued as\s+(\S+)", reply, re.I)
        return SendResult(queued.group(1).decode(errors="replace") if queued else mail["Message-ID"], attempts)

    async def _deliver(self, recipient: str, raw: bytes) -> bytes:
        done: Deferred = Deferred()
        factory = _SenderFactory(
            self.username.encode() or None, self.password.encode() or None, self.sender, [recipient], BytesIO(raw),
            done, retries=0, timeout=self.timeout, heloFallback=True, requireAuthentication=bool(self.username),
            requireTransportSecurity=self.starttls, hostname=self.host if self.starttls else None)
        if self.helo:
            factory.domain = self.helo.encode()
        connector = self.reactor.connectTCP(self.host, self.port, factory, timeout=self.timeout)
        try:
            await done
        except smtp.SMTPDeliveryError as e:
            raise DeliveryFailed(f"mail server refused: {e.code} {_text(e.resp)}", permanent=not 400 <= e.code < 500
                                 ) from None
        except smtp.SMTPClientError as e:
            raise DeliveryFailed(f"SMTP failed: {e}", permanent=bool(e.code and e.code >= 500 and not e.retry)
                                 ) from None
        except Exception as e:  # refused, timed out, TLS failure: the next try may get through
            raise DeliveryFailed(f"SMTP to {self.host}:{self.port} failed: {e!r}", permanent=False) from None
        finally:
            connector.disconnect()
        return factory.data_reply or b""


def _text(resp) -> str:
    return resp.decode(errors="replace") if isinstance(resp, bytes) else str(resp)
