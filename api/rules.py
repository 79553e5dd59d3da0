"""``/api/v1/rules/reload``: reload the classification rules file (admin); a bad file changes nothing."""

from __future__ import annotations

from klein import Klein

from alarms.rules import RulesError
from api.http import ApiError, json_response, requires, routing_error

OPENAPI_PATHS = {"/api/v1/rules/reload": {"post": {
    "summary": "Reload alarms.rules; 400 with the file's error and the old rules kept", "security": [{"bearer": []}],
    "responses": {"200": {"description": "{source, rules}"}, "400": {"description": "bad rules file"}}}}}


class RulesResource:
    app = Klein()

    def __init__(self, db, reload) -> None:
        self.users = db.users
        self.reload = reload

    @app.handle_errors
    def _errors(self, request, failure):
        return routing_error(request, failure)

    @app.route("/reload", methods=["POST"])
    @requires("admin")
    async def reload_rules(self, request, user):
        try:
            rules = self.reload()
        except RulesError as e:
            raise ApiError(400, "bad_rules", str(e)) from None
        return json_response(request, {"source": rules.source, "rules": len(rules.rules)})
