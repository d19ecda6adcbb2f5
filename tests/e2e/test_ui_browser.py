"""The Dagster UI as users meet it after `ltv demo`: its GraphQL API and headless Chromium
(Debian's chromium and chromium-driver, driven by Selenium) against ONE `ltv ui` server on a
free loopback port, started on a copy of the session's trained home (conftest.py: the full
pipeline on a 1,500-user synthetic log, its champion and the scoring partition of 2025-06-30)
and stopped, whole process group, when the module ends.

Screenshots go to the test's own output directory; with LTV_UPDATE_SCREENSHOTS=1 the asset graph
and a plot are also copied into docs/screenshots/, where the README shows them."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from privacy_e2e import AS_OF
from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait
from ui_helpers import REPO_PATH, graphql, running_ui

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
DOCS_SHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
SENSORS = {"drift_sensor": "retrain_job"}  # name: the job it requests
SCHEDULES = {"score_job_schedule": "score_job"}
WAIT_S = 120  # pages are quick, but a busy 2-core machine can stall one for a long while
WINDOW = (1400, 1100)
GROUPS = ["ingest", "transform", "features", "training", "evaluation", "scoring", "monitoring"]


# ---- fixtures: the browser binaries, the server, the browser ---------------------------------

@pytest.fixture(scope="session")
def chromium_binaries() -> None:
    """Debian's chromium and chromium-driver, installed with apt-get when missing (we run as
    root). A failed install fails the test with apt's output: it is never skipped."""
    if Path(CHROMIUM).is_file() and Path(CHROMEDRIVER).is_file():
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "chromium", "chromium-driver"]
    log = []
    for cmd in (install, ["apt-get", "update"], install):  # update only when install fails
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1200)
        log.append(f"$ {' '.join(cmd)} -> exit {done.returncode}\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
        if cmd is install and done.returncode == 0:
            break
    if not (Path(CHROMIUM).is_file() and Path(CHROMEDRIVER).is_file()):
        pytest.fail(f"could not install {CHROMIUM} and {CHROMEDRIVER}:\n" + "\n".join(log))


@pytest.fixture(scope="module")
def ui_port(trained_home: Path, tmp_path_factory) -> Iterator[int]:
    log = tmp_path_factory.mktemp("ui_browser_server") / "ltv_ui.log"
    with running_ui(trained_home, log) as (port, _proc):
        yield port


@pytest.fixture(scope="module")
def browser(chromium_binaries, ui_port) -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                f"--window-size={WINDOW[0]},{WINDOW[1]}"):
        options.add_argument(arg)
    # an explicit driver path: Selenium Manager is never asked to download anything
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(WAIT_S)
    try:
        dismiss_welcome_dialog(driver, ui_port)
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("ui_screenshots")


def dismiss_welcome_dialog(driver: webdriver.Chrome, port: int) -> None:
    """A fresh Dagster instance greets a new browser with "Join the Dagster community" over
    every page; Skip it once (the browser remembers). Not every version shows it."""
    driver.get(f"http://127.0.0.1:{port}/overview")
    try:
        skip = WebDriverWait(driver, 20, poll_frequency=1).until(
            lambda d: next(iter(d.find_elements(By.XPATH, "//button[normalize-space()='Skip']")), None))
    except TimeoutException:
        return
    skip.click()
    WebDriverWait(driver, 10).until(lambda d: not d.find_elements(By.XPATH, "//button[normalize-space()='Skip']"))


def shown(driver: webdriver.Chrome, *texts: str) -> str:
    """Wait until every text is on the page; returns the page's visible text."""
    body = driver.find_element(By.TAG_NAME, "body")
    try:
        WebDriverWait(driver, WAIT_S, poll_frequency=1).until(
            lambda d: all(t in body.text for t in texts))
    except TimeoutException:
        missing = [t for t in texts if t not in body.text]
        raise AssertionError(f"{driver.current_url}: {missing} not shown after {WAIT_S} s; the page "
                             f"shows:\n{body.text[:3000]}") from None
    return body.text


def open_page(driver: webdriver.Chrome, port: int, path: str, *texts: str) -> str:
    driver.get(f"http://127.0.0.1:{port}{path}")
    return shown(driver, *texts)


def click(driver: webdriver.Chrome, xpath: str) -> None:
    WebDriverWait(driver, WAIT_S).until(lambda d: d.find_element(By.XPATH, xpath)).click()


def screenshot(driver: webdriver.Chrome, shots: Path, name: str, publish: bool = False) -> Path:
    time.sleep(1)  # let the last layout or dialog animation settle
    path = shots / f"{name}.png"
    assert driver.save_screenshot(str(path)), f"screenshot {name} not written"
    assert path.stat().st_size > 10_000, f"screenshot {name} is (nearly) empty"
    if publish and os.environ.get("LTV_UPDATE_SCREENSHOTS") == "1":  # refresh README's images
        DOCS_SHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, DOCS_SHOTS / path.name)
    return path


# ---- GraphQL: what the UI is built on --------------------------------------------------------

ASSETS = """{ assetNodes { assetKey { path } groupName isPartitioned
  partitionDefinition { type description fmt } partitionStats { numMaterialized }
  assetChecksOrError { ... on AssetChecks { checks { name
    executionForLatestMaterialization { status } } } } } }"""

SCORES_MATERIALIZATION = """{ assetOrError(assetKey: {path: ["ltv_scores"]}) { ... on Asset {
  assetMaterializations(limit: 1) { partition metadataEntries { label } } } } }"""

REPOSITORY = """{ repositoryOrError(repositorySelector: {repositoryName: "%s",
  repositoryLocationName: "%s"}) { __typename ... on Repository {
  schedules { name pipelineName }
  sensors { name targets { pipelineName } } } ... on PythonError { message } } }"""


