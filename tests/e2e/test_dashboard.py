"""The dashboard end to end: the real server's ``GET /`` in headless Chromium (Debian's ``chromium`` and
``chromium-driver``, driven by Selenium: no browser is downloaded, nothing leaves the machine), and the
same page read without JavaScript.

In the browser: the page names every model, version and state (a failed load's error too); a try-it
form returns the model's answer; a SavedModel uploaded through the page (model management on, with the
admin token the page asks for) appears and serves, a second upload becomes its version 2, and a delete
confirmed in the browser's dialog takes it away. A screenshot is saved in ``$TFAAS_TEST_ARTIFACTS`` (else
the test's temporary directory), and the browser's console must stay free of errors (a script error, or
anything the page's Content-Security-Policy refused).
"""

from __future__ import annotations

import os
import tarfile
from pathlib import Path
from typing import Iterator

import pytest
import requests
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from tests.e2e.conftest import install_version, model_config, model_config_list
from tests.e2e.server import ServerProcess

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
TOKEN = "dashboard-test-token"
WAIT_SECONDS = 60
SCREENSHOT = "dashboard.png"
"""The page with a try-it answer (the README shows it: docs/dashboard.png)."""
UPLOAD_SCREENSHOT = "dashboard-upload.png"


@pytest.fixture(scope="module")
def server(start_server, tmp_path_factory, half_plus) -> ServerProcess:
    """``half`` (version 1 serves) and ``broken`` (its version 1 is no SavedModel), a model repository, and
    model management on behind an admin token."""
    root = tmp_path_factory.mktemp("dashboard")
    install_version(half_plus(2.0), root / "half", 1)
    (root / "broken" / "1").mkdir(parents=True)
    (root / "broken" / "1" / "saved_model.pb").write_bytes(b"not a SavedModel")
    (root / "models.config").write_text(
        model_config_list([model_config("half", root / "half"), model_config("broken", root / "broken")])
    )
    (root / "repository").mkdir()
    env = {"TFAAS_ENABLE_MODEL_MANAGEMENT": "true", "TFAAS_ADMIN_TOKEN": TOKEN, "TFAAS_MAX_NUM_LOAD_RETRIES": "0"}
    args = ("--model_config_file", str(root / "models.config"), "--model_repository", str(root / "repository"))
    server = start_server(*args, env=env)
    server.wait_available("half", 1)
    return server


@pytest.fixture(scope="module")
def bundle(tmp_path_factory, half_plus) -> Path:
    """A SavedModel as TFaaS's upload takes it: a .tar.gz whose top directory is the model's name."""
    path = tmp_path_factory.mktemp("bundle") / "uploaded.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        archive.add(half_plus(3.0), arcname="uploaded")
    return path


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",  # NOTE: tests run as root in CI, where Chromium's sandbox refuses to start
        "--disable-dev-shm-usage",
        "--window-size=1200,1500",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def artifacts(tmp_path: Path) -> Path:
    """Where the test leaves what a person may want to look at: ``$TFAAS_TEST_ARTIFACTS``, else ``tmp_path``."""
    directory = Path(os.environ.get("TFAAS_TEST_ARTIFACTS") or tmp_path)
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def save_screenshot(browser: webdriver.Chrome, tmp_path: Path, name: str) -> None:
    """The whole page, as tall as it is."""
    path = artifacts(tmp_path) / name
    width, height = browser.get_window_size()["width"], browser.get_window_size()["height"]
    browser.set_window_size(width, browser.execute_script("return document.documentElement.scrollHeight") + 120)
    browser.execute_script("window.scrollTo(0, 0)")
    try:
        assert browser.save_screenshot(str(path)) and path.stat().st_size > 10_000
    finally:
        browser.set_window_size(width, height)


def wait(browser: webdriver.Chrome, condition, timeout: float = WAIT_SECONDS):
    return WebDriverWait(browser, timeout, poll_frequency=0.2).until(condition)


def card_text(browser: webdriver.Chrome, model: str) -> str:
    cards = browser.find_elements(By.ID, f"model-{model}")
    return cards[0].text if cards else ""


def console_errors(browser: webdriver.Chrome) -> list[dict]:
    return [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]


