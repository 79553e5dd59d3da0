"""``/api/v1/ingest``: GPS platforms push Traccar forwards and Watchline report JSON.

A request is answered only after its reports are durably on the bus (so a 2xx means the platform
may forget them); 503 tells the platform to retry. Report ids are scoped by the platform's user and
remembered for a day in live state, so a platform re-sending a request never doubles a report.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace

from klein import Klein

from alarms.report import Report
from api.http import ApiError, json_response, read_json, requires, routing_error
from ingest.feeds.fields import FeedError
from ingest.feeds.reports import reports_from_json
from ingest.feeds.traccar import reports_from_traccar

SEEN_TTL = 24 * 3600.0

OPENAPI_PATHS = {
    "/api/v1/ingest/traccar": {"post": {
        "summary": "Traccar event or position forward (JSON); roles: platform, admin",
        "security": [{"bearer": []}],
        "requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}},
        "responses": {"200": {"description": "accepted: {accepted, duplicates}"},
                      "400": {"description": "bad body; error.field is the JSON path"},
                      "503": {"description": "not accepted now; retry"}}}},
    "/api/v1/ingest/reports": {"post": {
        "summary": "One report or {reports: [...]} (at most 1000), idempotent on report_id; roles: platform, admin",
        "security": [{"bearer": []}],
        "requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}},
        "responses": {"200": {"description": "accepted: {accepted, duplicates}"},
                      "400": {"description": "bad body; error.field is the JSON path"},
                      "503": {"description": "not accepted now; retry"}}}},
}


class IngestResource:
    app = Klein()

    def __init__(self, sink, live, users, config) -> None:
        self.sink = sink
        self.live = live
        self.users = users
        self.max_body = config.api.max_body_bytes

    @app.handle_errors
    def _errors(self, request, failure):
        return routing_error(request, failure)

    @app.route("/traccar", methods=["POST"])
    @requires("platform", "admin")
    async def traccar(self, request, user):
        return await self._accept(request, user, reports_from_traccar)

    @app.route("/reports", methods=["POST"])
    @requires("platform", "admin")
    async def reports(self, request, user):
        return await self._accept(request, user, reports_from_json)

    async def _accept(self, request, user, parse):
        body = read_json(request, self.max_body)
        try:
            reports = parse(body)
        except FeedError as e:
            raise ApiError(400, "bad_field", e.message, field=e.path) from None
        fresh: list[Report] = []
        keys: list[str] = []
        for r in reports:
            report = replace(r, report_id=_scoped_id(user.name, r.report_id))
            key = f"ingest:seen:{report.report_id}"
            if await self.live.set_if_absent(key, 1, ttl=SEEN_TTL):
                fresh.append(report)
                keys.append(key)
        try:
            await self.sink.submit(fresh)
        except Exception:
            for key in keys:  # not accepted: the platform's retry must not be taken for a duplicate
                await self.live.delete(key)
            raise ApiError(503, "unavailable", "reports not accepted now; retry") from None
        return json_response(request, {"accepted": len(fresh), "duplicates": len(reports) - len(fresh)})


def _scoped_id(user: str, report_id: str) -> str:
    scoped = f"{user}:{report_id}"
    return scoped if len(scoped) <= 64 else "h" + hashlib.sha256(scoped.encode()).hexdigest()[:63]
