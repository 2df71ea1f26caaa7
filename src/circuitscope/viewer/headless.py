"""Headless Chromium through Selenium, for the browser tests and the benchmark.

Uses the system's /usr/bin/chromium and chromedriver (Debian's `chromium` and
`chromium-driver`; `setup.sh --dev` installs them as root); never downloads a
browser. `browser_missing()` says why none can be started, or returns None.
"""

from __future__ import annotations

import importlib.util
import shutil
import tempfile
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage",
)  # fmt: skip


def chromedriver_path() -> str | None:
    return shutil.which("chromedriver") or (
        "/usr/bin/chromedriver" if Path("/usr/bin/chromedriver").exists() else None
    )


def browser_missing() -> str | None:
    """Why headless Chromium cannot run here (None when it can)."""
    if importlib.util.find_spec("selenium") is None:
        return "selenium is not installed (./setup.sh --dev installs it)"
    if not Path(CHROMIUM).exists():
        return f"{CHROMIUM} is missing (./setup.sh --dev as root installs Debian's chromium)"
    if chromedriver_path() is None:
        return "chromedriver is missing (./setup.sh --dev as root installs chromium-driver)"
    return None


def start_chromium(width: int = 1400, height: int = 900) -> Any:
    """A Selenium Chrome driver on headless Chromium with a fresh profile; quit() it."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--window-size={width},{height}")
    options.add_argument(f"--user-data-dir={tempfile.mkdtemp(prefix='circuitscope-chromium-')}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=options, service=Service(chromedriver_path()))
