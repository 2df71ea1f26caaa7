"""Driving the page in headless Chromium (tests, screenshots): where a node is drawn,
clicking it, reading the page's state. Needs selenium (the dev extra)."""

from __future__ import annotations

import time
from typing import Any


def node_screen_position(driver: Any, node_id: str) -> tuple[float, float]:
    """Where the page drew a node, in CSS pixels from the canvas's top-left corner."""
    return tuple(
        driver.execute_script(
            "const v = window.circuitscope.state.view;"
            "const p = v.layout.positions.get(arguments[0]);"
            "return [p[0] * v.t.k + v.t.x, p[1] * v.t.k + v.t.y];",
            node_id,
        )
    )


def click_node(driver: Any, node_id: str, shift: bool = False) -> None:
    """A real mouse click (shift-click to pin) on a drawn node."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    canvas = driver.find_element(By.ID, "base-canvas")
    x, y = node_screen_position(driver, node_id)
    size = canvas.size
    actions = ActionChains(driver).move_to_element_with_offset(
        canvas, int(x - size["width"] / 2), int(y - size["height"] / 2)
    )
    if shift:
        actions.key_down(Keys.SHIFT).click().key_up(Keys.SHIFT)
    else:
        actions.click()
    actions.perform()


def visible_count(driver: Any) -> int:
    return int(driver.execute_script("return window.circuitscope.state.view.visible.length"))


def severe_console_messages(driver: Any) -> list[str]:
    """Console errors since the last call (reading the log empties it)."""
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def wait_ready(driver: Any, timeout: float = 20.0) -> None:
    """Wait until the page has opened its graph (or shown why it cannot)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if driver.execute_script("return !!(window.circuitscope && window.circuitscope.ready)"):
            return
        time.sleep(0.05)
    raise AssertionError("the page did not finish loading")


def wait_for(driver: Any, script: str, timeout: float = 20.0) -> Any:
    """Poll a JS expression until it is truthy; returns its value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = driver.execute_script("return " + script)
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {script}")
