"""What a notice campaign is made of, validated: its calling window, retry policy and message template.

The API and the CLI both build campaigns through ``campaign_from_fields``; every problem is a
``CampaignSpecError`` naming the field. Templates are jinja2 in a sandbox (a supervisor writes them;
they must not reach Python internals) with every variable required (StrictUndefined).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from crm.campaign_records import NewCampaign, NewNumber

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
RETRY_OUTCOMES = ("busy", "no_answer", "invalid_number", "failed")
DEFAULT_TIMEZONE = "Asia/Shanghai"
DEFAULT_WINDOW = "09:00-20:00"
DEFAULT_RETRY = {"busy": {"after_s": 600, "max": 3}, "no_answer": {"after_s": 1800, "max": 2},
                 "failed": {"after_s": 600, "max": 1}}
LANGUAGES = ("zh", "en")
MAX_LINES = 1000
_TEMPLATES = SandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False)
_VARIABLE_RE = re.compile(r"^[a-z_][a-z0-9_]{0,31}$")
_DURATION_RE = re.compile(r"^(\d+(?:\.\d+)?)([smh]?)$")


class CampaignSpecError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Schedule:
    """Numbers are dialled from ``start`` to ``end`` (minutes after local midnight; ``end`` may be 1440)
    on ``days`` (0 = Monday) in ``timezone``. A window with ``start > end`` runs past midnight and
    belongs to the day it starts on."""

    start: int
    end: int
    days: tuple[int, ...]
    timezone: str = DEFAULT_TIMEZONE

    @classmethod
    def parse(cls, window: str = DEFAULT_WINDOW, days: str | list = "mon-sun",
              timezone: str = DEFAULT_TIMEZONE) -> Schedule:
        start, end = parse_window(window)
        zone(timezone)
        return cls(start, end, parse_days(days), timezone)

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> Schedule:
        return cls.parse(f"{value['start']}-{value['end']}", list(value["days"]), value["timezone"])

    def to_json(self) -> dict[str, Any]:
        return {"start": _hhmm(self.start), "end": _hhmm(self.end), "days": [DAYS[d] for d in self.days],
                "timezone": self.timezone}

    def is_open(self, now: datetime) -> bool:
        local = now.astimezone(zone(self.timezone))
        minute = local.hour * 60 + local.minute
        today, yesterday = local.weekday(), (local.weekday() - 1) % 7
        if self.start < self.end:
            return today in self.days and self.start <= minute < self.end
        return (today in self.days and minute >= self.start) or (yesterday in self.days and minute < self.end)

    def next_open(self, now: datetime) -> datetime | None:
        """``now`` when open, else the next opening (None if the window never opens)."""
        if self.is_open(now):
            return now
        tz = zone(self.timezone)
        local = now.astimezone(tz)
        for ahead in range(8):
            day = (local + timedelta(days=ahead)).date()
            if day.weekday() not in self.days:
                continue
            opening = datetime(day.year, day.month, day.day, self.start // 60, self.start % 60, tzinfo=tz)
            if opening > now:
                return opening
        return None


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise CampaignSpecError("timezone", f"unknown time zone {name!r} (e.g. Asia/Shanghai)") from None


def parse_window(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"\s*(\d{1,2}):(\d\d)\s*-\s*(\d{1,2}):(\d\d)\s*", text or "")
    if not m:
        raise CampaignSpecError("window", f"window must look like 09:00-18:00, not {text!r}")
    sh, sm, eh, em = (int(x) for x in m.groups())
    start, end = sh * 60 + sm, eh * 60 + em
    if sh > 23 or sm > 59 or em > 59 or end > 1440 or start == end:
        raise CampaignSpecError("window", f"bad window {text!r} (times 00:00 to 24:00, start != end)")
    return start, end


def parse_days(value: str | list) -> tuple[int, ...]:
    """``mon-fri``, ``mon,wed,sat``, ``daily``, or a list of day names or numbers (0 = Monday)."""
    items = value if isinstance(value, list) else [p.strip() for p in str(value).lower().split(",")]
    found: set[int] = set()
    for item in items:
        if isinstance(item, int) and not isinstance(item, bool) and 0 <= item <= 6:
            found.add(item)
            continue
        text = str(item).strip().lower()[:16]
        if text in ("daily", "all", "*"):
            found.update(range(7))
        elif "-" in text and all(p.strip()[:3] in DAYS for p in text.split("-", 1)):
            a, b = (DAYS.index(p.strip()[:3]) for p in text.split("-", 1))
            found.update(range(a, b + 1) if a <= b else [*range(a, 7), *range(0, b + 1)])
        elif text[:3] in DAYS and text in (text[:3], _long_day(text[:3])):
            found.add(DAYS.index(text[:3]))
        else:
            raise CampaignSpecError("days", f"bad day {text!r} (use mon-fri, mon,wed or daily)")
    if not found:
        raise CampaignSpecError("days", "no days given")
    return tuple(sorted(found))


def _long_day(short: str) -> str:
    return {"mon": "monday", "tue": "tuesday", "wed": "wednesday", "thu": "thursday", "fri": "friday",
            "sat": "saturday", "sun": "sunday"}[short]


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def parse_retry(value: str | dict | None) -> dict[str, dict[str, float]]:
    """``busy=600x3,no_answer=30mx2`` (pause, then the most retries after that outcome) or the same as
    JSON ``{"busy": {"after_s": 600, "max": 3}}``. None gives the defaults; an empty string or ``{}``
    retries nothing."""
    if value is None:
        return {k: dict(v) for k, v in DEFAULT_RETRY.items()}
    rules: dict[str, dict[str, float]] = {}
    if isinstance(value, str):
        for part in filter(None, (p.strip() for p in value.split(","))):
            m = re.fullmatch(r"([a-z_]+)=([0-9.]+[smh]?)x(\d+)", part)
            if not m:
                raise CampaignSpecError("retry", f"bad rule {part!r} (expected OUTCOME=SECONDSxTIMES, e.g. busy=600x3)")
            rules[m.group(1)] = {"after_s": _seconds(m.group(2)), "max": int(m.group(3))}
    elif isinstance(value, dict):
        for outcome, rule in value.items():
            if not isinstance(rule, dict) or set(rule) - {"after_s", "max"}:
                raise CampaignSpecError(f"retry.{outcome}", "must be {after_s, max}")
            after, most = rule.get("after_s", 0), rule.get("max", 0)
            if not _number(after) or not isinstance(most, int) or isinstance(most, bool):
                raise CampaignSpecError(f"retry.{outcome}", "after_s must be a number and max an integer")
            rules[outcome] = {"after_s": float(after), "max": most}
    else:
        raise CampaignSpecError("retry", "retry must be a string like busy=600x3 or an object")
    for outcome, rule in rules.items():
        if outcome not in RETRY_OUTCOMES:
            raise CampaignSpecError("retry", f"cannot retry {outcome!r} (only {', '.join(RETRY_OUTCOMES)})")
        if not 0 <= rule["after_s"] <= 7 * 86400 or not 0 <= rule["max"] <= 20:
            raise CampaignSpecError("retry", f"{outcome}: pause 0 s to 7 days, at most 20 retries")
    return rules


def _seconds(text: str) -> float:
    m = _DURATION_RE.fullmatch(text)
    if not m:
        raise CampaignSpecError("retry", f"bad duration {text!r}")
    return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[m.group(2)]


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_template(text: Any) -> str:
    if not isinstance(text, str) or not text.strip() or len(text) > 4000:
        raise CampaignSpecError("template", "template must be 1 to 4000 characters")
    try:
        _TEMPLATES.parse(text)
    except jinja2.TemplateSyntaxError as e:
        raise CampaignSpecError("template", f"template line {e.lineno}: {e.message}") from None
    return text


def render_notice(template: str, number: NewNumber) -> str:
    """The text read to one number: its list values, plus ``name``, ``plate`` and ``plate_spoken``."""
    values: dict[str, Any] = dict(number.variables or {})
    values.update(name=number.name or "", plate=number.plate or "",
                  plate_spoken=" ".join(number.plate or ""), phone_tail=number.phone[-4:])
    try:
        return _compiled(template).render(**values).strip()
    except jinja2.UndefinedError as e:
        raise CampaignSpecError("template", f"{e.message} for {number.phone}") from None
    except jinja2.TemplateError as e:
        raise CampaignSpecError("template", str(e)) from None


@functools.lru_cache(maxsize=64)
def _compiled(template: str) -> jinja2.Template:
    return _TEMPLATES.from_string(template)


def check_variable_name(name: str) -> bool:
    return bool(_VARIABLE_RE.match(name))


def campaign_from_fields(fields: dict[str, Any]) -> NewCampaign:
    """A NewCampaign from API/CLI fields: name, template, language, lines, confirm, caller_id, window,
    days, timezone (or a schedule object with them), retry."""
    name = fields.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise CampaignSpecError("name", "name must be 1 to 200 characters")
    template = check_template(fields.get("template"))
    language = fields.get("language", "zh")
    if language not in LANGUAGES:
        raise CampaignSpecError("language", f"language must be one of {', '.join(LANGUAGES)}")
    lines = fields.get("lines", 10)
    if not isinstance(lines, int) or isinstance(lines, bool) or not 1 <= lines <= MAX_LINES:
        raise CampaignSpecError("lines", f"lines must be an integer from 1 to {MAX_LINES}")
    confirm = fields.get("confirm", False)
    if not isinstance(confirm, bool):
        raise CampaignSpecError("confirm", "confirm must be true or false")
    caller_id = fields.get("caller_id")
    if caller_id is not None and not (isinstance(caller_id, str) and re.fullmatch(r"\+?[0-9]{3,20}", caller_id)):
        raise CampaignSpecError("caller_id", "caller_id must be 3 to 20 digits")
    schedule = fields.get("schedule") or {}
    if not isinstance(schedule, dict):
        raise CampaignSpecError("schedule", "schedule must be an object {window, days, timezone}")
    for key in ("window", "days", "timezone"):
        value = schedule.get(key, fields.get(key))
        if value is not None and not isinstance(value, (str, list)):
            raise CampaignSpecError(key, f"{key} must be a string")
    parsed = Schedule.parse(schedule.get("window") or fields.get("window") or DEFAULT_WINDOW,
                            schedule.get("days") or fields.get("days") or "mon-sun",
                            schedule.get("timezone") or fields.get("timezone") or DEFAULT_TIMEZONE)
    return NewCampaign(name=name.strip(), template=template, lines=lines, schedule=parsed.to_json(),
                       retry=parse_retry(fields.get("retry")), language=language, confirm=confirm,
                       caller_id=caller_id)
