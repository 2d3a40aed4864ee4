"""The console's web server (aiohttp): the page and its static files, the JSON it polls,
and the buttons' POSTs. `Console` starts and stops it with the topic reader and the
metrics scraper, so `logad console` and the demo host it the same way:

    console = Console(settings)
    await console.start()        # listening at console.url, reading the topics
    await console.wait(stop)     # until `stop` is set (or the reader fails: raised)
    await console.stop()
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import structlog
from aiohttp import web

from schemas.feedback import VERDICTS
from stream.console.guard import host_allowed, post_allowed
from stream.console.metrics_watch import MetricsWatch
from stream.console.names import Names
from stream.console.patterns import Acks, group_alerts
from stream.console.reader import TopicReader, wall_ms
from stream.console.registry_info import registry_view
from stream.console.settings import ConsoleSettings
from stream.console.store import Store
from stream.console.verdicts import Verdicts
from stream.console.views import alerts_view, distribution_view, pipeline_view, session_view

log = structlog.get_logger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
_REGISTRY_TTL_S = 5.0
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _json(obj: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=orjson.dumps(obj, option=orjson.OPT_NON_STR_KEYS),
        status=status,
        content_type="application/json",
        headers={"Cache-Control": "no-store"},
    )


class Console:
    def __init__(self, settings: ConsoleSettings, clock: Callable[[], int] = wall_ms) -> None:
        self.settings = settings
        self.clock = clock
        self.store = Store(settings.window_ms, settings.max_alerts, settings.max_scores)
        # Files given are read now: a bad one stops the start with one line.
        self.acks = Acks(settings.ack_file)
        self.verdicts = Verdicts(settings.feedback)
        self.names = Names(settings.templates, settings.registry)
        self.reader = TopicReader(settings, self.store, clock)
        url = settings.metrics_url
        window_s = settings.window_ms / 1000
        self.watch = MetricsWatch(url, settings.scrape_interval_s, window_s) if url else None
        self._registry_cache: tuple[float, dict[str, Any]] | None = None
        self._runner: web.AppRunner | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.port = settings.port

    @property
    def url(self) -> str:
        host = self.settings.host
        shown = "127.0.0.1" if host in ("0.0.0.0", "") else f"[{host}]" if ":" in host else host
        return f"http://{shown}:{self.port}/"

    # ---- lifecycle

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._guard])
        app.router.add_get("/", self._index)
        app.router.add_static("/static/", STATIC)
        app.router.add_get("/api/status", self._status)
        app.router.add_get("/api/alerts", self._alerts)
        app.router.add_get("/api/scores", self._scores)
        app.router.add_get("/api/pipeline", self._pipeline)
        app.router.add_get("/api/session", self._session)
        app.router.add_post("/api/ack", self._ack)
        app.router.add_post("/api/verdict", self._verdict)
        return app

    async def start(self) -> None:
        s = self.settings
        if not s.loopback:
            log.warning(
                "console_not_on_loopback",
                host=s.host,
                hint="the console has no login: anyone who reaches this address reads the "
                "alerts and can write verdicts",
            )
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, s.host, s.port)
        await site.start()
        sockets = getattr(site._server, "sockets", None) or []
        if sockets:
            self.port = sockets[0].getsockname()[1]
        self._tasks.append(asyncio.create_task(self.reader.run(), name="console-reader"))
        if self.watch is not None:
            self._tasks.append(asyncio.create_task(self.watch.run(), name="console-metrics"))
        log.info("console_listening", url=self.url, loopback=s.loopback)

    async def wait(self, stop: asyncio.Event) -> None:
        """Until `stop` is set; a failed reader (Kafka) is raised here."""
        stopper = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait([stopper, *self._tasks], return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
        for t in self._tasks:
            if t.done() and not t.cancelled() and t.exception() is not None:
                raise t.exception()  # type: ignore[misc]

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._tasks.clear()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # ---- requests

    @web.middleware
    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if not host_allowed(request.headers.get("Host"), self.settings.loopback):
            return web.Response(status=421, text="this console answers on loopback only\n")
        if request.method == "POST" and not post_allowed(
            request.headers.get("Content-Type"),
            request.headers.get("Origin"),
            request.headers.get("Host"),
        ):
            return _json({"error": "a JSON POST from the console's own page only"}, 403)
        return await handler(request)

    async def _index(self, request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    def _now(self) -> int:
        now = self.clock()
        self.store.evict(now)
        return now

    async def _status(self, request: web.Request) -> web.Response:
        s, r = self.settings, self.reader
        return _json(
            {
                "now": self._now(),
                "host": s.host,
                "port": self.port,
                "loopback": s.loopback,
                "window_minutes": s.window_minutes,
                "poll_ms": s.poll_ms,
                "bootstrap": s.kafka.bootstrap,
                "topics": {"alerts": s.topics.alerts_topic, "scores": s.topics.scores_topic},
                "reader": r.state,
                "waiting_for": r.waiting_for,
                "partitions": r.partitions,
                "alerts_seen": self.store.alerts_seen,
                "scores_seen": self.store.scores_seen,
                "undecodable": self.store.undecodable,
                "alerts_kept": len(self.store),
                "feedback": str(s.feedback) if s.feedback else None,
                "ack_file": str(s.ack_file) if s.ack_file else None,
                "metrics_url": s.metrics_url,
                "registry": str(s.registry) if s.registry else None,
            }
        )

    async def _alerts(self, request: web.Request) -> web.Response:
        self._now()
        names = self.names.refresh()
        view = alerts_view(self.store.alerts(), self.acks.until, names, self.verdicts.by_session)
        return _json(view)

    async def _scores(self, request: web.Request) -> web.Response:
        return _json(distribution_view(self.store, self._now()))

    async def _pipeline(self, request: web.Request) -> web.Response:
        view = pipeline_view(self.watch)
        view["registry"] = self._registry()
        return _json(view)

    def _registry(self) -> dict[str, Any] | None:
        if self.settings.registry is None:
            return None
        now = time.monotonic()
        if self._registry_cache is None or now - self._registry_cache[0] > _REGISTRY_TTL_S:
            self._registry_cache = (now, registry_view(self.settings.registry))
        return self._registry_cache[1]

    async def _session(self, request: web.Request) -> web.Response:
        sid = request.query.get("id", "")
        if not sid:
            return _json({"error": "give ?id=SESSION"}, 400)
        self._now()
        return _json(
            session_view(
                sid,
                self.store.session_alerts(sid),
                self.store.session_scores(sid),
                self.names.refresh(),
                self.verdicts.by_session.get(sid),
            )
        )

    async def _body(self, request: web.Request) -> dict[str, Any]:
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            raise web.HTTPBadRequest(text="not JSON") from None
        if not isinstance(body, dict):
            raise web.HTTPBadRequest(text="a JSON object, please")
        return body

    def _group(self, key: object) -> Any:
        for g in group_alerts(self.store.alerts(), self.acks.until):
            if g.key == key:
                return g
        return None

    async def _ack(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        g = self._group(body.get("key"))
        if g is None:
            return _json({"error": "no such group (its alerts may have aged out)"}, 404)
        until = g.last_ms
        await asyncio.get_running_loop().run_in_executor(
            None, self.acks.acknowledge, g.pattern, until
        )
        return _json({"acknowledged": g.key, "until_ms": until, "alerts": len(g.alerts)})

    async def _verdict(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        verdict = body.get("verdict")
        if verdict not in VERDICTS:
            return _json({"error": f"verdict must be one of {', '.join(VERDICTS)}"}, 400)
        if self.settings.feedback is None:
            return _json({"error": "no feedback file: start the console with --feedback FILE"}, 409)
        note = body.get("note") if isinstance(body.get("note"), str) else None
        if isinstance(body.get("session_id"), str) and body["session_id"]:
            sessions = [body["session_id"]]
        else:
            g = self._group(body.get("key"))
            if g is None:
                return _json({"error": "give a session_id or the key of a group"}, 404)
            sessions = sorted({a.session_id for a in (g.open_alerts or g.alerts)})
            note = note or "pattern " + " ".join(g.pattern)
        n = await self.verdicts.record(sessions, verdict, note)
        return _json({"verdict": verdict, "sessions": n})


async def run_console(settings: ConsoleSettings, stop: asyncio.Event) -> None:
    """The console until `stop` is set (what `logad console` runs)."""
    console = Console(settings)
    await console.start()
    try:
        await console.wait(stop)
    finally:
        await console.stop()
