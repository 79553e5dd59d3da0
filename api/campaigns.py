"""``/api/v1/campaigns`` (notice campaigns, their progress and per-number reports) and
``/api/v1/do-not-call`` (numbers no campaign may dial). Supervisors and admins only.

A campaign is created with one JSON body: the campaign's fields plus exactly one source of numbers —
``numbers`` (phones or {phone, plate, name, variables}), ``plates``, ``filter`` ({tier, kind, plates}),
``csv`` (the list file's text) or ``xlsx`` (the list file, base64). ``"start": true`` starts it at once.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from klein import Klein
from twisted.internet.threads import deferToThreadPool

from api.http import (
    WRITE_ROLES,
    ApiError,
    int_arg,
    json_response,
    query_arg,
    read_json,
    requires,
    routing_error,
)
from crm.campaign_records import ACTIONS, STATES, Campaign, CampaignStateError, Progress
from crm.fleet import parse_phone
from notify.campaign_lists import ListError, parse_list, read_table, report_bytes, report_json
from notify.campaign_spec import CampaignSpecError
from notify.campaigns import CampaignControl, Source, now_of, source_from_json

SOURCES = ("numbers", "plates", "filter", "csv", "xlsx")
FIELDS = ("name", "template", "language", "lines", "confirm", "caller_id", "window", "days", "timezone",
          "schedule", "retry", "start")
_TYPES = {"csv": b"text/csv; charset=utf-8",
          "xlsx": b"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}


def campaign_json(c: Campaign, progress: Progress | None) -> dict[str, Any]:
    body = c.to_json()
    body["progress"] = progress.to_json() if progress is not None else None
    return body


class CampaignsResource:
    app = Klein()

    def __init__(self, db, bus, config, reactor=None) -> None:
        self.db = db
        self.users = db.users
        self.reactor = reactor
        self.region = config.notify.phone_region
        self.max_body = config.api.max_body_bytes
        self.control = CampaignControl(db, bus, reactor, self.region)

    @app.handle_errors
    def _errors(self, request, failure):
        return routing_error(request, failure)

    @app.route("/", methods=["GET"])
    @requires(*WRITE_ROLES)
    async def search(self, request, user):
        status = query_arg(request, "status")
        if status is not None and status not in STATES:
            raise ApiError(400, "bad_query", f"status must be one of {', '.join(STATES)}", field="status")
        found = await self.db.campaigns.search(status, int_arg(request, "limit", 100, 1, 1000),
                                               int_arg(request, "offset", 0, 0, 10_000_000))
        progress = await self.db.campaigns.progress([c.id for c in found]) if found else {}
        return json_response(request, {"campaigns": [campaign_json(c, progress.get(c.id)) for c in found]})

    @app.route("/", methods=["POST"])
    @requires(*WRITE_ROLES)
    async def create(self, request, user):
        body = read_json(request, self.max_body)
        if not isinstance(body, dict):
            raise ApiError(400, "bad_body", "body must be a JSON object")
        unknown = sorted(set(body) - set(FIELDS) - set(SOURCES))
        if unknown:
            raise ApiError(400, "bad_field", f"unknown field {unknown[0]}", field=unknown[0])
        start = body.get("start", False)
        if not isinstance(start, bool):
            raise ApiError(400, "bad_field", "start must be true or false", field="start")
        try:
            source = self._source(body)
            campaign = await self.control.create({k: body[k] for k in FIELDS if k in body and k != "start"},
                                                 source, user.name, start=start)
        except CampaignSpecError as e:
            raise ApiError(400, "bad_field", e.message, field=e.field) from None
        progress = await self.db.campaigns.progress([campaign.id])
        return json_response(request, campaign_json(campaign, progress[campaign.id]), 201)

    def _source(self, body: dict[str, Any]) -> Source:
        files = [k for k in ("csv", "xlsx") if body.get(k) is not None]
        if not files:
            return source_from_json(body, self.region)
        if len(files) > 1 or any(body.get(k) is not None for k in ("numbers", "plates", "filter")):
            raise CampaignSpecError(files[0], "give exactly one of numbers, plates, filter, csv or xlsx")
        kind = files[0]
        if not isinstance(body[kind], str):
            raise CampaignSpecError(kind, f"{kind} must be a string")
        if kind == "csv":
            data = body["csv"].encode("utf-8")
        else:
            try:
                data = base64.b64decode(body["xlsx"], validate=True)
            except (binascii.Error, ValueError):
                raise CampaignSpecError("xlsx", "xlsx must be the file in base64") from None
        try:
            return Source(entries=parse_list(read_table(data, kind), self.region))
        except ListError as e:
            raise CampaignSpecError(kind, f"{kind} {e}") from None

    @app.route("/<int:campaign_id>", methods=["GET"])
    @requires(*WRITE_ROLES)
    async def get(self, request, campaign_id: int, user):
        campaign = await self._campaign(campaign_id)
        progress = await self.db.campaigns.progress([campaign_id])
        return json_response(request, campaign_json(campaign, progress[campaign_id]))

    @app.route("/<int:campaign_id>/<action>", methods=["POST"])
    @requires(*WRITE_ROLES)
    async def act(self, request, campaign_id: int, action: str, user):
        if action not in ACTIONS:
            raise ApiError(404, "not_found", "no such resource")
        try:
            campaign = await self.control.change(campaign_id, action, user.name)
        except LookupError:
            raise ApiError(404, "not_found", f"no campaign {campaign_id}") from None
        except CampaignStateError as e:
            raise ApiError(409, "conflict", str(e)) from None
        progress = await self.db.campaigns.progress([campaign_id])
        return json_response(request, campaign_json(campaign, progress[campaign_id]))

    @app.route("/<int:campaign_id>/report", methods=["GET"])
    @requires(*WRITE_ROLES)
    async def report(self, request, campaign_id: int, user):
        kind = query_arg(request, "format", "json")
        if kind not in ("json", "csv", "xlsx"):
            raise ApiError(400, "bad_query", "format must be json, csv or xlsx", field="format")
        campaign = await self._campaign(campaign_id)
        numbers = await self.db.campaigns.numbers(campaign_id)
        if kind == "json":
            return json_response(request, {"campaign": campaign.id, "numbers": [report_json(n) for n in numbers]})
        if self.reactor is not None:  # an XLSX of many rows takes a while: not on the reactor thread
            data = await deferToThreadPool(self.reactor, self.reactor.getThreadPool(), report_bytes, numbers, kind)
        else:
            data = report_bytes(numbers, kind)
        request.setHeader(b"Content-Type", _TYPES[kind])
        request.setHeader(b"Content-Disposition", f'attachment; filename="campaign-{campaign_id}.{kind}"'.encode())
        request.setHeader(b"Cache-Control", b"no-store")
        return data

    async def _campaign(self, campaign_id: int) -> Campaign:
        campaign = await self.db.campaigns.get(campaign_id)
        if campaign is None:
            raise ApiError(404, "not_found", f"no campaign {campaign_id}")
        return campaign


class DoNotCallResource:
    app = Klein()

    def __init__(self, db, config, reactor) -> None:
        self.db = db
        self.users = db.users
        self.reactor = reactor
        self.region = config.notify.phone_region
        self.max_body = config.api.max_body_bytes

    @app.handle_errors
    def _errors(self, request, failure):
        return routing_error(request, failure)

    @app.route("/", methods=["GET"])
    @requires(*WRITE_ROLES)
    async def search(self, request, user):
        found = await self.db.campaigns.dnc.search(int_arg(request, "limit", 1000, 1, 10_000),
                                                 int_arg(request, "offset", 0, 0, 10_000_000))
        return json_response(request, {"numbers": [{"phone": e.phone, "reason": e.reason, "added_at": e.added_at}
                                                   for e in found]})

    @app.route("/", methods=["POST"])
    @requires(*WRITE_ROLES)
    async def add(self, request, user):
        body = read_json(request, self.max_body)
        if not isinstance(body, dict):
            raise ApiError(400, "bad_body", "body must be a JSON object")
        phone = self._phone(body.get("phone"))
        reason = body.get("reason")
        if reason is not None and (not isinstance(reason, str) or len(reason) > 200):
            raise ApiError(400, "bad_field", "reason must be a string of at most 200 characters", field="reason")
        entry = await self.db.campaigns.dnc.add(phone, reason, user.name, now_of(self.reactor))
        return json_response(request, {"phone": entry.phone, "reason": entry.reason, "added_at": entry.added_at}, 201)

    @app.route("/<phone>", methods=["DELETE"])
    @requires(*WRITE_ROLES)
    async def remove(self, request, phone: str, user):
        e164 = self._phone(phone)
        if not await self.db.campaigns.dnc.remove(e164, user.name, now_of(self.reactor)):
            raise ApiError(404, "not_found", f"{e164} is not on the do-not-call list")
        return json_response(request, {"phone": e164, "removed": True})

    def _phone(self, value: Any) -> str:
        parsed = parse_phone(value, self.region) if isinstance(value, str) else None
        if parsed is None:
            raise ApiError(400, "bad_field", f"invalid phone {value!r}", field="phone")
        return parsed.e164


OPENAPI_PATHS = {
    "/api/v1/campaigns": {
        "get": {"summary": "Notice campaigns, newest first, each with its progress; filter status; paging "
                           "limit/offset", "security": [{"bearer": []}],
                "responses": {"200": {"description": "{campaigns: [...]}"}}},
        "post": {"summary": "Create a campaign: {name, template (jinja2: name, plate, plate_spoken and the list's "
                            "columns), lines, confirm, language zh|en, caller_id, window 09:00-18:00, days mon-fri, "
                            "timezone, retry busy=600x3,no_answer=1800x2, start} plus one of numbers, plates, "
                            "filter {tier, kind, plates}, csv (text) or xlsx (base64); columns phone and/or plate, "
                            "name, template variables", "security": [{"bearer": []}],
                 "responses": {"201": {"description": "the campaign with its progress"},
                               "400": {"description": "{error: {code, message, field}}"}}}},
    "/api/v1/campaigns/{id}": {"get": {"summary": "One campaign with its progress", "security": [{"bearer": []}],
                                       "responses": {"200": {"description": "campaign"}}}},
    **{f"/api/v1/campaigns/{{id}}/{action}": {"post": {
        "summary": summary, "security": [{"bearer": []}],
        "responses": {"200": {"description": "the campaign"}, "409": {"description": "not allowed in this state"}}}}
       for action, summary in (("start", "Start dialling (a draft)"),
                               ("pause", "Stop new dials; calls in progress finish"),
                               ("resume", "Dial again (a paused campaign)"),
                               ("cancel", "Stop for good; numbers not yet called are skipped"))},
    "/api/v1/campaigns/{id}/report": {"get": {
        "summary": "Per-number report (outcome, attempts, durations); format=json|csv|xlsx",
        "security": [{"bearer": []}], "responses": {"200": {"description": "JSON, CSV or XLSX"}}}},
    "/api/v1/do-not-call": {
        "get": {"summary": "Numbers no campaign dials", "security": [{"bearer": []}],
                "responses": {"200": {"description": "{numbers: [{phone, reason, added_at}]}"}}},
        "post": {"summary": "Add {phone, reason}", "security": [{"bearer": []}],
                 "responses": {"201": {"description": "the entry"}}}},
    "/api/v1/do-not-call/{phone}": {"delete": {"summary": "Remove a number", "security": [{"bearer": []}],
                                               "responses": {"200": {"description": "removed"}}}},
}
