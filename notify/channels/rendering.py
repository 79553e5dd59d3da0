"""Rendering notices: jinja2 templates (notify/templates/<notice>.<zh|en>.j2) → ``Message``.

A template's text is the body; a top-level ``{% set subject %}…{% endset %}`` gives the subject (used by
e-mail and webhooks; SMS and voice send the body alone). Templates are strict: a missing value is an
error here, not a blank in a customer's SMS. Times are said in the operator's time zone.
"""

from __future__ import annotations

from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any

import jinja2

from notify.alarm_words import alarm_words
from notify.channels import Message
from notify.verification import BEIJING

LANGUAGES = ("zh", "en")
NOTICES = ("incident_notice", "work_order_dispatched", "campaign_notice")


def language_of(language: str | None) -> str:
    return language if language in LANGUAGES else "zh"


def local_time(at: datetime, language: str, tz: tzinfo = BEIJING) -> str:
    local = at.astimezone(tz)
    return f"{local:%H:%M} on {local:%d %b}" if language == "en" else f"{local.month}月{local.day}日{local:%H:%M}"


class NoticeRenderer:
    def __init__(self, operator: str = "Watchline", hotline: str = "", tz: tzinfo = BEIJING,
                 templates: Path | None = None) -> None:
        self.operator = operator
        self.hotline = hotline
        self.tz = tz
        self._env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(templates or Path(__file__).parent.parent / "templates")),
            autoescape=False, undefined=jinja2.StrictUndefined, keep_trailing_newline=False)

    def render(self, notice: str, language: str | None, recipient: str, *, incident_id: int | None = None,
               work_order_id: int | None = None, **facts: Any) -> Message:
        language = language_of(language)
        template = self._env.get_template(f"{notice}.{language}.j2")
        module = template.make_module({"operator": self.operator, "hotline": self.hotline,
                                       "incident_id": incident_id, "work_order_id": work_order_id, **facts})
        subject = str(getattr(module, "subject", "")).strip() or None
        data = {k: v for k, v in facts.items() if isinstance(v, (str, int, float, bool, type(None)))}
        return Message(recipient, str(module).strip(), notice, subject, language, incident_id, work_order_id, data)

    def incident_notice(self, incident, recipient: str, language: str | None, place: str | None = None) -> Message:
        """A routine alarm told by message (quiet hours): plate, the alarm in words, when, where, whom to call."""
        language = language_of(language)
        return self.render(
            "incident_notice", language, recipient, incident_id=incident.id, plate=incident.plate,
            alarm=incident.alarm, alarm_words=alarm_words(incident.alarm, language),
            time_local=local_time(incident.opened_at, language, self.tz), place=place,
            lat=None if incident.lat is None else f"{incident.lat:.5f}",
            lon=None if incident.lon is None else f"{incident.lon:.5f}")

    def work_order_dispatched(self, order, truck_plate: str, eta_s: float | None, recipient: str,
                              language: str | None = "zh") -> Message:
        """The customer's notice that a rescue truck is on its way, with its plate and ETA in minutes."""
        eta_minutes = None if eta_s is None else max(1, round(eta_s / 60))
        return self.render(
            "work_order_dispatched", language, recipient, incident_id=getattr(order, "incident_id", None),
            work_order_id=order.id, truck_plate=truck_plate, eta_minutes=eta_minutes, eta_s=eta_s,
            customer_plate=getattr(order, "customer_plate", None), address=getattr(order, "address", None))

    def campaign_notice(self, campaign: str, text: str, recipient: str, language: str | None = "zh") -> Message:
        """A campaign's notice sent as a message (the campaign's own text, signed, with the hotline)."""
        return self.render("campaign_notice", language, recipient, campaign=campaign, text=text)