def test_graphql_lists_assets_checks_daily_scoring_partitions_schedule_and_sensor(ui_port):
    nodes = graphql(ui_port, ASSETS)["data"]["assetNodes"]
    by_name = {"/".join(n["assetKey"]["path"]): n for n in nodes}
    assert len(by_name) >= 15, sorted(by_name)
    assert {"ltv_scores", "champion", "raw_transactions", "customer_features"} <= set(by_name)

    checked = {name: n["assetChecksOrError"]["checks"] for name, n in by_name.items()
               if n["assetChecksOrError"].get("checks")}
    assert len(checked) >= 3, f"asset checks on {sorted(checked)} only"
    executed = {(name, c["name"]): c["executionForLatestMaterialization"]["status"]
                for name, checks in checked.items() for c in checks
                if c["executionForLatestMaterialization"]}
    assert len({name for name, _ in executed}) >= 3, f"check results on {sorted(executed)} only"
    assert "SUCCEEDED" in executed.values()

    scores = by_name["ltv_scores"]
    assert scores["isPartitioned"] and scores["partitionDefinition"]["type"] == "TIME_WINDOW"
    assert scores["partitionDefinition"]["fmt"] == "%Y-%m-%d"
    assert scores["partitionDefinition"]["description"].startswith("Daily")
    assert scores["partitionStats"]["numMaterialized"] >= 1  # the demo's scoring partition
    scoring = {name for name, n in by_name.items() if n["groupName"] == "scoring" and n["isPartitioned"]}
    assert "ltv_scores" in scoring and len(scoring) >= 2, scoring

    latest = graphql(ui_port, SCORES_MATERIALIZATION)["data"]["assetOrError"]["assetMaterializations"]
    assert [m["partition"] for m in latest] == [AS_OF]
    assert "dagster/row_count" in {e["label"] for e in latest[0]["metadataEntries"]}

    name, location = REPO_PATH.split("@")
    repo = graphql(ui_port, REPOSITORY % (name, location))["data"]["repositoryOrError"]
    assert repo["__typename"] == "Repository", repo
    schedules = {s["name"]: s["pipelineName"] for s in repo["schedules"]}
    sensors = {s["name"]: {t["pipelineName"] for t in s["targets"]} for s in repo["sensors"]}
    for schedule, job in SCHEDULES.items():
        assert schedules.get(schedule) == job, schedules
    for sensor, job in SENSORS.items():
        assert sensors.get(sensor) == {job}, sensors


# ---- the browser: what a user sees -----------------------------------------------------------

def test_browser_shows_the_global_asset_graph(ui_port, browser, shots):
    # the groups start collapsed: Alt+E (the graph's own shortcut) expands them all
    open_page(browser, ui_port, "/asset-groups", "Global asset lineage", *GROUPS)
    ActionChains(browser).key_down(Keys.ALT).send_keys("e").key_up(Keys.ALT).perform()
    shown(browser, "ltv_scores", "champion", "raw_transactions", "customer_features", "backtest")
    # the picture: the whole graph, laid out afresh in a viewport it fits at a readable zoom
    click(browser, "//button[normalize-space()='Hide navigation']")
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": 2200, "height": 2000, "deviceScaleFactor": 0.75, "mobile": False})
    try:
        browser.refresh()
        shown(browser, "ltv_scores", "champion", "monitoring")
        click(browser, "//button[.//*[@aria-label='panel_show_right']]")  # fold the asset tree
        screenshot(browser, shots, "asset_graph", publish=True)
    finally:
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def test_browser_shows_a_scoring_partition_with_its_row_count(ui_port, browser, shots):
    text = open_page(browser, ui_port, "/assets/ltv_scores?view=events",
                     f"Partition {AS_OF} materialized", "dagster/row_count", "customers_scored")
    row_count = text.split("dagster/row_count\n", 1)[1].split("\n", 1)[0]
    assert int(row_count.replace(",", "")) > 0, text[:2000]
    screenshot(browser, shots, "ltv_scores_partition")


def test_browser_shows_the_champions_calibration_plot(ui_port, browser, shots):
    open_page(browser, ui_port, "/assets/champion?view=events", "Materialized in run",
              "promoted", "decile_calibration")
    click(browser, "//tr[.//*[normalize-space()='decile_calibration']]"
                   "//a[normalize-space()='[Show Markdown]']")
    plot = WebDriverWait(browser, WAIT_S).until(lambda d: next(iter(
        d.find_elements(By.CSS_SELECTOR, "img[src^='data:image/png']")), None))
    WebDriverWait(browser, 30).until(lambda d: int(plot.get_attribute("naturalWidth") or 0) > 100)
    assert "actual vs predicted by decile" in plot.get_attribute("alt")
    screenshot(browser, shots, "champion_plot", publish=True)


def test_browser_shows_an_asset_check_result(ui_port, browser, shots):
    text = open_page(browser, ui_port, "/assets/raw_transactions?view=checks",
                     "check_raw_transactions_quality", "Evaluation result")
    assert "Succeeded" in text and "Passed" in text, text[:2000]
    assert "This is a blocking asset check." in text
    screenshot(browser, shots, "asset_checks")


@pytest.mark.parametrize("kind,name,target", [
    *(("schedules", s, job) for s, job in sorted(SCHEDULES.items())),
    *(("sensors", s, job) for s, job in sorted(SENSORS.items()))])
def test_browser_shows_the_schedule_and_the_sensor(ui_port, browser, shots, kind, name, target):
    text = open_page(browser, ui_port, f"/locations/{REPO_PATH}/{kind}/{name}", name, "Target",
                     target, "Description")
    assert "Description" in text
    screenshot(browser, shots, name)
