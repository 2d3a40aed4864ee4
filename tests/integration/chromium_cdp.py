"""Debian's `chromium`, headless, driven over the DevTools protocol (a WebSocket, with
aiohttp's client): open a page, evaluate JavaScript in it, wait for the DOM to show
something, click, take a screenshot. For the console's browser test and screenshot."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson

MISSING = (
    "chromium is not installed, and the console's browser test needs it: run `make chromium` "
    "(as root it runs `apt-get install -y chromium`; Debian/Ubuntu package `chromium`)"
)


def chromium_binary() -> str | None:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


class Page:
    """One tab, over its DevTools WebSocket."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self._ids = itertools.count(1)

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        msg_id = next(self._ids)
        # Text frames: chromium closes the connection on a binary one.
        await self.ws.send_str(
            orjson.dumps({"id": msg_id, "method": method, "params": params}).decode()
        )
        while True:
            msg = await self.ws.receive(timeout=60)
            if msg.type != aiohttp.WSMsgType.TEXT and msg.type != aiohttp.WSMsgType.BINARY:
                raise RuntimeError(f"DevTools connection closed during {method}: {msg.type}")
            reply = orjson.loads(msg.data)
            if reply.get("id") != msg_id:
                continue  # an event, or a late reply
            if "error" in reply:
                raise RuntimeError(f"{method}: {reply['error']}")
            result: dict[str, Any] = reply.get("result", {})
            return result

    async def goto(self, url: str) -> None:
        await self.send("Page.navigate", url=url)

    async def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (a promise is awaited)."""
        r = await self.send(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in r:
            raise RuntimeError(f"{expression!r} threw: {r['exceptionDetails']}")
        return r.get("result", {}).get("value")

    async def wait_for(self, expression: str, timeout_s: float, what: str) -> Any:
        """Poll until the expression is truthy; its value. Fails naming `what`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            value = await self.evaluate(expression)
            if value:
                return value
            if loop.time() > deadline:
                raise AssertionError(f"the page never showed {what} within {timeout_s:.0f} s")
            await asyncio.sleep(0.25)

    async def dom(self) -> str:
        """The rendered DOM, as --dump-dom prints it."""
        html: str = await self.evaluate("document.documentElement.outerHTML")
        return html

    async def screenshot(self, path: Path, width: int, height: int | None = None) -> None:
        """A PNG of the page at `width` CSS pixels, as tall as its content (or `height`)."""
        whole = height is None
        if height is None:
            height = int(await self.evaluate("document.documentElement.scrollHeight"))
        await self.send(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=False,
        )
        await asyncio.sleep(0.5)  # the charts follow the resize
        shot = await self.send("Page.captureScreenshot", format="png", captureBeyondViewport=whole)
        path.write_bytes(base64.b64decode(shot["data"]))


async def _devtools_port(profile: Path, proc: subprocess.Popen[bytes], timeout_s: float) -> int:
    active = profile / "DevToolsActivePort"
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not active.is_file() or not active.read_text().strip():
        if proc.poll() is not None:
            raise RuntimeError(f"chromium exited with code {proc.returncode} at start")
        if loop.time() > deadline:
            raise RuntimeError(f"chromium opened no DevTools port within {timeout_s:.0f} s")
        await asyncio.sleep(0.1)
    return int(active.read_text().split()[0])


@contextlib.asynccontextmanager
async def chromium_page(
    profile: Path, width: int = 1400, height: int = 1000, log: Path | None = None
) -> AsyncIterator[Page]:
    """A headless chromium (a fresh profile in `profile`) and its first tab."""
    binary = chromium_binary()
    if binary is None:
        raise RuntimeError(MISSING)
    profile.mkdir(parents=True, exist_ok=True)
    (profile / "DevToolsActivePort").unlink(missing_ok=True)  # a previous run's port
    out = log.open("ab") if log is not None else subprocess.DEVNULL
    proc = subprocess.Popen(
        [
            binary,
            "--headless=new",
            "--no-sandbox",  # as root in CI containers
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--remote-debugging-port=0",
            f"--user-data-dir={profile}",
            f"--window-size={width},{height}",
            "about:blank",
        ],
        stdout=out,
        stderr=out,
    )
    try:
        port = await _devtools_port(profile, proc, 60.0)
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/json/list") as r:
                targets = await r.json()
            ws_url = next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page")
            async with http.ws_connect(ws_url, max_msg_size=64 * 1024 * 1024) as ws:
                page = Page(ws)
                await page.send("Page.enable")
                await page.send("Runtime.enable")
                yield page
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if log is not None and not isinstance(out, int):
            out.close()
