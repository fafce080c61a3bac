"""Real JupyterLab driven in Debian's Chromium, with a fake microphone, for browser tests."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from aiohttp import web
from playwright.sync_api import Page, Playwright, sync_playwright

from rico_lab._loop_thread import LoopThread
from rico_lab.livekit_server import free_port

CHROMIUM = "/usr/bin/chromium"
# Chromium flags: headless as root, no calls home (this machine's network is closed), a fake
# microphone that plays `wav` in a loop, and audio allowed to play without a click.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
]


def fake_microphone(wav: Path) -> list[str]:
    """Flags that make getUserMedia grant a microphone that plays ``wav``."""
    return [
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        # played once: a looping sentence would talk over later typed turns and tools
        f"--use-file-for-fake-audio-capture={wav}%noloop",
    ]


@contextmanager
def jupyterlab(root: Path, env: dict[str, str]) -> Iterator[str]:
    """Start JupyterLab on ``root``; yields its base URL with the token as query."""
    port, token = free_port(), secrets.token_hex(16)
    settings = root / ".lab-settings"
    # save widget state into the notebook, so the test can check what a saved file holds
    plugin = settings / "@jupyter-widgets" / "jupyterlab-manager"
    plugin.mkdir(parents=True)
    (plugin / "plugin.jupyterlab-settings").write_text(json.dumps({"saveState": True}))
    # no "get notified of news?" toast over the page (and no calls home)
    notes = settings / "@jupyterlab" / "apputils-extension"
    notes.mkdir(parents=True)
    (notes / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False})
    )
    command = [
        sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--port={port}",
        "--ServerApp.ip=127.0.0.1", "--allow-root", f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}", "--LabApp.expose_app_in_browser=True",
        f"--LabApp.user_settings_dir={settings}", f"--LabApp.workspaces_dir={root / '.ws'}",
    ]  # fmt: skip
    log = (root / "jupyterlab.log").open("wb")
    server = subprocess.Popen(command, env={**os.environ, **env}, stdout=log, stderr=log)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=1)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError((root / "jupyterlab.log").read_text()[-3000:]) from None
                time.sleep(0.2)
        yield f"{base}/lab/tree/{{path}}?token={token}"
    finally:
        server.terminate()
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


@contextmanager
def served(app: web.Application) -> Iterator[str]:
    """Serve ``app`` (a page for the browser) on a free loopback port; yields its URL.

    From a thread of its own, so the page is served while the test's thread waits on the
    browser.
    """
    loop, port, runner = LoopThread("page"), free_port(), web.AppRunner(app)

    async def start() -> None:
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()

    loop.run(start(), 10)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        loop.run(runner.cleanup(), 10)
        loop.stop()


@contextmanager
def playwright() -> Iterator[Playwright]:
    """One Playwright driver for a test module: its sync API allows only one at a time."""
    with sync_playwright() as driver:
        yield driver


@contextmanager
def chromium(driver: Playwright, extra_args: list[str]) -> Iterator[Page]:
    """A headless Chromium page (Debian's binary, never a downloaded browser)."""
    if not shutil.which(CHROMIUM):
        raise RuntimeError("Debian's chromium is needed: apt-get install chromium")
    browser = driver.chromium.launch(
        executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS + extra_args
    )
    try:
        yield browser.new_page(viewport={"width": 1200, "height": 900})
    finally:
        browser.close()


def open_notebook(page: Page, url: str) -> None:
    """Load a notebook in JupyterLab and wait until its kernel is idle."""
    page.goto(url)
    page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell", timeout=60_000)
    page.wait_for_selector(".jp-Notebook", timeout=60_000)
    page.wait_for_function(
        """() => {
            const w = window.jupyterapp.shell.currentWidget;
            const k = w && w.sessionContext && w.sessionContext.session
                && w.sessionContext.session.kernel;
            return k && k.status === 'idle';
        }""",
        timeout=60_000,
    )


def run_command(
    page: Page, command: str, args: dict[str, object] | None = None, *, wait: bool = True
) -> None:
    """Execute a JupyterLab command, as a menu item or shortcut would.

    With ``wait`` this returns when the command is done (for a run command: when its cells
    have run); without, as soon as it has started.
    """
    script = "([c, a]) => window.jupyterapp.commands.execute(c, a)"
    if not wait:
        script = "([c, a]) => { window.jupyterapp.commands.execute(c, a); }"
    page.evaluate(script, [command, args or {}])


def run_in_kernel(page: Page, code: str) -> str:
    """Run ``code`` in the open notebook's kernel, not in a cell; returns what it printed.

    The kernel takes it once the running cell (if any) ends, as it takes any request.
    """
    return page.evaluate(
        """async (code) => {
            const kernel = window.jupyterapp.shell.currentWidget.sessionContext.session.kernel;
            const future = kernel.requestExecute({ code, store_history: false });
            let out = "";
            future.onIOPub = (msg) => {
                if (msg.header.msg_type === "stream") out += msg.content.text;
                if (msg.header.msg_type === "error") out += msg.content.evalue;
            };
            await future.done;
            return out;
        }""",
        code,
    )


def contrast(page: Page, selector: str) -> float:
    """WCAG contrast ratio of an element's text against the background behind it."""
    return page.evaluate(
        """(sel) => {
        const el = document.querySelector(sel);
        const rgb = (c) => c.match(/[\\d.]+/g).slice(0, 4).map(Number);
        let bg = null;
        for (let n = el; n && !bg; n = n.parentElement) {
            const c = rgb(getComputedStyle(n).backgroundColor);
            if (c.length < 4 || c[3] > 0) bg = c;
        }
        const lum = ([r, g, b]) => {
            const f = (v) => {
                v /= 255;
                return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
            };
            return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
        };
        const a = lum(rgb(getComputedStyle(el).color)), b = lum(bg);
        return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    }""",
        selector,
    )
