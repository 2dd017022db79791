"""The simulator's own HTTP API, beside the Kubernetes one on the same port:

    POST /sim/v1/faults      {"action", "node", "from", "duration", "mode", "restartAfter"}
    GET  /sim/v1/invariants  {"checked": N, "violations": [{"kind","node","object","detail","at"}]}
    GET  /sim/v1/timeline    ?since=<unix>&kind=&node=   {"events": [...]}
    GET  /sim/v1/nodes       the machines' ground truth (power, boot, partitions, running pods)
    GET  /metrics            kube-state-metrics compatible series (no authentication)

/sim/v1 needs the admin identity's bearer token.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..apiserver import errors
from ..apiserver.http import Request, Response, json_response
from . import ksm
from .faults import Fault, FaultError

if TYPE_CHECKING:
    from .cluster import Cluster


class SimRoutes:
    def __init__(self, cluster: Cluster) -> None:
        self.c = cluster

    def __call__(self, req: Request) -> Response | None:
        path = req.path.rstrip("/")
        if path == "/metrics" and req.method == "GET":
            return Response(200, ksm.render(self.c), "text/plain; version=0.0.4; charset=utf-8")
        if not path.startswith("/sim/"):
            return None
        if req.identity is None or req.identity.name != "admin":
            raise errors.unauthorized()
        if path == "/sim/v1/faults" and req.method == "POST":
            try:
                return json_response(200, self.c.apply_fault(Fault.from_json(req.json())))
            except FaultError as exc:
                raise errors.bad_request(str(exc)) from None
        if req.method != "GET":
            raise errors.method_not_allowed()
        if path == "/sim/v1/invariants":
            return json_response(200, self.c.invariants())
        if path == "/sim/v1/timeline":
            try:
                since = float(req.query["since"]) if req.query.get("since") else None
            except ValueError:
                raise errors.bad_request("since must be a unix timestamp") from None
            events = self.c.timeline.events(since=since, kind=req.query.get("kind") or None,
                                            node=req.query.get("node") or None)
            return json_response(200, {"events": [e.to_dict() for e in events]})
        if path == "/sim/v1/nodes":
            return json_response(200, {"nodes": [self.c.node_state(n) for n in self.c.nodes]})
        raise errors.ApiError(404, "NotFound", "the server could not find the requested resource")
