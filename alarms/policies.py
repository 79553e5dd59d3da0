"""Escalation policies (the PagerDuty model): ordered steps, a timeout per step, retries per outcome, loops.

A policy is snapshotted onto the incident when it opens, so editing a policy never changes how an
incident already in flight is handled. Steps: ``dial_owner``, ``dial_backup`` (the notification engine
places verification calls) and ``agent_queue`` (to the agents; the last word). A dialling step has:

- ``timeout``: seconds a call may take before the sweep treats the step as hung (at least 90);
- ``retry``: per call outcome (``busy``, ``no_answer``, ``failed``), how many more calls to the same
  number and the pause before each — ``{busy = {times = 2, after = 120}}``. ``invalid_number`` is never
  retried, and the number is not dialled again in later loops; ``verified``, ``denied``, ``operator``
  and ``pin_failed`` end the policy;
- ``retry_after``: the pause before the next step once this one gives up.

A rules file may define its own policies as ``[policy.<name>]`` tables (``loops`` and ``[[policy.<name>.step]]``)
and name them in rules. A policy may carry ``quiet_hours`` ("HH:MM-HH:MM" or "" for never) from the rule
that chose it.
"""

from __future__ import annotations

from typing import Any

STEP_KINDS = ("dial_owner", "dial_backup", "agent_queue")
RETRYABLE = ("busy", "no_answer", "failed")  # call outcomes a step may retry on the same number
MAX_RETRIES = 10  # per outcome and step: a typo of 100 must not phone an owner a hundred times
MAX_LOOPS = 5
MAX_STEPS = 10  # dialling steps per policy (before loops)
MAX_PAUSE = 24 * 3600.0
# A verification call may ring (sip.ring_timeout, 30 s), greet, and take three PIN tries of up to
# 10 s each with their prompts: a step timeout below this would let the sweep take the incident
# from under an owner still keying their PIN.
MIN_STEP_TIMEOUT = 90.0
# After a call, the policy pauses and then waits for a free trunk line (incidents before campaigns);
# the deadline allows this long for that wait. A policy that cannot get a line for longer is stuck,
# and the sweep hands the incident to the agents.
LINE_WAIT = 300.0

_RETRY = {"busy": {"times": 1, "after": 60}, "no_answer": {"times": 1, "after": 120},
          "failed": {"times": 1, "after": 60}}

POLICIES: dict[str, dict[str, Any]] = {
    # Routine alarms: the owner (a busy line or no answer is tried once more), then the backup contact
    # the same way; then an agent.
    "verify_owner": {"name": "verify_owner", "loops": 1, "steps": [
        {"kind": "dial_owner", "timeout": 120, "retry_after": 30, "retry": _RETRY},
        {"kind": "dial_backup", "timeout": 120, "retry_after": 30, "retry": _RETRY},
        {"kind": "agent_queue"},
    ]},
    # Emergencies: straight to an agent.
    "agent_only": {"name": "agent_only", "loops": 1, "steps": [{"kind": "agent_queue"}]},
}


class PolicyError(ValueError):
    pass


