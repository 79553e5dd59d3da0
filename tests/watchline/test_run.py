"""``watchline serve`` as a real process: embedded default answers /healthz; SIGTERM stops it cleanly."""

import os
import signal
import subprocess
import sys
import time
import urllib.request

from tests.conftest import free_port


def test_serve_answers_healthz_and_stops_on_sigterm(tmp_path):
    api = free_port()
    env = dict(os.environ, WATCHLINE_API_LISTEN=f"tcp:{api}:interface=127.0.0.1",
               WATCHLINE_INGEST_JT808=f"tcp:{free_port()}:interface=127.0.0.1",
               WATCHLINE_INGEST_GT06=f"tcp:{free_port()}:interface=127.0.0.1",
               WATCHLINE_SIP_LISTEN=f"udp:{free_port()}:interface=127.0.0.1")
    proc = subprocess.Popen([sys.executable, "-m", "watchline", "serve"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        body = None
        for _ in range(100):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{api}/healthz", timeout=1) as resp:
                    body = resp.read()
                break
            except OSError:
                time.sleep(0.1)
        assert body == b'{"status":"ok","database":true}'
        assert (tmp_path / "watchline.db").exists()  # the embedded SQLite file, in the working folder
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=15)
        assert proc.returncode == 0, out.decode()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_serve_with_a_taken_port_exits_non_zero_with_one_line(tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = dict(os.environ, WATCHLINE_API_LISTEN=f"tcp:{port}:interface=127.0.0.1",
                   WATCHLINE_INGEST_JT808="", WATCHLINE_INGEST_GT06="", WATCHLINE_SIP_LISTEN="")
        proc = subprocess.run([sys.executable, "-m", "watchline", "serve"], cwd=tmp_path, env=env,
                              capture_output=True, timeout=30)
    assert proc.returncode != 0
    last = proc.stderr.decode().strip().splitlines()[-1]
    assert last == f"watchline: Couldn't listen on 127.0.0.1:{port}: [Errno 98] Address already in use.", last


def test_sighup_reloads_the_rules_and_keeps_them_on_a_bad_file(tmp_path):
    api = free_port()
    rules = tmp_path / "rules.toml"
    rules.write_text('[[rule]]\nname = "a"\nalarms = ["power_cut"]\nseverity = "emergency"\n')
    env = dict(os.environ, WATCHLINE_API_LISTEN=f"tcp:{api}:interface=127.0.0.1", WATCHLINE_INGEST_JT808="",
               WATCHLINE_INGEST_GT06="", WATCHLINE_SIP_LISTEN="", WATCHLINE_ALARMS_RULES=str(rules))
    log = tmp_path / "out.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "watchline", "serve"], cwd=tmp_path, env=env,
                                stdout=out, stderr=subprocess.STDOUT)

    def wait_for(text: str) -> None:
        for _ in range(150):
            if text in log.read_text():
                return
            time.sleep(0.1)
        raise AssertionError(f"{text!r} not in {log.read_text()}")

    try:
        wait_for("Watchline running")
        rules.write_text('[[rule]]\nname = "b"\nalarms = ["sos"]\nseverity = "panic"\n')
        proc.send_signal(signal.SIGHUP)
        wait_for("rules not reloaded, the old rules stay")
        rules.write_text('[[rule]]\nname = "c"\nalarms = ["sos"]\nseverity = "routine"\n'
                         '[[rule]]\nname = "d"\nalarms = ["*"]\nseverity = "ignore"\n')
        proc.send_signal(signal.SIGHUP)
        wait_for("SIGHUP: 2 alarm rules loaded")
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)
        assert proc.returncode == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_second_sigterm_while_stopping_does_not_stop_the_reactor_again():
    from watchline.run import _stop_once_on_signals

    class Reactor:
        stops = 0

        def callFromThread(self, f, *args):  # noqa: N802
            f(*args)

        def addSystemEventTrigger(self, phase, event, f):  # noqa: N802
            self.before_shutdown = f

        def stop(self):
            self.stops += 1

    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        reactor = Reactor()
        _stop_once_on_signals(reactor)
        handler = signal.getsignal(signal.SIGTERM)
        handler(signal.SIGTERM, None)
        handler(signal.SIGTERM, None)  # Twisted's handler would call stop() again: ReactorNotRunning
        assert reactor.stops == 1

        stopped_otherwise = Reactor()
        _stop_once_on_signals(stopped_otherwise)
        stopped_otherwise.before_shutdown()  # start-up failed: the reactor is stopping already
        signal.getsignal(signal.SIGINT)(signal.SIGINT, None)
        assert stopped_otherwise.stops == 0
    finally:
        for s, h in saved.items():
            signal.signal(s, h)
