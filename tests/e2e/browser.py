"""Headless Chromium for e2e tests: Debian's `chromium` and `chromium-driver`, driven by Selenium.

Nothing is downloaded: the browser and driver are the system's (`.ci/run` installs them, best
effort); without them `chromium_missing()` says why and the tests skip. Every browser gets a
fresh profile directory and the flags that keep it from calling home.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
DRIVER_CANDIDATES = ("/usr/bin/chromedriver",)
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1360,1000",
)


def _first(candidates: tuple[str, ...], name: str) -> str | None:
    for path in candidates:
        if os.access(path, os.X_OK):
            return path
    return shutil.which(name)


def chromium_missing() -> str | None:
    """Why no browser test can run here, or None when Chromium, its driver and Selenium exist."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[dev]')"
    if _first(CHROMIUM_CANDIDATES, "chromium") is None:
        return "Debian package `chromium` is not installed (apt-get install chromium chromium-driver)"
    if _first(DRIVER_CANDIDATES, "chromedriver") is None:
        return "Debian package `chromium-driver` is not installed (apt-get install chromium-driver)"
    return None


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium WebDriver with a fresh profile, quit (and the profile removed) after."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser = _first(CHROMIUM_CANDIDATES, "chromium")
    driver_path = _first(DRIVER_CANDIDATES, "chromedriver")
    assert browser and driver_path, chromium_missing()
    profile = Path(tempfile.mkdtemp(prefix="ossa-chromium-"))
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    # Selenium Manager must not look for (or download) another browser or driver.
    os.environ.setdefault("SE_OFFLINE", "true")
    driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path, log_output=os.devnull))
    try:
        driver.set_page_load_timeout(30)
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


# Page helpers --------------------------------------------------------------------------------

# Accessibility basics, checked in the page: every form control has a label, every button, link
# and tab a name, every role=img a text alternative, the page a language, and every piece of
# visible HTML text a contrast of at least 4.5:1 (3:1 for large text) against its background
# (WCAG 2 relative luminance; SVG text is left out: its background is a shape, not a box).
A11Y_JS = r"""
const problems = [];
const shown = (el) => !!(el.offsetWidth || el.offsetHeight || el.getClientRects().length)
  && getComputedStyle(el).visibility !== "hidden";
const what = (el) =>
  `${el.tagName.toLowerCase()}${el.id ? "#" + el.id : ""} "${(el.textContent || "").trim().slice(0, 30)}"`;
if (!document.documentElement.lang) problems.push("html has no lang");
for (const el of document.querySelectorAll("input, select, textarea")) {
  if (el.type === "hidden") continue;
  const label = (el.id && document.querySelector(`label[for="${CSS.escape(el.id)}"]`)) || el.closest("label")
    || el.getAttribute("aria-label") || el.getAttribute("aria-labelledby");
  if (!label) problems.push(`no label: ${what(el)}`);
}
for (const el of document.querySelectorAll("button, a[href], [role=tab]")) {
  const name = (el.getAttribute("aria-label") || el.textContent || "").trim();
  if (shown(el) && !name) problems.push(`no name: ${what(el)}`);
}
for (const el of document.querySelectorAll("[role=img], img")) {
  if (!(el.getAttribute("aria-label") || el.getAttribute("alt"))) problems.push(`no text alternative: ${what(el)}`);
}
const rgb = (c) => {
  const m = /rgba?\(([^)]+)\)/.exec(c);
  if (!m) return null;
  const p = m[1].split(/[ ,/]+/).filter(Boolean).map(Number);
  return { r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1 };
};
const lum = ({ r, g, b }) => {
  const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
  return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
};
const background = (el) => {
  for (let e = el; e; e = e.parentElement) {
    const c = rgb(getComputedStyle(e).backgroundColor);
    if (c && c.a > 0) return c;
  }
  return { r: 255, g: 255, b: 255, a: 1 };
};
const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
const seen = new Set();
for (let node = walker.nextNode(); node; node = walker.nextNode()) {
  const el = node.parentElement;
  if (!el || seen.has(el) || !node.textContent.trim() || el.closest("svg") || !shown(el)) continue;
  seen.add(el);
  const style = getComputedStyle(el);
  const fg = rgb(style.color);
  if (!fg) continue;
  const [l1, l2] = [lum(fg), lum(background(el))].sort((a, b) => b - a);
  const ratio = (l1 + 0.05) / (l2 + 0.05);
  const size = parseFloat(style.fontSize);
  const large = size >= 24 || (size >= 18.66 && Number(style.fontWeight) >= 700);
  if (ratio < (large ? 3 : 4.5)) problems.push(`contrast ${ratio.toFixed(2)}: ${what(el)}`);
}
return problems;
"""

# What keyboard users can reach: every visible, enabled control that is in the tab order.
FOCUSABLE_JS = r"""
const shown = (el) => !!(el.offsetWidth || el.offsetHeight || el.getClientRects().length);
return [...document.querySelectorAll("button, select, input, textarea, a[href], [tabindex]")]
  .filter((el) => shown(el) && !el.disabled && el.tabIndex >= 0)
  .map((el) => el.id || el.dataset.key || el.textContent.trim());
"""

ACTIVE_JS = r"""
const el = document.activeElement;
if (!el || el === document.body) return null;
return {key: el.id || el.dataset.key || el.textContent.trim(), outline: getComputedStyle(el).outlineStyle};
"""


def wait_js(driver: Any, script: str, *args: Any, timeout: float = 30.0) -> Any:
    """Poll a JS expression (`return ...`) until it is truthy; return its value."""
    from selenium.common.exceptions import JavascriptException
    from selenium.webdriver.support.ui import WebDriverWait

    def check(d: Any) -> Any:
        try:
            return d.execute_script(script, *args)
        except JavascriptException:
            return None

    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.2).until(check)
    except Exception as err:
        raise AssertionError(f"not true after {timeout}s: {script}\n{page_text(driver)}") from err


def click(driver: Any, selector: str, timeout: float = 30.0) -> None:
    """Click the element `selector` matches once there is one (the page re-renders while polling,
    so a located element can go stale: find and click in one step, in the page)."""
    wait_js(
        driver,
        "const el = document.querySelector(arguments[0]);"
        "if (!el || el.disabled) return false; el.click(); return true;",
        selector,
        timeout=timeout,
    )


def page_text(driver: Any) -> str:
    try:
        return str(driver.execute_script("return document.body.innerText"))[:3000]
    except Exception as err:
        return f"(no page text: {err})"


def tab_through(driver: Any, presses: int) -> list[dict[str, str]]:
    """Press Tab `presses` times from the top of the page; what had the focus after each press."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    driver.execute_script("document.activeElement && document.activeElement.blur(); window.scrollTo(0, 0);")
    seen = []
    for _ in range(presses):
        ActionChains(driver).send_keys(Keys.TAB).perform()
        active = driver.execute_script(ACTIVE_JS)
        if active:
            seen.append(active)
    return seen
