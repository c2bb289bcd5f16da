"""Headless Chromium for the page's views, and where their screenshots go (tests/artifacts/,
git-ignored; each path is printed)."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
ADMIN = "admin-token"


@pytest.fixture(scope="module")
def chromium() -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,900"):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver"))
    try:
        yield driver
    finally:
        driver.quit()


def sign_in(driver: webdriver.Chrome, url: str) -> None:
    driver.get(f"{url}/admin/")
    if not driver.find_elements(By.ID, "token"):  # still signed in: cookies ignore the port
        return
    driver.find_element(By.ID, "token").send_keys(ADMIN)
    driver.find_element(By.ID, "sign-in").click()
    # the click only sends the form: wait for the signed-in page, not the sign-in one
    WebDriverWait(driver, 20).until(ec.presence_of_element_located((By.ID, "status")))


def text_after(driver: webdriver.Chrome, element_id: str, contains: str = "") -> str:
    """The text of `element_id` once the page a click loaded shows it (with `contains`): a
    click only sends the request, so the old page may still be there."""

    def shown(d: webdriver.Chrome) -> str | bool:
        found = d.find_elements(By.ID, element_id)
        return bool(found) and contains in found[0].text and found[0].text

    return str(WebDriverWait(driver, 20).until(shown))


def shot(driver: webdriver.Chrome, name: str) -> Path:
    """A screenshot of the whole page under tests/artifacts/; checked to be a real picture."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    assert driver.save_screenshot(str(path))
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert width >= 300 and height >= 500 and path.stat().st_size > 10_000, (width, height)
    print(f"screenshot: {path}")
    return path
