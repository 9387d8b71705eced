"""The REST routes without path parameters, called directly instead of through Starlette's stack.

Starlette runs every request through `ServerErrorMiddleware`, `ExceptionMiddleware`, the
router's walk over the route list (a regular expression per route until one matches) and
`request_response`'s exception wrapper: four coroutine frames, each wrapping `send` again.
Here a fixed path with its method is looked up in a dict instead, and the endpoint's exceptions
go through the same handlers (`http.EXCEPTION_HANDLERS`) that Starlette is given, so a response
is what Starlette would send (tests/test_direct_routes.py sends every case both ways). For
`POST /medicine/request/`, the hottest route, this took 4.9 % off the server's instructions per
full cycle (`loadtests/instructions.py`; issue 14, docs/benchmarks.md). Everything else (paths
with parameters, other methods, a path with a missing or extra slash, `root_path` deployments)
goes to Starlette as before.

WebSockets never come here: `app.MedreqApp` dispatches them before this.
"""

from __future__ import annotations

import inspect

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from ..http import handle_exception


class DirectRoutes:
    """`app` (the Starlette application) with its parameterless routes looked up by (method, path)."""

    def __init__(self, app: Starlette, routes: list[Route]) -> None:
        self.app = app
        self.table: dict[tuple[str, str], Route] = {
            (method, route.path): route
            for route in routes
            if not route.param_convertors and inspect.iscoroutinefunction(route.endpoint)
            for method in route.methods or ()
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self.table.get((scope["method"], scope["path"])) if scope["type"] == "http" else None
        if route is None or scope.get("root_path"):
            await self.app(scope, receive, send)
            return
        # what Starlette and its router put in the scope on the way to the endpoint
        scope["app"] = self.app
        scope["router"] = self.app.router
        scope["route"] = route
        scope["endpoint"] = route.endpoint
        scope["path_params"] = {}
        request = Request(scope, receive, send)
        try:
            response = await route.endpoint(request)
        except Exception as exc:  # each kind to its handler, as Starlette does
            response = await handle_exception(request, exc)
        await response(scope, receive, send)
