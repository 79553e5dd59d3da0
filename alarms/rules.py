"""Classification rules: alarm × tier × time window × geofence × speed → severity, priority, policy.

A rules file (TOML) holds ordered ``[[rule]]`` tables; the first rule that matches decides. Keys:
``alarms`` (names or globs, required), ``tiers``, ``hours`` ("22:00-07:00", local time), ``fences``
(fence ids), ``min_speed_kmh``/``max_speed_kmh``, then ``severity`` (emergency | routine | ignore),
``priority`` (0 = most urgent), ``policy`` (an escalation policy name) and ``quiet_hours`` ("22:00-07:00":
routine alarms opened then get an SMS instead of a call; "" = never quiet; absent = notify.quiet_hours).
The file may define escalation policies as ``[policy.<name>]`` tables (see ``alarms.policies``); a rule
naming a policy that is neither built in nor defined there is refused.
Without a file, or when no rule matches: ``sos, collision, rollover, vehicle_stolen, accident`` are
emergencies, the rest routine. A bad file is refused with an error naming the rule and key; the rules
in force stay.
"""

from __future__ import annotations

import fnmatch
import tomllib
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta, timezone, tzinfo
from pathlib import Path
from typing import Any

from alarms.names import DEFAULT_EMERGENCY
from alarms.policies import POLICIES, PolicyError, parse_policy

SEVERITIES = ("emergency", "routine", "ignore")
TIERS = ("platinum", "gold", "normal")
TIER_RANK = {"platinum": 0, "gold": 1, "normal": 2}
BEIJING = timezone(timedelta(hours=8), "CST")


class RulesError(ValueError):
    pass


@dataclass(frozen=True)
class Classification:
    severity: str
    priority: int  # lower is more urgent; emergencies always sort first
    policy: str
    rule: str  # which rule decided ("default" when none did)
    quiet_hours: str | None = None  # the deciding rule's quiet hours; None = the configured default


@dataclass(frozen=True)
class Rule:
    name: str
    alarms: tuple[str, ...]
    severity: str
    priority: int = 50
    policy: str = ""
    tiers: tuple[str, ...] = ()
    hours: tuple[time, time] | None = None
    fences: tuple[str, ...] = ()
    min_speed_kmh: float | None = None
    max_speed_kmh: float | None = None
    quiet_hours: str | None = None

    def matches(self, alarm: str, tier: str, local: datetime, fence: str | None, speed: float | None) -> bool:
        if not any(fnmatch.fnmatchcase(alarm, pattern) for pattern in self.alarms):
            return False
        if self.tiers and tier not in self.tiers:
            return False
        if self.hours is not None:
            start, end = self.hours
            now = local.time()
            inside = start <= now < end if start < end else (now >= start or now < end)
            if not inside:
                return False
        if self.fences and (fence is None or str(fence) not in self.fences):
            return False
        if self.min_speed_kmh is not None and (speed is None or speed < self.min_speed_kmh):
            return False
        return not (self.max_speed_kmh is not None and (speed is None or speed > self.max_speed_kmh))


@dataclass
class Rules:
    rules: list[Rule] = field(default_factory=list)
    tz: tzinfo = BEIJING
    source: str = "built-in defaults"
    policies: dict[str, dict[str, Any]] = field(default_factory=dict)  # the file's own [policy.<name>]

    def classify(self, alarm: str, tier: str, at: datetime, fence: str | None = None,
                 speed: float | None = None) -> Classification:
        local = at.astimezone(self.tz)
        for rule in self.rules:
            if rule.matches(alarm, tier, local, fence, speed):
                return Classification(rule.severity, rule.priority, rule.policy or _default_policy(rule.severity),
                                      rule.name, rule.quiet_hours)
        severity = "emergency" if alarm in DEFAULT_EMERGENCY else "routine"
        return Classification(severity, 0 if severity == "emergency" else 50, _default_policy(severity), "default")


def _default_policy(severity: str) -> str:
    return "agent_only" if severity == "emergency" else "verify_owner"