def test_the_page_without_javascript_lists_every_model_version_and_state(server):
    response = requests.get(server.url + "/", headers={"Accept": "text/html"}, timeout=30)
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/html")
    page = response.text
    for expected in ('id="model-half"', 'id="model-broken"', ">AVAILABLE<", ">END<", "Not ready: broken"):
        assert expected in page, expected
    summary = requests.get(server.url + "/", timeout=30).json()
    half = next(model for model in summary["models"] if model["name"] == "half")
    assert half["batching"]["enabled"] and half["batching"]["parameters"]["max_batch_size"] > 0
    assert half["signatures"][0]["inputs"] == [{"alias": "x", "dtype": "DT_FLOAT", "shape": [-1, 1]}]


def test_the_browser_shows_the_models_and_the_try_it_form_answers(server, browser, tmp_path):
    browser.get(server.url + "/")
    half, broken = card_text(browser, "half"), card_text(browser, "broken")
    assert "half" in half and "AVAILABLE" in half and "serving" in half and "Signatures of version 1" in half
    assert "END" in broken and "No version serves" in broken
    error = browser.find_element(By.CSS_SELECTOR, "#model-broken td.error").text
    assert error  # NOTE: the failed load's error, as the status API gives it

    form = browser.find_element(By.CSS_SELECTOR, "#model-half form.try")
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    output = form.find_element(By.TAG_NAME, "output")
    wait(browser, lambda _: "HTTP 200" in output.text)
    assert '"outputs"' in output.text and "2.5" in output.text and " ms" in output.text
    assert console_errors(browser) == []
    save_screenshot(browser, tmp_path, SCREENSHOT)


def test_an_upload_through_the_page_appears_serves_and_is_deleted(server, browser, bundle, tmp_path):
    browser.get(server.url + "/")
    browser.find_element(By.ID, "admin-token").send_keys(TOKEN)
    upload = browser.find_element(By.ID, "upload-bundle")

    upload.find_element(By.ID, "bundle").send_keys(str(bundle))
    upload.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait(browser, expected_conditions.text_to_be_present_in_element((By.ID, "notice"), "as version 1"))
    wait(browser, lambda _: "AVAILABLE" in card_text(browser, "uploaded"))
    assert server.post("/v1/models/uploaded:predict", json={"instances": [[1.0]]}).json() == {"predictions": [[3.5]]}

    upload.find_element(By.ID, "bundle").send_keys(str(bundle))
    upload.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait(browser, lambda _: "2 serving" in card_text(browser, "uploaded").replace("\n", " "))
    assert "Signatures of version 2" in card_text(browser, "uploaded")

    save_screenshot(browser, tmp_path, UPLOAD_SCREENSHOT)

    browser.find_element(By.CSS_SELECTOR, 'button[data-delete="uploaded"]').click()
    wait(browser, expected_conditions.alert_is_present()).accept()
    wait(browser, lambda _: not browser.find_elements(By.ID, "model-uploaded"))
    assert "Deleted uploaded." in browser.find_element(By.ID, "notice").text
    assert console_errors(browser) == []


def test_a_write_without_the_token_is_refused_and_said_so(server, browser, bundle):
    browser.get(server.url + "/")
    upload = browser.find_element(By.ID, "upload-bundle")
    upload.find_element(By.ID, "bundle").send_keys(str(bundle))
    upload.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait(browser, expected_conditions.text_to_be_present_in_element((By.ID, "notice"), "HTTP 401"))
    assert "Authorization: Bearer" in browser.find_element(By.ID, "notice").text
    assert not browser.find_elements(By.ID, "model-uploaded")


def test_the_figures_follow_the_requests_without_a_reload(server, browser):
    browser.get(server.url + "/")
    total = browser.find_element(By.CSS_SELECTOR, '#model-half [data-figure="requests_total"]')
    before = int(total.text.replace(",", ""))
    for _ in range(5):
        assert server.post("/v1/models/half:predict", json={"instances": [[1.0]]}).status_code == 200
    wait(browser, lambda _: int(total.text.replace(",", "")) >= before + 5)
    p50 = browser.find_element(By.CSS_SELECTOR, '#model-half [data-figure="latency_p50_seconds"]').text
    assert p50.endswith(("µs", "ms", " s"))
