"""The worker's page in a real browser: headless Chromium from Debian driven by Selenium, against a real
worker on the session's Kafka broker with the welcome example deployed and its events produced.

Without a login nothing is shown; a wrong token shows nothing; with the token the overview lists the
welcome journey, the journey's page draws its picture (an inline SVG with the step nodes) and shows the
cluster's counts once the events are processed (the entries simulate gives for the same events, and
everyone's way out once their 24-hour waits are over), and the customer lookup finds a customer of the
example and shows their timeline.
"""

from __future__ import annotations

import os
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator.config import Settings
from orchestrator.runtime.ui_auth import COOKIE_NAME
from orchestrator.simulate import simulate_file
from orchestrator.testing import WorkerProcess
from tests.integration.runtime_helpers import EXAMPLES, JOURNEYS, deploy, produce

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WELCOME = JOURNEYS / "welcome.yaml"
EVENTS = EXAMPLES / "welcome.events.jsonl"
WAIT = 30.0


def _missing() -> str | None:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "the selenium package is not installed (pip install -e '.[dev]')"
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not (os.path.exists(path) or shutil.which(os.path.basename(path))):
            return f"{path} is missing (apt-get install {package}; make debs)"
    return None


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    """Headless Chromium (Debian's, with Debian's chromedriver) in a profile of its own."""
    missing = _missing()
    if missing:
        if os.environ.get("CI"):
            pytest.fail(missing)
        pytest.skip(missing)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium") or CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--no-first-run",
        "--disable-extensions",
        "--window-size=1280,1024",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        options.add_argument(arg)
    driver_path = (
        CHROMEDRIVER if os.path.exists(CHROMEDRIVER) else shutil.which("chromedriver") or CHROMEDRIVER
    )
    service = Service(executable_path=driver_path, log_output=str(tmp_path / "chromedriver.log"))
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(WAIT)
    try:
        yield driver
    finally:
        driver.quit()  # (ends Chromium and chromedriver)


@pytest.fixture
def welcome_worker(settings: Settings, tmp_path: Path) -> Iterator[WorkerProcess]:
    """A worker with the welcome journey deployed and its example events waiting as a backlog (their
    24-hour waits resolve by event time and by the clock catching up with the wall clock)."""
    deploy(settings, [WELCOME])
    produce(settings, [line for line in EVENTS.read_bytes().splitlines() if line.strip()])
    worker = WorkerProcess(settings, tmp_path / "worker.log", extra_env={"ORCH_LATENESS_HOURS": "0"})
    worker.start()
    try:
        worker.wait_ready()
        yield worker
    finally:
        worker.stop()


def _text(driver: Any, css: str) -> str:
    from selenium.webdriver.common.by import By

    found = driver.find_elements(By.CSS_SELECTOR, css)
    return str(found[0].text) if found else ""


def _sign_in(driver: Any, token: str) -> None:
    from selenium.webdriver.common.by import By

    field = driver.find_element(By.ID, "token")
    field.clear()
    field.send_keys(token)
    driver.find_element(By.ID, "sign-in").click()


