"""Headless Chromium for the screenshot tests (Label Studio's labeling screen, the dashboard)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


def chromium_paths(install_missing: bool = False) -> tuple[str, str]:
    """Paths of chromium and chromedriver; with `install_missing`, installed from Debian first
    if missing (as root). Skips the test when they are still missing."""
    if install_missing and not (shutil.which("chromium") and shutil.which("chromedriver")) and shutil.which("apt-get"):
        subprocess.run(["apt-get", "install", "-y", "chromium", "chromium-driver"], capture_output=True,
                       timeout=900, check=False)
    browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (browser and driver):
        pytest.skip("chromium and chromedriver are needed: `make install-browser` "
                    "(`apt-get install -y chromium chromium-driver` as root)")
    return browser, driver


@contextmanager
def headless_chromium(profile_dir: Path, width: int, height: int, install_missing: bool = False) -> Iterator:
    """A selenium Chrome driver on headless Chromium with a fresh profile; quit on exit."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver_path = chromium_paths(install_missing)
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", f"--window-size={width},{height}", f"--user-data-dir={profile_dir}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        yield driver
    finally:
        driver.quit()
