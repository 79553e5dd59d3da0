"""``db.deliveries`` part of the storage contract (run on SQLite and PostgreSQL through StorageContract)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import pytest_twisted

from crm.deliveries import NewDelivery
from crm.incidents import NewIncident

T0 = datetime(2026, 5, 1, 15, 30, tzinfo=timezone.utc)


class DeliveriesContract:
    @pytest_twisted.ensureDeferred
    async def test_delivery_pending_then_sent_then_delivered_by_receipt(self, database):
        incident, _ = await database.incidents.open_or_join(NewIncident(
            "D1", "power_cut", "routine", 50, "normal", {"name": "verify_owner", "steps": []}, T0), T0)
        pending = await database.deliveries.add(NewDelivery(
            "sms", "+8613800138000", "incident_notice", "您的车辆 京A12345 主电源断电报警", incident_id=incident.id), T0)
        assert (pending.status, pending.attempts, pending.external_id, pending.created_at) == ("pending", 0, None, T0)
        sent = await database.deliveries.finish(pending.id, "sent", T0 + timedelta(seconds=1), attempts=2,
                                                external_id="smsc-42")
        assert (sent.status, sent.attempts, sent.external_id, sent.body) == (
            "sent", 2, "smsc-42", "您的车辆 京A12345 主电源断电报警")
        assert await database.deliveries.receipt("email", "smsc-42", "delivered", T0) is None  # other channel
        done = await database.deliveries.receipt("sms", "smsc-42", "delivered", T0 + timedelta(seconds=9))
        assert (done.id, done.status, done.updated_at) == (pending.id, "delivered", T0 + timedelta(seconds=9))
        # a late or repeated receipt changes nothing once the row is settled
        assert await database.deliveries.receipt("sms", "smsc-42", "failed", T0, error="UNDELIV") is None
        assert (await database.deliveries.get(pending.id)).status == "delivered"
        assert [d.id for d in await database.deliveries.search(incident_id=incident.id)] == [pending.id]

    @pytest_twisted.ensureDeferred
    async def test_failed_delivery_keeps_its_error_and_filters(self, database):
        a = await database.deliveries.add(NewDelivery("webhook", "https://x.example/hook", "incident_notice",
                                                      "{}", subject="s"), T0)
        b = await database.deliveries.add(NewDelivery("email", "zw@example.com", "work_order_dispatched", "b"), T0)
        await database.deliveries.finish(a.id, "failed", T0, attempts=3, error="HTTP 503 Service Unavailable")
        failed = await database.deliveries.search(status="failed")
        assert [(d.id, d.error, d.attempts) for d in failed] == [(a.id, "HTTP 503 Service Unavailable", 3)]
        assert [d.id for d in await database.deliveries.search(channel="email")] == [b.id]
        assert await database.deliveries.get(10**9) is None
        with pytest.raises(LookupError):
            await database.deliveries.finish(10**9, "sent", T0, attempts=1)
        with pytest.raises(ValueError, match="channel"):
            await database.deliveries.add(NewDelivery("pigeon", "x", "t", "b"), T0)
        with pytest.raises(ValueError, match="status"):
            await database.deliveries.finish(a.id, "pending", T0, attempts=1)
