"""The composition root: build one MultiService tree from the config.

Roles: ``all`` (the embedded default), or one of ``ingest``, ``worker``, ``api``, ``telephony`` for
a production process; they share PostgreSQL, RabbitMQ and Redis and never talk to each other
directly. Listeners are started from Twisted endpoint strings; an empty string turns one off.
"""

from __future__ import annotations

import logging
from typing import Any

from twisted.application import service, strports
from twisted.internet.defer import Deferred, maybeDeferred

from crm.db import Database
from watchline.config import Config

log = logging.getLogger(__name__)

ROLES = ("all", "ingest", "worker", "api", "telephony")
STOP_TIMEOUT = 60.0  # seconds the whole stop may take; a part still stopping then is cancelled


class Watchline(service.MultiService):
    """The running system: ``db``, ``bus`` and ``live`` plus the role's listeners and workers."""

    def __init__(self, config: Config, reactor: Any, role: str = "all") -> None:
        super().__init__()
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}")
        from watchline.live import live_from_url
        from watchline.mq import bus_from_url

        self.config = config
        self.reactor = reactor
        self.role = role
        self.db = Database(config.database.url, reactor, config.database.pool_size, config.database.echo)
        self.db.setServiceParent(self)
        amqp = config.mq.url.startswith("amqp")
        self.bus = bus_from_url(config.mq.url, reactor, **({"exchange": config.mq.exchange} if amqp else {}))
        self.bus.setServiceParent(self)
        redis = config.live.url.startswith("redis")
        self.live = live_from_url(config.live.url, reactor, **({"prefix": config.live.prefix} if redis else {}))
        self.live.setServiceParent(self)
        from ingest.pipeline import IngestPipeline

        self.ingest = IngestPipeline(self.db.vehicles, self.bus, reactor)
        if self.wants("ingest"):
            self._add_terminal_servers()
            if config.ingest.amqp_url:
                from ingest.feeds.amqp_feed import AmqpFeed

                AmqpFeed(self.ingest, reactor, config.ingest.amqp_url, config.ingest.amqp_queue,
                         config.ingest.amqp_exchange).setServiceParent(self)
        from alarms.desk import IncidentDesk

        registry = getattr(getattr(self, "jt808", None), "registry", None)
        self.desk = IncidentDesk(self.db, self.bus, reactor, config.alarms.ack_timeout, feedback=registry)
        if registry is not None:
            from alarms.desk import TerminalConfirmations

            TerminalConfirmations(self.desk).setServiceParent(self)
        if self.wants("telephony") and config.sip.listen:
            from callflows import Telephony

            self.telephony = Telephony(telephony_settings(config), reactor, call_log=self.db.calls)
            self.telephony.setServiceParent(self)
            if config.sip.trunk:  # notice campaigns dial on the same trunk lines as incidents (which go first)
                from notify.campaign_runner import CampaignRunner
                from notify.notice_call import NoticeCall

                notice = NoticeCall(self.telephony, reactor, ring_timeout=config.sip.ring_timeout)
                self.campaigns = CampaignRunner(self.db, self.bus, notice, self.trunk_lines(), reactor)
                self.campaigns.setServiceParent(self)
                if self.role == "telephony":  # the workers' routine incidents are phoned from here
                    from notify.policy_requests import PolicyRunner

                    PolicyRunner(self.db, self.bus, self._notifier(),
                                 queue=f"{config.mq.exchange}.policies").setServiceParent(self)
        self.engine = None
        if self.wants("worker"):
            from alarms.engine import AlarmEngine
            from alarms.rules import load_rules
            from ingest.recorder import PositionRecorder

            PositionRecorder(self.db, self.bus, self.live, reactor, config.ingest.position_batch_size,
                             config.ingest.position_flush_interval).setServiceParent(self)
            self.engine = AlarmEngine(self.db, self.bus, self.live, reactor, self.desk,
                                      rules=load_rules(config.alarms.rules), notifier=self._engine_notifier(),
                                      rules_path=config.alarms.rules, queue=f"{config.mq.exchange}.alarms")
            self.engine.setServiceParent(self)
        self.fleet = self.dispatch = None
        if self.wants("api", "worker"):
            from alarms.dispatch import WorkOrderDesk
            from alarms.rescue_fleet import RescueFleet

            # Each such process keeps the whole rescue fleet (its own subscription to every report).
            # Arrivals on site are watched where reports are worked on (workers); when several workers
            # see the same arrival, the work order's guarded transition lets one of them record it.
            geo = config.geo
            self.fleet = RescueFleet(self.db, self.bus, self.live, reactor, geo.average_speed_kmh, geo.max_position_age)
            self.fleet.setServiceParent(self)
            # Orders are created through the API only, so only a process serving it tells the customer
            # (SMS, webhooks; the timeline says what went, or why nothing did). Elsewhere the desk's
            # fallback would note the text as not sent, and no SMSC session is bound for nothing.
            serves_api = self.wants("api") and bool(config.api.listen)
            self.dispatch = WorkOrderDesk(self.db, self.bus, reactor, self.fleet, on_site_radius_m=geo.on_site_radius_m,
                                          watch_sites=self.wants("worker"),
                                          notices=self.notices() if serves_api else None)
            self.dispatch.setServiceParent(self)
        if self.wants("api") and config.api.listen:
            from api.app import WatchlineApi

            self.api = WatchlineApi(self.db, self.live, config, ingest=self.ingest, desk=self.desk, bus=self.bus,
                                    clock=reactor, rules_reload=self.engine.reload_rules if self.engine else None,
                                    dispatch=(self.fleet, self.dispatch))
            _listen(config.api.listen, self.api.site(), "api").setServiceParent(self)

    def _add_terminal_servers(self) -> None:
        from ingest.limits import ConnectionLimits

        c = self.config.ingest
        if c.jt808:
            from ingest.jt808.protocol import Jt808ServerFactory

            self.jt808 = Jt808ServerFactory(self.ingest, self.reactor, ConnectionLimits(
                c.idle_timeout, c.max_frame_bytes, c.max_buffer_bytes, c.max_bad_frames, c.jt808_accept_unknown))
            TerminalListener(c.jt808, self.jt808, "jt808").setServiceParent(self)
        if c.gt06:
            from ingest.gt06.server import Gt06ServerFactory
            from watchline.config import utc_offset

            self.gt06 = Gt06ServerFactory(self.ingest, self.reactor, ConnectionLimits(
                c.idle_timeout, c.max_frame_bytes, c.max_buffer_bytes, c.max_bad_frames, c.gt06_accept_unknown),
                utc_offset=utc_offset(c.gt06_timezone), ack_locations=c.gt06_ack_locations)
            TerminalListener(c.gt06, self.gt06, "gt06").setServiceParent(self)

    def _engine_notifier(self):
        """A worker process asks the telephony processes over the bus (notify.policy_requests); the
        all-in-one process phones itself when it has a trunk, else routine alarms go to the agents."""
        if self.role == "worker":
            from notify.policy_requests import PolicyRequests

            return PolicyRequests(self.bus)
        return self._notifier()

    def _notifier(self):
        """Verification calls when this process has telephony and a trunk; else straight to the agents."""
        telephony = getattr(self, "telephony", None)
        if telephony is None or not self.config.sip.trunk:
            return None
        from notify.escalation import VerificationNotifier
        from notify.verification import OwnerVerifier

        verifier = OwnerVerifier(telephony, self.db.vehicles.verify_pin, ring_timeout=self.config.sip.ring_timeout)
        return VerificationNotifier(self.desk, self.db.vehicles, verifier, self.trunk_lines(), self.reactor,
                                    notices=self.notices(), quiet_hours=self.config.notify.quiet_hours)

    def trunk_lines(self):
        """The one cap on concurrent outbound calls (notify.lines), shared by every caller in this process."""
        if getattr(self, "_trunk_lines", None) is None:
            from notify.lines import TrunkLines

            self._trunk_lines = TrunkLines(self.config.notify.lines)
        return self._trunk_lines

    def notices(self):
        """The notices hook (notify.notices.Notices) over the channels [notify] configures — SMS, e-mail,
        webhooks, and voice where this process has telephony and a trunk. Built once, started with us."""
        if getattr(self, "_notices", None) is None:
            from notify.channels import channels_from_config
            from notify.channels.rendering import NoticeRenderer
            from notify.notices import Notices

            n = self.config.notify
            telephony = getattr(self, "telephony", None) if self.config.sip.trunk else None
            channels = channels_from_config(n, self.reactor, self.db.deliveries, telephony=telephony,
                                            lines=self.trunk_lines() if telephony is not None else None)
            channels.setServiceParent(self)
            self._notices = Notices(channels, NoticeRenderer(n.operator, n.hotline), self.db.vehicles, n.phone_region,
                                    desk=self.desk)
        return self._notices

    def stopService(self) -> Deferred:  # noqa: N802 - twisted's name
        """Stop the children one at a time, last added first, each after the one before has finished:
        the API and the workers stop (calls hang up, notices finish) while the bus and the database they
        write to still run — MultiService would stop them all at once, so a call ending during shutdown
        found the database gone. The whole stop gets ``STOP_TIMEOUT`` seconds: a part still stopping
        then is cancelled and logged, and the rest are asked to stop without waiting, so shutdown ends
        well inside a supervisor's stop timeout (systemd's default is 90 s)."""
        service.Service.stopService(self)
        return Deferred.fromCoroutine(self._stop_children())

    async def _stop_children(self) -> None:
        deadline = self.reactor.seconds() + STOP_TIMEOUT
        for child in reversed(list(self)):
            name = getattr(child, "name", None) or type(child).__name__
            left = deadline - self.reactor.seconds()
            stopping = maybeDeferred(child.stopService)
            if left <= 0:  # out of time: asked to stop, not waited for
                stopping.addErrback(lambda f, name=name: log.error("stopping %s failed: %s", name, f.getErrorMessage()))
                continue
            try:
                await stopping.addTimeout(left, self.reactor)
            except Exception as e:
                log.error("stopping %s failed: %s", name, str(e) or type(e).__name__)

    def wants(self, *roles: str) -> bool:
        return self.role == "all" or self.role in roles