def load_rules(path: str | Path | None) -> Rules:
    if not path:
        return Rules()
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise RulesError(f"{path}: cannot read: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise RulesError(f"{path}: not valid TOML: {e}") from None
    return parse_rules(data, str(path))


def parse_rules(data: dict[str, Any], source: str) -> Rules:
    unknown = set(data) - {"rule", "policy", "timezone_offset_hours"}
    if unknown:
        raise RulesError(f"{source}: unknown key {sorted(unknown)[0]!r} (expected [[rule]] and [policy.<name>] tables)")
    offset = data.get("timezone_offset_hours", 8)
    if not isinstance(offset, (int, float)) or not -12 <= offset <= 14:
        raise RulesError(f"{source}: timezone_offset_hours must be a number from -12 to 14")
    raw = data.get("rule", [])
    if not isinstance(raw, list):
        raise RulesError(f"{source}: 'rule' must be an array of tables ([[rule]])")
    policies = _policies(data.get("policy", {}), source)
    rules = [_rule(i, r, source) for i, r in enumerate(raw, start=1)]
    for n, rule in enumerate(rules, start=1):
        if rule.policy and rule.policy not in POLICIES and rule.policy not in policies:
            raise RulesError(f"{source}: rule {n}: unknown policy {rule.policy!r} (built in: "
                             f"{', '.join(POLICIES)}; or define [policy.{rule.policy}])")
    return Rules(rules, timezone(timedelta(hours=offset)), source, policies)


def _policies(raw: Any, source: str) -> dict[str, dict[str, Any]]:
    if not isinstance(raw, dict):
        raise RulesError(f"{source}: 'policy' must be tables ([policy.<name>])")
    try:
        return {name: parse_policy(name, table, source) for name, table in raw.items()}
    except PolicyError as e:
        raise RulesError(str(e)) from None


def _rule(n: int, r: Any, source: str) -> Rule:
    where = f"{source}: rule {n}"
    if not isinstance(r, dict):
        raise RulesError(f"{where}: must be a table")
    known = {"name", "alarms", "tiers", "hours", "fences", "min_speed_kmh", "max_speed_kmh", "severity", "priority",
             "policy", "quiet_hours"}
    unknown = set(r) - known
    if unknown:
        raise RulesError(f"{where}: unknown key {sorted(unknown)[0]!r}")
    alarms = _strings(r, "alarms", where, required=True)
    severity = r.get("severity")
    if severity not in SEVERITIES:
        raise RulesError(f"{where}: severity must be one of {', '.join(SEVERITIES)}, got {severity!r}")
    tiers = _strings(r, "tiers", where)
    bad = [t for t in tiers if t not in TIERS]
    if bad:
        raise RulesError(f"{where}: unknown tier {bad[0]!r}")
    hours = None
    if "hours" in r:
        try:
            start, end = (time.fromisoformat(part.strip()) for part in str(r["hours"]).split("-"))
        except ValueError:
            raise RulesError(f"{where}: hours must look like 22:00-07:00, got {r['hours']!r}") from None
        hours = (start, end)
    quiet = r.get("quiet_hours")
    if quiet is not None and (not isinstance(quiet, str) or (quiet and not _is_window(quiet))):
        raise RulesError(f"{where}: quiet_hours must look like 22:00-07:00 (or \"\" for never), got {quiet!r}")
    priority = r.get("priority", 0 if severity == "emergency" else 50)
    if not isinstance(priority, int) or isinstance(priority, bool) or not 0 <= priority <= 100:
        raise RulesError(f"{where}: priority must be an integer from 0 to 100")
    speeds = {}
    for key in ("min_speed_kmh", "max_speed_kmh"):
        if key in r:
            if isinstance(r[key], bool) or not isinstance(r[key], (int, float)):
                raise RulesError(f"{where}: {key} must be a number")
            speeds[key] = float(r[key])
    policy = r.get("policy", "")
    if not isinstance(policy, str):
        raise RulesError(f"{where}: policy must be a string")
    return Rule(name=str(r.get("name") or f"rule {n}"), alarms=alarms, severity=severity, priority=priority,
                policy=policy, tiers=tiers, hours=hours, fences=tuple(str(f) for f in _strings(r, "fences", where)),
                quiet_hours=quiet, **speeds)


def _is_window(text: str) -> bool:
    parts = text.split("-")
    try:
        return len(parts) == 2 and all(time.fromisoformat(part.strip()) is not None for part in parts)
    except ValueError:
        return False


def _strings(r: dict, key: str, where: str, required: bool = False) -> tuple[str, ...]:
    value = r.get(key)
    if value is None:
        if required:
            raise RulesError(f"{where}: {key} is required")
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, (str, int)) for v in value):
        raise RulesError(f"{where}: {key} must be a list of strings")
    return tuple(str(v) for v in value)
