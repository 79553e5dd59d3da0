"""``watchline campaign …``: create, list, show, start/pause/resume/cancel, report, and the do-not-call list.

The commands write through the database like ``import fleet``; a running server's CampaignRunner picks
the changes up when it next polls (every few seconds). Bad input exits 2 with a one-line reason.
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime, timezone
from pathlib import Path

from watchline.config import Config

ACTIONS = ("start", "pause", "resume", "cancel")


def add_parser(sub, add_config) -> None:
    p = sub.add_parser("campaign", help="notice campaigns and the do-not-call list")
    csub = p.add_subparsers(dest="campaign_command", required=True)
    p = csub.add_parser("create", help="create a campaign from a CSV/XLSX list or a fleet filter")
    add_config(p)
    p.add_argument("--name", required=True)
    p.add_argument("--template", required=True, help="the message (jinja2), or @FILE to read it from a file")
    p.add_argument("--list", metavar="FILE", help="CSV or XLSX: phone and/or plate, name, template variables")
    p.add_argument("--tier", help="fleet filter instead of a list: vehicles of this tier")
    p.add_argument("--kind", help="fleet filter: customer or rescue")
    p.add_argument("--plates", help="fleet filter: comma-separated plates")
    p.add_argument("--lines", type=int, default=10, help="calls at once (default 10)")
    p.add_argument("--window", default="09:00-20:00", help="local calling hours (default 09:00-20:00)")
    p.add_argument("--days", default="mon-sun", help="calling days, e.g. mon-fri (default every day)")
    p.add_argument("--timezone", default="Asia/Shanghai")
    p.add_argument("--language", default="zh", choices=("zh", "en"))
    p.add_argument("--confirm", action="store_true", help='ask "press 1 to confirm"')
    p.add_argument("--retry", default=None,
                   help="per outcome: pause x retries, e.g. busy=600x3,no_answer=1800x2 (default that plus failed=600x1)")
    p.add_argument("--caller-id", help="the number shown to the called party")
    p.add_argument("--start", action="store_true", help="start dialling at once")
    p = csub.add_parser("list", help="campaigns with their progress")
    add_config(p)
    p.add_argument("--status")
    for action in ("show", *ACTIONS):
        p = csub.add_parser(action, help=f"{action} a campaign")
        add_config(p)
        p.add_argument("id", type=int)
    p = csub.add_parser("report", help="per-number report as CSV or XLSX")
    add_config(p)
    p.add_argument("id", type=int)
    p.add_argument("--format", choices=("csv", "xlsx"), help="default: from --out's suffix")
    p.add_argument("--out", required=True, metavar="FILE")
    p = csub.add_parser("dnc", help="the do-not-call list")
    dsub = p.add_subparsers(dest="dnc_command", required=True)
    for action in ("add", "remove"):
        p = dsub.add_parser(action, help=f"{action} a number")
        add_config(p)
        p.add_argument("phone")
        if action == "add":
            p.add_argument("--reason")
    p = dsub.add_parser("list", help="print the list")
    add_config(p)


def run(args: argparse.Namespace, config: Config, open_db, usage_error) -> int:
    from crm.campaign_records import CampaignStateError
    from notify.campaign_lists import ListError
    from notify.campaign_spec import CampaignSpecError

    command = args.campaign_command
    try:
        if command == "create":
            return _create(args, config, open_db, usage_error)
        if command == "dnc":
            return _dnc(args, config, open_db, usage_error)
        db = open_db(config)
        if command == "list":
            return _list(db, args.status)
        campaign = db.campaigns.get_blocking(args.id)
        if campaign is None:
            raise usage_error(f"no campaign {args.id}")
        if command == "show":
            progress = db.campaigns.progress_blocking([campaign.id])[campaign.id]
            print(json.dumps({**campaign.to_json(), "progress": progress.to_json()}, default=str, ensure_ascii=False,
                             indent=2))
            return 0
        if command == "report":
            return _report(db, campaign.id, args, usage_error)
        changed = db.campaigns.change_blocking(campaign.id, command, "cli", _now())
        print(f"campaign {changed.id} is {changed.status}")
        return 0
    except (CampaignSpecError, ListError) as e:
        raise usage_error(str(e)) from None
    except CampaignStateError as e:
        raise usage_error(str(e)) from None


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _create(args, config: Config, open_db, usage_error) -> int:
    from notify.campaign_lists import ListError, parse_list, read_table
    from notify.campaign_spec import CampaignSpecError, campaign_from_fields
    from notify.campaigns import Source, check_filter, resolve_numbers

    template = args.template
    if template.startswith("@"):
        try:
            template = Path(template[1:]).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise usage_error(f"{template[1:]}: cannot read the template: {e}") from None
    new = campaign_from_fields({
        "name": args.name, "template": template, "lines": args.lines, "window": args.window, "days": args.days,
        "timezone": args.timezone, "language": args.language, "confirm": args.confirm, "caller_id": args.caller_id,
        "retry": args.retry})
    filtered = args.tier or args.kind or args.plates
    if bool(args.list) == bool(filtered):
        raise usage_error("give either --list FILE or a fleet filter (--tier, --kind, --plates)")
    if args.list:
        path = Path(args.list)
        kind = "xlsx" if path.suffix.lower() == ".xlsx" else "csv"
        if path.suffix.lower() not in (".csv", ".txt", ".xlsx", ""):
            raise usage_error(f"{path.name}: unsupported list type {path.suffix!r}; expected .csv or .xlsx")
        try:
            data = path.read_bytes()
        except OSError as e:
            raise usage_error(f"{path}: cannot read: {e.strerror}") from None
        try:
            source = Source(entries=parse_list(read_table(data, kind), config.notify.phone_region))
        except ListError as e:
            raise usage_error(f"{path.name}: {e}") from None
    else:
        plates = [p.strip() for p in args.plates.split(",") if p.strip()] if args.plates else None
        source = Source(filter=check_filter({"tier": args.tier, "kind": args.kind, "plates": plates}))
    db = open_db(config)
    plates = source.plates_to_look_up()
    if source.filter is not None:
        recipients = db.campaigns.audience_blocking(**source.filter)
    else:
        recipients = db.campaigns.audience_blocking(plates=plates) if plates else []
    try:
        numbers = resolve_numbers(new, source, recipients)
    except CampaignSpecError as e:
        raise usage_error(f"{Path(args.list).name}: {e.message}" if args.list else str(e)) from None
    campaign = db.campaigns.create_blocking(new, numbers, "cli", _now())
    if args.start:
        campaign = db.campaigns.change_blocking(campaign.id, "start", "cli", _now())
    progress = db.campaigns.progress_blocking([campaign.id])[campaign.id]
    print(f"campaign {campaign.id} created: {progress.total} numbers ({progress.skipped} on the do-not-call list), "
          f"{campaign.status}")
    return 0


def _list(db, status: str | None) -> int:
    found = db.campaigns.search_blocking(status)
    progress = db.campaigns.progress_blocking([c.id for c in found]) if found else {}
    for c in found:
        p = progress[c.id]
        print(f"{c.id}\t{c.status}\t{p.done + p.skipped}/{p.total} finished\t{p.attempts} calls\t{c.name}")
    return 0


def _report(db, campaign_id: int, args, usage_error) -> int:
    from notify.campaign_lists import report_bytes

    out = Path(args.out)
    kind = args.format or out.suffix.lower().lstrip(".")
    if kind not in ("csv", "xlsx"):
        raise usage_error(f"{out}: choose --format csv or xlsx (or a .csv/.xlsx file name)")
    numbers = db.campaigns.numbers_blocking(campaign_id)
    try:
        out.write_bytes(report_bytes(numbers, kind))
    except OSError as e:
        raise usage_error(f"{out}: cannot write: {e.strerror}") from None
    print(f"wrote {len(numbers)} numbers to {out}")
    return 0


def _dnc(args, config: Config, open_db, usage_error) -> int:
    from crm.fleet import parse_phone

    if args.dnc_command == "list":
        for e in open_db(config).campaigns.dnc.search_blocking(limit=1_000_000):
            print(f"{e.phone}\t{e.added_at:%Y-%m-%d %H:%M}\t{e.reason or ''}")
        return 0
    parsed = parse_phone(args.phone, config.notify.phone_region)
    if parsed is None:
        raise usage_error(f"invalid phone {args.phone!r}")
    db = open_db(config)
    if args.dnc_command == "add":
        db.campaigns.dnc.add_blocking(parsed.e164, args.reason, "cli", _now())
        print(f"{parsed.e164} is on the do-not-call list")
        return 0
    if not db.campaigns.dnc.remove_blocking(parsed.e164, "cli", _now()):
        raise usage_error(f"{parsed.e164} is not on the do-not-call list")
    print(f"{parsed.e164} removed from the do-not-call list")
    return 0
