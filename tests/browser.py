"""Headless Chromium for the report's browser tests (tests/e2e/test_report_browser.py).

Selenium drives Debian's `chromium` through Debian's `chromedriver`, both named by path, so
Selenium Manager never looks for (or downloads) a browser or driver of its own. The viewport is
set through the DevTools protocol, so `window.innerWidth` is exactly the width asked for
whatever the window's frame takes."""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

try:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.select import Select
except ImportError:  # require_browser() says how to install it
    webdriver = None

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
INSTALL = (
    "apt-get install chromium chromium-driver; "
    ".venv/bin/pip install -c constraints.txt -e '.[test]' (selenium)"
)
# Root needs --no-sandbox; the rest keep a test browser from calling home or updating itself
# (this machine reaches no network but the package registries).
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)

# The CSS selector-like name of an element, for failure messages: tag#id.class.
NAME_JS = """const name = el => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '')
  + [...el.classList].map(c => '.' + c).join('');"""
# Rendered: neither the element nor an ancestor has display: none (computed, so a `hidden`
# attribute that the page's CSS overrides with its own display does not count as hidden).
SHOWN_JS = """const shown = el => { for (let a = el; a; a = a.parentElement)
    if (getComputedStyle(a).display === 'none') return false;
  return getComputedStyle(el).visibility !== 'hidden'; };"""
# Visible boxes past the viewport's left or right edge, outermost only (a wide table's cells
# are not listed again). A box inside a scroll container (overflow-x auto/scroll/hidden/clip)
# that itself fits is fine: the reader scrolls that container, not the page.
OVERFLOW_JS = f"""{NAME_JS}
const view = document.documentElement.clientWidth;
const out = r => r.right > view + 0.5 || r.left < -0.5;
const contained = el => {{ for (let a = el.parentElement; a; a = a.parentElement)
    if (/^(auto|scroll|hidden|clip)$/.test(getComputedStyle(a).overflowX)
        && !out(a.getBoundingClientRect())) return true;
  return false; }};
const covered = new Set(), offenders = [];
for (const el of [document.body, ...document.body.querySelectorAll('*')]) {{
  if (covered.has(el.parentElement)) {{ covered.add(el); continue; }}
  const r = el.getBoundingClientRect();
  if (!r.width || !r.height || getComputedStyle(el).visibility === 'hidden') continue;
  if (!out(r) || contained(el)) continue;
  covered.add(el);
  offenders.push({{name: name(el), left: r.left, right: r.right, width: r.width}});
}}
return {{scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth,
        clientWidth: view, offenders}};"""


@dataclass
class Overflow:
    scroll_width: int
    inner_width: int
    client_width: int
    offenders: list[str]

    def describe(self) -> str:
        head = (
            f"document scrollWidth {self.scroll_width}px, innerWidth {self.inner_width}px, "
            f"clientWidth {self.client_width}px; outermost boxes past the viewport:"
        )
        return "\n".join([head, *(f"  {o}" for o in self.offenders or ["none"])])


@dataclass
class Logs:
    console_errors: list[str]  # SEVERE entries of the browser log: script and load errors
    requests: list[str]  # the URL of every Network.requestWillBeSent


def unavailable() -> str | None:
    """Why no browser test can run here, or None."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if webdriver is None:
        missing.append("the selenium package")
    return f"no headless Chromium: {', '.join(missing)} missing ({INSTALL})" if missing else None


def require_browser() -> None:
    why = unavailable()
    if why is None:
        return
    # CI sets this: there the browser tests must run, never skip.
    if os.environ.get("DUALBENCH_REQUIRE_BROWSER"):
        pytest.fail(f"{why}, and DUALBENCH_REQUIRE_BROWSER is set")
    pytest.skip(why)


class Chromium:
    """One headless Chromium with one tab; `javascript=False` starts it with scripts off."""

    def __init__(self, profile: Path, *, javascript: bool = True):
        options = webdriver.ChromeOptions()
        options.binary_location = str(CHROMIUM)
        for flag in (*FLAGS, f"--user-data-dir={profile}"):
            options.add_argument(flag)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
        if not javascript:
            prefs = {"profile.managed_default_content_settings.javascript": 2}
            options.add_experimental_option("prefs", prefs)
        self.driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)

    def quit(self) -> None:
        self.driver.quit()

    def js(self, script: str, *args):
        return self.driver.execute_script(script, *args)

    def cdp(self, command: str, **params) -> dict:
        return self.driver.execute_cdp_cmd(command, params)

    def open(self, url: str, width: int, height: int = 900) -> None:
        """Load `url` afresh in a `width` x `height` viewport, on screen media."""
        self.cdp(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=False,
        )
        self.cdp("Emulation.setEmulatedMedia", media="")
        self.logs()  # drop what earlier pages left
        self.driver.get(url)
        inner = self.js("return window.innerWidth")
        assert inner == width, f"asked for a {width}px viewport, window.innerWidth is {inner}"

    def logs(self) -> Logs:
        """The console errors and requests since the last call (reading empties the logs)."""
        console = [e["message"] for e in self.driver.get_log("browser") if e["level"] == "SEVERE"]
        events = (json.loads(e["message"])["message"] for e in self.driver.get_log("performance"))
        requests = [
            ev["params"]["request"]["url"]
            for ev in events
            if ev["method"] == "Network.requestWillBeSent"
            # The new-tab page the browser starts on goes on loading chrome:// resources for a
            # while; those are the browser's own, not the report's.
            and not ev["params"].get("documentURL", "").startswith("chrome")
        ]
        return Logs(console, requests)

    def overflow(self) -> Overflow:
        found = self.js(OVERFLOW_JS)
        view = found["clientWidth"]
        offenders = [
            f"{o['name']}: {o['width']:.0f}px wide, from x={o['left']:.0f} to "
            f"{o['right']:.0f} ({o['right'] - view:+.0f}px past the right edge)"
            for o in found["offenders"]
        ]
        return Overflow(found["scrollWidth"], found["innerWidth"], view, offenders)

    def find(self, css: str) -> list:
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def choose(self, select_id: str, value: str) -> list[str]:
        """Pick `value` in <select id=select_id> as a user does; returns all option values."""
        select = Select(self.driver.find_element(By.ID, select_id))
        select.select_by_value(value)
        return [o.get_attribute("value") for o in select.options]

    def screenshot(self, path: Path, *, full: bool) -> Path:
        """A PNG of the first screen, or (full) of the whole document at the current width."""
        params: dict = {"format": "png"}
        if full:
            width, height = self.js(
                "const d = document.documentElement;"
                "return [Math.max(d.scrollWidth, innerWidth), d.scrollHeight];"
            )
            clip = {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}
            params |= {"captureBeyondViewport": True, "clip": clip}
        path.write_bytes(base64.b64decode(self.cdp("Page.captureScreenshot", **params)["data"]))
        return path


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk."""
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