def snapshot(name: str, quiet_hours: str | None = None,
             policies: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """A deep copy of the named policy — a rules file's own ``policies`` first, then the built-in ones
    (unknown names fall back to verify_owner, noted in the copy). ``quiet_hours`` (the deciding rule's,
    "" = never quiet) goes into the copy when given; without it the notifier uses the configured default."""
    known = {**POLICIES, **(policies or {})}
    policy = known.get(name)
    copy = dict(POLICIES["verify_owner"], requested=name) if policy is None else dict(policy)
    copy["steps"] = [_copy_step(s) for s in copy["steps"]]
    if quiet_hours is not None:
        copy["quiet_hours"] = quiet_hours
    return copy


def _copy_step(step: dict[str, Any]) -> dict[str, Any]:
    copy = dict(step)
    if "retry" in copy:
        copy["retry"] = {outcome: dict(rule) for outcome, rule in copy["retry"].items()}
    return copy


def dial_steps(policy: dict[str, Any]) -> list[dict[str, Any]]:
    """The dialling steps in the order they run, loops unrolled."""
    steps = [s for s in policy["steps"] if s["kind"] in ("dial_owner", "dial_backup")]
    return steps * max(1, int(policy.get("loops", 1)))


def retry_rule(step: dict[str, Any], outcome: str) -> tuple[int, float]:
    """(more calls allowed, pause before each) for a call that ended with ``outcome``; (0, 0) for none."""
    rule = (step.get("retry") or {}).get(outcome)
    if not rule:
        return 0, 0.0
    return int(rule.get("times", 0)), float(rule.get("after", 0))


def call_deadline(step: dict[str, Any]) -> float:
    """Seconds a call of the step may take before the sweep treats the policy as hung."""
    return float(step.get("timeout", 120))


def pause_deadline(pause: float, next_step: dict[str, Any]) -> float:
    """Seconds from the start of a pause to the end of the next call: the pause, a line, the call."""
    return pause + LINE_WAIT + call_deadline(next_step)


def parse_policy(name: str, data: Any, where: str) -> dict[str, Any]:
    """A ``[policy.<name>]`` table checked and normalised; PolicyError names the key at fault."""
    where = f"{where}: policy {name!r}"
    if not isinstance(data, dict):
        raise PolicyError(f"{where}: must be a table")
    unknown = set(data) - {"loops", "step"}
    if unknown:
        raise PolicyError(f"{where}: unknown key {sorted(unknown)[0]!r} (expected loops and [[policy.{name}.step]])")
    loops = data.get("loops", 1)
    if not isinstance(loops, int) or isinstance(loops, bool) or not 1 <= loops <= MAX_LOOPS:
        raise PolicyError(f"{where}: loops must be an integer from 1 to {MAX_LOOPS}")
    raw = data.get("step")
    if not isinstance(raw, list) or not raw:
        raise PolicyError(f"{where}: needs at least one [[policy.{name}.step]]")
    steps = [_parse_step(s, f"{where} step {i}") for i, s in enumerate(raw[:MAX_STEPS + 2], start=1)]
    if len(raw) > MAX_STEPS + 1 or sum(s["kind"] != "agent_queue" for s in steps) > MAX_STEPS:
        raise PolicyError(f"{where}: at most {MAX_STEPS} dialling steps")
    if any(s["kind"] == "agent_queue" for s in steps[:-1]):
        raise PolicyError(f"{where}: agent_queue can only be the last step (the agents have the last word)")
    if steps[-1]["kind"] != "agent_queue":
        steps.append({"kind": "agent_queue"})  # the agents always have the last word
    return {"name": name, "loops": loops, "steps": steps}


def _parse_step(s: Any, where: str) -> dict[str, Any]:
    if not isinstance(s, dict):
        raise PolicyError(f"{where}: must be a table")
    kind = s.get("kind")
    if kind not in STEP_KINDS:
        raise PolicyError(f"{where}: kind must be one of {', '.join(STEP_KINDS)}, got {kind!r}")
    if kind == "agent_queue":
        if set(s) - {"kind"}:
            raise PolicyError(f"{where}: agent_queue takes no other keys")
        return {"kind": kind}
    unknown = set(s) - {"kind", "timeout", "retry_after", "retry"}
    if unknown:
        raise PolicyError(f"{where}: unknown key {sorted(unknown)[0]!r}")
    step: dict[str, Any] = {"kind": kind, "timeout": _seconds(s, "timeout", 120, where, minimum=MIN_STEP_TIMEOUT),
                            "retry_after": _seconds(s, "retry_after", 60, where)}
    retry = s.get("retry", {})
    if not isinstance(retry, dict):
        raise PolicyError(f"{where}: retry must be a table of outcomes ({', '.join(RETRYABLE)})")
    step["retry"] = {}
    for outcome, rule in retry.items():
        if outcome not in RETRYABLE:
            raise PolicyError(f"{where}: retry on {outcome!r}: only {', '.join(RETRYABLE)} may be retried")
        if not isinstance(rule, dict) or set(rule) - {"times", "after"}:
            raise PolicyError(f"{where}: retry.{outcome} must look like {{times = 2, after = 120}}")
        times = rule.get("times", 1)
        if not isinstance(times, int) or isinstance(times, bool) or not 0 <= times <= MAX_RETRIES:
            raise PolicyError(f"{where}: retry.{outcome}.times must be an integer from 0 to {MAX_RETRIES}")
        step["retry"][outcome] = {"times": times, "after": _seconds(rule, "after", 60, f"{where}: retry.{outcome}")}
    return step


def _seconds(table: dict, key: str, default: float, where: str, minimum: float = 0.0) -> float:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not minimum <= value <= MAX_PAUSE:
        raise PolicyError(f"{where}: {key} must be a number of seconds from {minimum:g} to {MAX_PAUSE:g}")
    return float(value)