def telephony_settings(config: Config):
    """The telephony core's settings from ``[sip]``; a trunk given by name is resolved once here."""
    import socket

    from callflows.settings import SettingsError, TelephonySettings, parse_hostport
    from watchline.config import ConfigError

    c = config.sip
    trunk = c.trunk or None
    if trunk:
        host, port = parse_hostport(trunk)
        try:
            trunk = f"{socket.gethostbyname(host)}:{port}"
        except OSError as e:
            raise ConfigError(f"sip.trunk: cannot resolve {host!r}: {e}") from None
    low, high = (int(x) for x in c.rtp_ports.split("-"))
    try:
        return TelephonySettings(
            listen=c.listen, public_host=c.public_host or None, trunk=trunk, username=c.username or None,
            password=c.password or None, register=c.register, allowed_peers=tuple(c.allowed_peers),
            max_calls=c.max_calls, dial_plan=c.dial_plan, rtp_ports=(low, high), recordings_dir=c.recordings,
            prompt_cache_dir=c.prompt_cache, recording_retention_days=float(c.retention_days) or None,
            ring_timeout=c.ring_timeout)
    except SettingsError as e:
        raise ConfigError(f"sip: {e}") from None


class TerminalListener(service.MultiService):
    """A terminal server's listening port. Stopping it also closes the terminals' connections (they
    reconnect to another ingest process, or to this one when it is back): otherwise they would go on
    sending reports into a process whose bus is stopping, unacknowledged. Reports already being
    handled still reach the bus, which stops after this."""

    def __init__(self, endpoint: str, factory: Any, name: str) -> None:
        super().__init__()
        self.factory = factory
        self.setName(name)
        strports.service(endpoint, factory).setServiceParent(self)

    def stopService(self) -> Deferred:  # noqa: N802 - twisted's name
        stopped = maybeDeferred(super().stopService)

        def close(_):
            for connection in list(self.factory.connections):
                connection.transport.loseConnection()

        return stopped.addCallback(close)


def _listen(endpoint: str, factory: Any, name: str) -> service.Service:
    svc = strports.service(endpoint, factory)
    svc.setName(name)
    return svc
