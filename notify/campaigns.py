"""Notice campaigns: creating one from a list, plates or a fleet filter, and changing its state.

``CampaignControl`` is what the API uses: it validates (``notify.campaign_spec``, ``notify.campaign_lists``),
writes through ``db.campaigns`` and publishes ``campaign.<id>.status`` so every ``CampaignRunner`` reacts at
once (the runners also poll, for changes made by the CLI). The dialling itself is ``notify.campaign_runner``.

The steps of ``numbers_for`` are split so the CLI (no reactor, blocking database calls) runs the same
validation: parse the source, look the plates up, resolve phones, check the template renders for all.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from crm.campaign_records import Campaign, NewCampaign, NewNumber, Progress, Recipient
from crm.fleet import KINDS, TIERS, normalise_plate
from notify.campaign_lists import ListEntry, ListError, numbers_from_entries, numbers_from_fleet, parse_list
from notify.campaign_spec import CampaignSpecError, campaign_from_fields, check_variable_name, render_notice

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Source:
    """Who a campaign calls: list entries (file or JSON numbers), plates, or a fleet filter."""

    entries: list[ListEntry] | None = None
    filter: dict[str, Any] | None = None
    origin: str = "line"  # how entries are named in errors: "line" (a file's lines), "numbers", "plates"

    def plates_to_look_up(self) -> list[str] | None:
        if self.entries is not None:
            return sorted({e.plate for e in self.entries if e.plate})
        return None


def source_from_json(body: dict[str, Any], region: str) -> Source:
    """Exactly one of ``numbers`` (phones, or {phone, plate, name, variables}), ``plates`` or ``filter``
    ({tier, kind, plates}); ``csv``/``xlsx`` list files are read by the caller."""
    given = [k for k in ("numbers", "plates", "filter") if body.get(k) is not None]
    if len(given) != 1:
        raise CampaignSpecError("numbers", "give exactly one of numbers, plates, filter, csv or xlsx")
    if "numbers" in given:
        items = body["numbers"]
        if not isinstance(items, list) or not items:
            raise CampaignSpecError("numbers", "numbers must be a non-empty list")
        rows = []
        for i, item in enumerate(items):
            if isinstance(item, str):
                item = {"phone": item}
            if not isinstance(item, dict) or set(item) - {"phone", "plate", "name", "variables"}:
                raise CampaignSpecError(f"numbers[{i}]", "each number is a phone string or {phone, plate, name, variables}")
            variables = item.get("variables") or {}
            if not isinstance(variables, dict) or not all(
                    check_variable_name(str(k)) and isinstance(v, (str, int, float)) for k, v in variables.items()):
                raise CampaignSpecError(f"numbers[{i}].variables", "variables must map names (a-z, 0-9, _) to strings")
            fields = {k: item.get(k) for k in ("phone", "plate", "name")}
            if not all(v is None or isinstance(v, str) for v in fields.values()):
                raise CampaignSpecError(f"numbers[{i}]", "phone, plate and name must be strings")
            rows.append((i, {**{k: str(v) for k, v in variables.items()}, **{k: v or "" for k, v in fields.items()}}))
        try:
            return Source(entries=parse_list(rows, region), origin="numbers")
        except ListError as e:
            line, field, message = e.problems[0]
            raise CampaignSpecError(f"numbers[{line}].{field}", message) from None
    if "plates" in given:
        plates = body["plates"]
        if not isinstance(plates, list) or not plates or not all(isinstance(p, str) and p.strip() for p in plates):
            raise CampaignSpecError("plates", "plates must be a non-empty list of plates")
        return Source(entries=[ListEntry(i, None, normalise_plate(p), None, {}) for i, p in enumerate(plates)],
                      origin="plates")
    return Source(filter=check_filter(body["filter"]))


def check_filter(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict) or set(value) - {"tier", "kind", "plates"}:
        raise CampaignSpecError("filter", "filter must be an object {tier, kind, plates}")
    if value.get("tier") is not None and value["tier"] not in TIERS:
        raise CampaignSpecError("filter.tier", f"tier must be one of {', '.join(TIERS)}")
    if value.get("kind") is not None and value["kind"] not in KINDS:
        raise CampaignSpecError("filter.kind", f"kind must be one of {', '.join(KINDS)}")
    plates = value.get("plates")
    if plates is not None and (not isinstance(plates, list) or not all(isinstance(p, str) for p in plates)):
        raise CampaignSpecError("filter.plates", "plates must be a list of plates")
    return {"tier": value.get("tier"), "kind": value.get("kind"),
            "plates": [normalise_plate(p) for p in plates] if plates is not None else None}


def resolve_numbers(new: NewCampaign, source: Source, recipients: list[Recipient]) -> list[NewNumber]:
    """The campaign's numbers, given the vehicles looked up for the source (plates or filter); checks the
    template renders for each (every variable it uses is in the list)."""
    if source.entries is not None:
        try:
            numbers = numbers_from_entries(source.entries, {r.plate: r for r in recipients})
        except ListError as e:
            if source.origin == "line":
                raise CampaignSpecError(e.field, str(e)) from None
            line, _, message = e.problems[0]
            raise CampaignSpecError(f"{source.origin}[{line}]", message) from None
    else:
        numbers, _ = numbers_from_fleet(recipients)
    if not numbers:
        raise CampaignSpecError("numbers", "no numbers to call (the filter found no vehicle with a phone)")
    for number in numbers:
        render_notice(new.template, number)
    return numbers


def now_of(clock) -> datetime:
    if clock is None:
        return datetime.now(timezone.utc)
    return datetime.fromtimestamp(clock.seconds(), timezone.utc)


def status_message(campaign: Campaign) -> dict[str, Any]:
    return {"id": campaign.id, "name": campaign.name, "status": campaign.status}


class CampaignControl:
    def __init__(self, db, bus, clock, region: str = "CN") -> None:
        self.db = db
        self.bus = bus
        self.clock = clock
        self.region = region

    async def create(self, fields: dict[str, Any], source: Source, actor: str, start: bool = False) -> Campaign:
        """Raises CampaignSpecError naming the bad field; nothing is written unless all of it is good."""
        new = campaign_from_fields(fields)
        plates = source.plates_to_look_up()
        if source.filter is not None:
            recipients = await self.db.campaigns.audience(**source.filter)
        else:
            recipients = await self.db.campaigns.audience(plates=plates) if plates else []
        numbers = resolve_numbers(new, source, recipients)
        campaign = await self.db.campaigns.create(new, numbers, actor, now_of(self.clock))
        if start:
            campaign = await self.change(campaign.id, "start", actor)
        return campaign

    async def change(self, campaign_id: int, action: str, actor: str) -> Campaign:
        """start | pause | resume | cancel; raises LookupError, CampaignStateError."""
        campaign = await self.db.campaigns.change(campaign_id, action, actor, now_of(self.clock))
        await publish(self.bus, f"campaign.{campaign.id}.status", status_message(campaign))
        return campaign

    async def progress(self, campaign_ids: list[int]) -> dict[int, Progress]:
        return await self.db.campaigns.progress(campaign_ids)


async def publish(bus, key: str, message: dict[str, Any]) -> None:
    """Events are for live screens: a bus that is down must not stop a campaign."""
    if bus is None:
        return
    try:
        await bus.produce(key, message)
    except Exception as e:
        log.warning("could not publish %s: %s", key, e)
