"""``watchline simulate terminals``: run a simulated terminal fleet against any Watchline and print
its statistics (JSON) — frames sent, acked, ack latency, errors."""

from __future__ import annotations

import json
import sys
from typing import Any

from watchline.config import Config


def _target(config: Config, protocol: str, target: str | None) -> tuple[str, int]:
    from watchline.cli import UsageError

    if target is None:
        endpoint = getattr(config.ingest, protocol)
        try:
            return "127.0.0.1", int(endpoint.split(":")[1])
        except (IndexError, ValueError):
            raise UsageError(f"ingest.{protocol} is {endpoint!r}; give --target HOST:PORT") from None
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"--target must be HOST:PORT, got {target!r}")
    return host, int(port)


def simulate_terminals(config: Config, args, reactor: Any) -> int:
    from twisted.internet import defer

    from watchline.cli import UsageError

    if args.count < 1 or args.rate <= 0 or args.duration <= 0 or not 0 <= args.alarm_ratio <= 1:
        raise UsageError("--count >= 1, --rate > 0, --duration > 0 and 0 <= --alarm-ratio <= 1 are required")
    host, port = _target(config, args.protocol, args.target)
    if args.protocol == "jt808":
        from ingest.jt808.simulator import run_fleet

        extra = {"version": args.version, "first_phone": args.first_id or 13800000000}
    else:
        from ingest.gt06.simulator import luhn_imei, run_fleet

        # --first-id is the 14-digit IMEI body; the Luhn check digit is appended.
        extra = {"imeis": [luhn_imei(f"{args.first_id + i:014d}") for i in range(args.count)]} if args.first_id else {}
    from twisted.python.failure import Failure

    result: dict = {}

    async def main() -> None:
        stats = await run_fleet(reactor, host, port, args.count, args.rate, args.alarm_ratio,
                                duration=args.duration, **extra)
        result.update(stats.as_dict())

    def done(outcome) -> None:
        if isinstance(outcome, Failure):
            result["failed"] = f"{outcome.type.__name__}: {outcome.getErrorMessage()}"
        reactor.stop()

    reactor.callWhenRunning(lambda: defer.Deferred.fromCoroutine(main()).addBoth(done))
    reactor.run()
    print(json.dumps(result, indent=2, sort_keys=True, default=str))
    return 0 if result.get("acked") and "failed" not in result else 1

if __name__ == "__main__":  # pragma: no cover
    sys.exit("use: watchline simulate terminals ...")