def _status(url: str, cookie: str | None) -> int:
    request = urllib.request.Request(url)
    if cookie is not None:
        request.add_header("Cookie", f"{COOKIE_NAME}={cookie}")
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_the_worker_page_in_a_browser(
    welcome_worker: WorkerProcess, browser: Any, settings: Settings, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    started = time.monotonic()
    shots = Path(os.environ.get("ORCH_UI_SCREENSHOTS", tmp_path))
    assert settings.api_token is not None
    token = settings.api_token.get_secret_value()
    base = welcome_worker.url
    expected = simulate_file(WELCOME, EVENTS, until_ms=int(time.time() * 1000)).funnel.journeys["welcome"]
    assert expected.entered > 0
    wait = WebDriverWait(browser, WAIT, poll_frequency=0.25)

    # (a) no login: a login form, no journey data
    browser.get(f"{base}/ui/")
    wait.until(lambda d: d.find_elements(By.ID, "login"))
    assert "welcome" not in browser.page_source.lower()
    assert not browser.find_elements(By.ID, "journeys")
    browser.get(f"{base}/ui/journeys/welcome")
    assert browser.find_elements(By.ID, "login")
    assert not browser.find_elements(By.ID, "entered")
    assert not browser.find_elements(By.TAG_NAME, "svg")

    # (e) a wrong token: refused, nothing shown, no cookie
    _sign_in(browser, "wrong-" + token)
    wait.until(lambda d: "wrong token" in _text(d, "#login-error"))
    assert not browser.find_elements(By.ID, "journeys")
    assert browser.get_cookie(COOKIE_NAME) is None
    browser.get(f"{base}/ui/")
    assert browser.find_elements(By.ID, "login")

    # (b) the token: a cookie (not the token), and the overview lists the welcome journey
    _sign_in(browser, token)
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#journeys a.journey"))
    links = {a.text: a for a in browser.find_elements(By.CSS_SELECTOR, "#journeys a.journey")}
    assert "welcome" in links
    browser.save_screenshot(str(shots / "overview.png"))
    cookie = browser.get_cookie(COOKIE_NAME)
    assert cookie is not None
    assert token not in cookie["value"]
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    assert cookie["path"] == "/ui"
    # the cookie opens /ui/ pages only: the JSON API still wants the header
    assert _status(f"{base}/ui/", cookie["value"]) == 200
    assert _status(f"{base}/funnels/", cookie["value"]) == 401
    assert _status(f"{base}/customers/w-ann/", cookie["value"]) == 401

    # (c) the journey's page: the picture with the step nodes, and the counts after the events
    links["welcome"].click()
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#picture svg"))
    nodes = browser.find_elements(By.CSS_SELECTOR, "#picture svg g.node > title")
    titles = {str(t.get_attribute("textContent")).strip() for t in nodes}
    assert {"welcome_email", "wait_open", "sms_allowed", "welcome_sms", "opened", "no_sms"} <= titles, titles
    picture_text = _text(browser, "#picture")
    assert "welcome_email" in picture_text

    def counted(d: Any) -> bool:
        d.refresh()
        return _text(d, "#entered") == str(expected.entered)

    wait.until(counted, message=f"the page's entries never reached {expected.entered}")
    assert "cluster-wide" in _text(browser, "#scope")
    arrivals = {
        row.find_element(By.CSS_SELECTOR, "td").text: row.find_elements(By.CSS_SELECTOR, "td")[-1].text
        for row in browser.find_elements(By.CSS_SELECTOR, "#steps tbody tr")
    }
    assert arrivals["welcome_email"] == str(expected.steps["welcome_email"])
    gauges = browser.find_elements(By.CSS_SELECTOR, "#steps [role=meter]")
    assert len(gauges) == len(arrivals)

    finished = expected.converted + sum(expected.exits.values())

    def everyone_out(d: Any) -> bool:  # the waits are over: the picture's and tables' final counts
        d.refresh()
        return _text(d, "#in-now") == "0" and _text(d, "#exited") == str(sum(expected.exits.values()))

    wait.until(everyone_out, message=f"not all {finished} customers finished on the page")
    exits = {
        r.find_elements(By.TAG_NAME, "td")[0].text: int(r.find_elements(By.TAG_NAME, "td")[1].text)
        for r in browser.find_elements(By.CSS_SELECTOR, "#exits tbody tr")
    }
    assert exits == expected.exits
    assert _text(browser, "#converted") == str(expected.converted)
    assert f"{expected.entered} entered" in _text(browser, "#picture")
    browser.save_screenshot(str(shots / "journey.png"))  # (kept with the test's files, to look at)

    # (d) the customer lookup: a customer of the example with its timeline; an unknown one says so
    box = browser.find_element(By.ID, "lookup-key")
    box.send_keys("w-ann")
    box.submit()
    wait.until(lambda d: _text(d, "#customer") == "w-ann")
    timeline = [r.text for r in browser.find_elements(By.CSS_SELECTOR, "#timeline tbody tr")]
    assert any("event account.created" in row for row in timeline), timeline
    assert any("welcome" in row for row in timeline), timeline
    assert "ann@example.com" in _text(browser, "#profile")
    browser.save_screenshot(str(shots / "customer.png"))
    browser.get(f"{base}/ui/customers?key=email%3Aann%40example.com")  # by an identifier
    wait.until(lambda d: _text(d, "#customer") == "w-ann")
    browser.get(f"{base}/ui/customers?key=nobody-at-all")
    wait.until(lambda d: "no customer" in _text(d, "#not-found"))
    assert not browser.find_elements(By.ID, "timeline")

    # logging out, or losing the cookie: nothing is shown again
    browser.find_element(By.CSS_SELECTOR, "form[action='/ui/logout'] button").click()
    wait.until(lambda d: d.find_elements(By.ID, "login"))
    assert browser.get_cookie(COOKIE_NAME) is None
    browser.get(f"{base}/ui/journeys/welcome")
    assert browser.find_elements(By.ID, "login")
    assert not browser.find_elements(By.ID, "entered")
    assert time.monotonic() - started < 60
