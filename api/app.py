"""The HTTP API root: ``/healthz``, ``/openapi.json`` and the ``/api/v1/<name>`` resources.

Each resource is a Klein app of its own, mounted under a small twisted.web directory tree so that
``/api/v1/vehicles`` and ``/api/v1/vehicles/`` both reach its ``/`` route. Unknown paths get the
same JSON error shape as everything else.
"""

from __future__ import annotations

from klein import Klein
from twisted.web.resource import Resource
from twisted.web.server import Site

from api.http import dumps, handle_errors, json_response
from api.openapi import SPEC, add_paths
from api.vehicles import VehiclesResource


class _JsonNotFound(Resource):
    isLeaf = True

    def render(self, request):
        request.setResponseCode(404)
        request.setHeader(b"Content-Type", b"application/json; charset=utf-8")
        return dumps({"error": {"code": "not_found", "message": "no such resource"}})


class _Directory(Resource):
    def getChild(self, path, request):
        return _JsonNotFound()

    def render(self, request):
        return _JsonNotFound().render(request)


class _Mount(Resource):
    """A Klein app at a fixed prefix: ``/prefix`` is served as ``/prefix/`` (no redirect)."""

    isLeaf = True

    def __init__(self, inner: Resource) -> None:
        super().__init__()
        self.inner = inner

    def render(self, request):
        if not request.postpath:
            request.postpath = [b""]
        return self.inner.render(request)


class Health:
    app = Klein()

    def __init__(self, db) -> None:
        self.db = db

    @app.route("/", methods=["GET"])
    @handle_errors
    async def healthz(self, request):
        ok = await self.db.ping()
        return json_response(request, {"status": "ok" if ok else "degraded", "database": ok}, 200 if ok else 503)


class OpenApi:
    app = Klein()

    @app.route("/", methods=["GET"])
    @handle_errors
    async def spec(self, request):
        return json_response(request, SPEC)


class WatchlineApi:
    def __init__(self, db, live, config, ingest=None, desk=None, bus=None, clock=None, rules_reload=None,
                 dispatch=None) -> None:
        self.db = db
        self.root = _Directory()
        self.root.putChild(b"healthz", _Mount(Health(db).app.resource()))
        self.root.putChild(b"openapi.json", _Mount(OpenApi().app.resource()))
        self.v1 = _Directory()
        api = _Directory()
        self.root.putChild(b"api", api)
        api.putChild(b"v1", self.v1)
        self.mount("vehicles", VehiclesResource(db, live, config))
        from api.campaigns import OPENAPI_PATHS as CAMPAIGN_PATHS
        from api.campaigns import CampaignsResource, DoNotCallResource

        self.mount("campaigns", CampaignsResource(db, bus, config, clock))  # changes publish campaign.<id>.status
        self.mount("do-not-call", DoNotCallResource(db, config, clock))
        add_paths(CAMPAIGN_PATHS)
        from api.fences import OPENAPI_PATHS as FENCE_PATHS
        from api.fences import FencesResource, GeoResource

        self.mount("fences", FencesResource(db, bus, config))  # writes publish fences.changed when a bus is given
        self.mount("geo", GeoResource(db))
        add_paths(FENCE_PATHS)
        if ingest is not None:
            from api.ingest import OPENAPI_PATHS, IngestResource

            self.mount("ingest", IngestResource(ingest, live, db.users, config))
            add_paths(OPENAPI_PATHS)
        if desk is not None:
            from api.incidents import OPENAPI_PATHS as INCIDENT_PATHS
            from api.incidents import IncidentsResource

            self.mount("incidents", IncidentsResource(db, desk, config, live))
            add_paths(INCIDENT_PATHS)
        if bus is not None:
            from api.events import EventStream

            self.v1.putChild(b"events", EventStream(bus, db.users, clock))
            add_paths({"/api/v1/events": {"get": {
                "summary": "Server-Sent Events: incident.*, agent.*, queue.*, fleet.*, dispatch.*, fences.*; campaign.* "
                           "for admin and supervisor (token by header or ?token=)", "responses": {"200": {"description": "text/event-stream"}}}}})
        if rules_reload is not None:
            from api.rules import OPENAPI_PATHS as RULES_PATHS
            from api.rules import RulesResource

            self.mount("rules", RulesResource(db, rules_reload))
            add_paths(RULES_PATHS)
        if dispatch is not None:  # (RescueFleet, WorkOrderDesk)
            from api.dispatch import OPENAPI_PATHS as DISPATCH_PATHS
            from api.dispatch import DispatchResource

            self.mount("dispatch", DispatchResource(db, *dispatch, config))
            add_paths(DISPATCH_PATHS)

    def mount(self, name: str, resource) -> None:
        """Serve ``resource`` (an object with a Klein ``app``) at ``/api/v1/<name>``."""
        self.v1.putChild(name.encode(), _Mount(resource.app.resource()))

    def site(self) -> Site:
        site = Site(self.root)
        site.displayTracebacks = False
        return site
