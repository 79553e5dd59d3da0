"""Running sipp under the reactor: every run bounded by ``-m``, ``-timeout`` and a process timeout that
kills it; logs go to a temporary folder; a missing sipp fails the test under CI=true, else skips."""

from __future__ import annotations

import os
import shutil
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.protocol import ProcessProtocol
from twisted.python.failure import Failure

SIPP = shutil.which("sipp")
SCENARIOS = Path(__file__).parent


def require_sipp() -> str:
    if SIPP is None:
        import pytest

        message = "sipp (Debian package sip-tester) is not installed"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message + " — CI requires it")
        pytest.skip(message)
    return SIPP


@dataclass
class SippResult:
    exit_code: int | None
    killed: bool
    stdout: str
    stderr: str
    errors: str
    stats: str

    def __str__(self) -> str:
        return (f"sipp exit {self.exit_code} (killed={self.killed})\nstderr: {self.stderr[-2000:]}\n"
                f"errors: {self.errors[-3000:]}\nstdout tail: {self.stdout[-1500:]}")


class _SippProcess(ProcessProtocol):
    def __init__(self) -> None:
        self.out: list[bytes] = []
        self.err: list[bytes] = []
        self.ended: Deferred[int | None] = Deferred()

    def outReceived(self, data: bytes) -> None:  # noqa: N802
        self.out.append(data)

    def errReceived(self, data: bytes) -> None:  # noqa: N802
        self.err.append(data)

    def processEnded(self, reason: Failure) -> None:  # noqa: N802
        self.ended.callback(getattr(reason.value, "exitCode", None))


def render_scenario(scenario: str, target_dir: Path, **values: str) -> Path:
    """A copy of a template scenario with UPPER_CASE placeholders replaced (for what sipp's ``-key``
    cannot reach, like a response's status code)."""
    text = (SCENARIOS / scenario).read_text()
    for name, value in values.items():
        text = text.replace(name.upper(), value)
    target = target_dir / f"{Path(scenario).stem}-{'-'.join(values.values())}.xml"
    target.write_text(text)
    return target


def sipp_argv(scenario: str | Path, port: int, media_port: int, log_dir: Path, remote: str | None = None,
              calls: int = 1, timeout: float = 30, keys: dict[str, str] | None = None,
              sets: dict[str, str] | None = None, extra: list[str] | None = None) -> list[str]:
    name = Path(scenario).name
    argv = [require_sipp(), "-sf", str(SCENARIOS / scenario), "-i", "127.0.0.1", "-p", str(port),
            "-mp", str(media_port), "-m", str(calls), "-timeout", f"{int(timeout)}s", "-timeout_error",
            "-nostdin", "-trace_err", "-error_file", str(log_dir / f"{name}.{port}.errors.log"),
            "-trace_stat", "-stf", str(log_dir / f"{name}.{port}.stats.csv")]
    for key, value in (keys or {}).items():
        argv += ["-key", key, value]
    for key, value in (sets or {}).items():
        argv += ["-set", key, value]
    argv += extra or []
    if remote:
        argv.append(remote)
    return argv


def run_sipp(reactor: Any, argv: list[str], timeout: float) -> Deferred[SippResult]:
    """Start sipp now; the Deferred fires when it exits (killed after ``timeout`` + 10 s at the latest)."""
    proto = _SippProcess()
    process = reactor.spawnProcess(proto, argv[0], argv, env=dict(os.environ))
    killed = []

    def kill() -> None:
        killed.append(True)
        try:
            process.signalProcess(signal.SIGKILL)
        except Exception:  # already gone
            pass

    killer = reactor.callLater(timeout + 10, kill)

    def done(code: int | None) -> SippResult:
        if killer.active():
            killer.cancel()
        log_dir = Path(argv[argv.index("-error_file") + 1]).parent
        errors = "".join(p.read_text(errors="replace") for p in log_dir.glob("*.errors.log"))
        stats = "".join(p.read_text(errors="replace") for p in log_dir.glob("*.csv"))
        return SippResult(code, bool(killed), b"".join(proto.out).decode(errors="replace"),
                          b"".join(proto.err).decode(errors="replace"), errors, stats)

    return proto.ended.addCallback(done)
