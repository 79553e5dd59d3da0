"""Classification rules: defaults, first match, windows across midnight, validation errors."""

from datetime import datetime, timezone

import pytest

from alarms.rules import Rules, RulesError, load_rules, parse_rules

NIGHT = datetime(2026, 1, 1, 15, 30, tzinfo=timezone.utc)  # 23:30 in Beijing
DAY = datetime(2026, 1, 1, 4, 0, tzinfo=timezone.utc)  # 12:00 in Beijing


def test_defaults():
    rules = Rules()
    for alarm in ("sos", "collision", "rollover", "vehicle_stolen", "accident"):
        assert rules.classify(alarm, "normal", DAY).severity == "emergency"
    c = rules.classify("illegal_door_open", "gold", DAY)
    assert (c.severity, c.policy, c.rule) == ("routine", "verify_owner", "default")


def test_first_matching_rule_wins():
    rules = parse_rules({"rule": [
        {"name": "night doors", "alarms": ["illegal_*"], "hours": "22:00-07:00", "tiers": ["platinum"],
         "severity": "emergency", "priority": 5},
        {"name": "fast", "alarms": ["overspeed"], "min_speed_kmh": 140, "severity": "emergency"},
        {"alarms": ["low_voltage"], "severity": "ignore"},
    ]}, "test")
    assert rules.classify("illegal_door_open", "platinum", NIGHT).rule == "night doors"
    assert rules.classify("illegal_door_open", "platinum", DAY).severity == "routine"
    assert rules.classify("illegal_door_open", "gold", NIGHT).severity == "routine"
    assert rules.classify("overspeed", "normal", DAY, speed=150).severity == "emergency"
    assert rules.classify("overspeed", "normal", DAY, speed=100).severity == "routine"
    assert rules.classify("low_voltage", "normal", DAY).severity == "ignore"


@pytest.mark.parametrize("text, message", [
    ("[[rule]]\nseverity = 'routine'", "rule 1: alarms is required"),
    ("[[rule]]\nalarms = ['sos']\nseverity = 'urgent'", "rule 1: severity must be"),
    ("[[rule]]\nalarms = ['sos']\nseverity = 'routine'\ntiers = ['vip']", "unknown tier 'vip'"),
    ("[[rule]]\nalarms = ['sos']\nseverity = 'routine'\nhours = 'nights'", "hours must look like"),
    ("[[rule]]\nalarms = ['sos']\nseverity = 'routine'\ncolour = 1", "unknown key 'colour'"),
    ("[[rule]]\nalarms = ['sos']\nseverity = 'routine'\nquiet_hours = '23:00'", "quiet_hours must look like"),
    ("[[rule]]\nalarms = ['sos']\nseverity = 'routine'\nquiet_hours = 22", "quiet_hours must look like"),
    ("rule = 1", "array of tables"),
    ("[[rule]]\nalarms = ['sos']\nseverity = 'routine'\npolicy = 'call_twice'", "unknown policy 'call_twice'"),
    ("[policy.p]\nloops = 9\n[[policy.p.step]]\nkind = 'dial_owner'", "policy 'p': loops must be"),
    ("[policy.p]\nloops = 1", "policy 'p': needs at least one"),
    ("[[policy.p.step]]\nkind = 'dial_pope'", "policy 'p' step 1: kind must be"),
    ("[[policy.p.step]]\nkind = 'dial_owner'\nretry = {verified = {times = 1}}", "only busy, no_answer, failed"),
    ("[[policy.p.step]]\nkind = 'dial_owner'\nretry = {busy = {times = 100}}", "retry.busy.times must be"),
    ("[[policy.p.step]]\nkind = 'dial_owner'\nretry = {busy = {after = -1}}", "after must be a number"),
    ("[[policy.p.step]]\nkind = 'dial_owner'\ntimeout = 'long'", "timeout must be a number"),
    ("[[policy.p.step]]\nkind = 'dial_owner'\ntimeout = 30", "timeout must be a number of seconds from 90"),
    ("[[policy.p.step]]\nkind = 'agent_queue'\n[[policy.p.step]]\nkind = 'dial_owner'",
     "agent_queue can only be the last step"),
    ("[[policy.p.step]]\nkind = 'dial_owner'\n" * 11, "at most 10 dialling steps"),
    ("[[rule", "not valid TOML"),
])
def test_bad_files_are_refused_with_a_clear_error(tmp_path, text, message):
    path = tmp_path / "rules.toml"
    path.write_text(text)
    with pytest.raises(RulesError, match=message):
        load_rules(path)


def test_a_rule_carries_its_quiet_hours_into_the_policy_snapshot():
    from alarms.policies import snapshot

    rules = parse_rules({"rule": [
        {"name": "theft-ish", "alarms": ["power_cut"], "severity": "routine", "quiet_hours": ""},
        {"name": "late", "alarms": ["low_voltage"], "severity": "routine", "quiet_hours": "23:30-06:00"},
    ]}, "test")
    never, late, default = (rules.classify(a, "normal", NIGHT) for a in ("power_cut", "low_voltage", "door"))
    assert (never.quiet_hours, late.quiet_hours, default.quiet_hours) == ("", "23:30-06:00", None)
    assert snapshot(never.policy, never.quiet_hours)["quiet_hours"] == ""
    assert snapshot(late.policy, late.quiet_hours)["quiet_hours"] == "23:30-06:00"
    assert "quiet_hours" not in snapshot(default.policy, default.quiet_hours)
    snapshot("verify_owner", "22:00-07:00")["steps"][0]["timeout"] = 1  # a copy: the policy is untouched
    assert snapshot("verify_owner")["steps"][0]["timeout"] == 120


def test_a_rules_file_defines_policies_with_retries_per_outcome(tmp_path):
    from alarms.policies import dial_steps, retry_rule, snapshot

    path = tmp_path / "rules.toml"
    path.write_text("""
[policy.persistent]
loops = 2
[[policy.persistent.step]]
kind = "dial_owner"
timeout = 90
retry_after = 10
retry = {busy = {times = 3, after = 120}, no_answer = {times = 1, after = 300}}
[[policy.persistent.step]]
kind = "dial_backup"

[[rule]]
alarms = ["power_cut"]
severity = "routine"
policy = "persistent"
""")
    rules = load_rules(path)
    c = rules.classify("power_cut", "normal", DAY)
    policy = snapshot(c.policy, c.quiet_hours, rules.policies)
    assert policy["name"] == "persistent" and "requested" not in policy
    assert [s["kind"] for s in policy["steps"]] == ["dial_owner", "dial_backup", "agent_queue"]
    owner = policy["steps"][0]
    assert (owner["timeout"], owner["retry_after"]) == (90, 10)
    assert retry_rule(owner, "busy") == (3, 120) and retry_rule(owner, "failed") == (0, 0)
    assert len(dial_steps(policy)) == 4
    policy["steps"][0]["retry"]["busy"]["times"] = 0  # a deep copy: the rules' policy is untouched
    assert rules.policies["persistent"]["steps"][0]["retry"]["busy"]["times"] == 3
    assert snapshot("verify_owner")["steps"][0]["retry"]["busy"] == {"times": 1, "after": 60}
