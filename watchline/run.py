"""``watchline serve``/``demo``: upgrade an embedded SQLite, build the service tree, run the reactor.

SIGTERM and SIGINT stop the reactor; the 'before shutdown' trigger stops the service tree, so
listeners close and in-flight database work finishes before the process exits. SIGHUP reloads the
alarm rules file (a bad file is logged and the rules in force stay).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from typing import Any

from watchline.config import Config

log = logging.getLogger("watchline")


def run_server(config: Config, reactor: Any, role: str = "all", demo: bool = False) -> int:
    from twisted.python import log as twlog

    from crm.db import create_engine
    from crm.migrate import current_revision, head_revision, upgrade
    from watchline.service import Watchline

    twlog.PythonLoggingObserver().start()
    phones = None
    if demo:
        from watchline.demo import demo_config

        config, phones = demo_config(config)
    engine = create_engine(config.database.url)
    try:
        if engine.dialect.name == "sqlite":
            upgrade(engine)  # the embedded default upgrades itself
        elif current_revision(engine) != head_revision(engine):
            print("watchline: the database schema is not up to date: run 'watchline db upgrade'", file=sys.stderr)
            return 2
    except Exception as e:
        print(f"watchline: cannot open the database: {str(e).splitlines()[0]}", file=sys.stderr)
        return 2
    finally:
        engine.dispose()

    from watchline.config import ConfigError

    try:
        app = Watchline(config, reactor, role)
    except (ConfigError, ValueError) as e:
        print(f"watchline: {str(e).splitlines()[0]}", file=sys.stderr)
        return 2
    failed: list[str] = []

    def start() -> None:
        try:
            app.startService()
        except Exception as e:  # a port in use, an unreachable broker at start, ...
            failed.append(str(e))
            log.error("start-up failed: %s", e)
            reactor.stop()
            return
        log.info("Watchline running (role %s); API on %s", role, config.api.listen or "off")
        tune_gc()
        if demo:
            from watchline.demo import start_demo

            started = start_demo(app, reactor, phones)
            started.addCallbacks(lambda demo: reactor.addSystemEventTrigger("before", "shutdown", demo.shutdown),
                                 lambda f: log.error("demo did not start: %s", f.getErrorMessage()))

    reactor.callWhenRunning(start)
    reactor.callWhenRunning(_stop_once_on_signals, reactor)
    _reload_rules_on_sighup(app, reactor)
    reactor.addSystemEventTrigger("before", "shutdown", lambda: app.stopService() if app.running else None)
    reactor.run()
    if failed:
        print(f"watchline: {failed[0].splitlines()[0]}", file=sys.stderr)
        return 1
    return 0


def tune_gc() -> None:
    """Fewer, cheaper collections for a long-running server: everything built at start-up (the
    fleet caches, modules, the service tree) is frozen out of the collector's scans, and young
    collections run less often. Without this a full collection over a few hundred thousand start-up
    objects stalls the reactor for 100-300 ms under load (seen in bench/ingest.py and bench/alarms.py)."""
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)


def _stop_once_on_signals(reactor) -> None:
    """SIGTERM/SIGINT stop the reactor once. Twisted's own handlers call ``reactor.stop`` on every
    signal, so a second one while the parts are still stopping (an impatient supervisor, ``timeout``
    forwarding the signal it got) raised ReactorNotRunning into the log; here it is only noted, and a
    third ends the process at once (the operator means it). A shutdown begun otherwise (start-up
    failed) counts as stopping too. Installed once the reactor runs, replacing Twisted's."""
    signals: list[int] = []
    reactor.addSystemEventTrigger("before", "shutdown", lambda: signals or signals.append(0))

    def handler(signum, _frame) -> None:
        signals.append(signum)
        if len(signals) == 1:
            reactor.callFromThread(log.info, "signal %d: stopping", signum)
            reactor.callFromThread(reactor.stop)
        elif len(signals) < 3:
            reactor.callFromThread(log.info, "signal %d: already stopping (once more to quit at once)", signum)
        else:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, handler)


def _reload_rules_on_sighup(app, reactor) -> None:
    if getattr(app, "engine", None) is None or not hasattr(signal, "SIGHUP"):
        return
    from alarms.rules import RulesError

    def reload() -> None:
        try:
            rules = app.engine.reload_rules()
        except RulesError as e:
            log.error("SIGHUP: rules not reloaded, the old rules stay: %s", e)
            return
        log.info("SIGHUP: %d alarm rules loaded from %s", len(rules.rules), rules.source)

    signal.signal(signal.SIGHUP, lambda signum, frame: reactor.callFromThread(reload))
