"""The ``webhook`` channel: a JSON POST of the notice to a customer's URL (treq over an injected reactor).

The body carries the rendered text and the facts behind it, so a customer system can use either:
``{notice, subject, body, language, incident_id, work_order_id, data}``. A 2xx is success. A 5xx, a
429, a refused connection or a timeout is tried again after 1 s, 2 s, 4 s, … (``retries`` times); any
other 4xx means the request itself is wrong and is not repeated. ``urls`` are the configured customer
endpoints; each notice goes to each of them as its own delivery.
"""

from __future__ import annotations

import json

from treq.client import HTTPClient
from twisted.web.client import Agent, HTTPConnectionPool

from notify.channels import DeliveryFailed, Message, SendResult, with_retries


class WebhookChannel:
    name = "webhook"

    def __init__(self, reactor, urls: list[str] | tuple[str, ...] = (), *, retries: int = 3, timeout: float = 10.0,
                 base_delay: float = 1.0, clock=None, user_agent: str = "Watchline-Webhook/1") -> None:
        self.reactor = reactor
        self.clock = clock or reactor
        self.urls = tuple(urls)
        self.retries = retries
        self.timeout = timeout
        self.base_delay = base_delay
        self.user_agent = user_agent
        # Not persistent: notices are rare, and an idle keep-alive socket only outlives its server.
        self._http = HTTPClient(Agent(reactor, pool=HTTPConnectionPool(reactor, persistent=False)))

    @staticmethod
    def payload(message: Message) -> dict:
        return {"notice": message.template, "subject": message.subject, "body": message.body,
                "language": message.language, "incident_id": message.incident_id,
                "work_order_id": message.work_order_id, "data": dict(message.data)}

    async def send(self, message: Message) -> SendResult:
        if not message.recipient.startswith(("http://", "https://")):
            raise DeliveryFailed(f"not an http(s) URL: {message.recipient!r}")
        body = json.dumps(self.payload(message), ensure_ascii=False, default=str).encode()
        status, attempts = await with_retries(lambda n: self._post(message.recipient, body, n), retries=self.retries,
                                              clock=self.clock, base_delay=self.base_delay)
        return SendResult(f"HTTP {status}", attempts)

    async def _post(self, url: str, body: bytes, attempt: int) -> int:
        headers = {"Content-Type": ["application/json; charset=utf-8"], "User-Agent": [self.user_agent],
                   "X-Watchline-Attempt": [str(attempt)]}
        try:
            response = await self._http.post(url, data=body, headers=headers, timeout=self.timeout,
                                             reactor=self.reactor)
            text = (await response.content())[:200].decode("utf-8", "replace")
        except Exception as e:  # refused, reset, DNS, timeout (a cancelled request): worth another try
            raise DeliveryFailed(f"POST {url} failed: {e!r}", permanent=False) from None
        code = response.code
        if 200 <= code < 300:
            return code
        why = f"POST {url}: HTTP {code} {response.phrase.decode('latin-1', 'replace')}" + (f": {text}" if text else "")
        raise DeliveryFailed(why, permanent=400 <= code < 500 and code not in (408, 429))
