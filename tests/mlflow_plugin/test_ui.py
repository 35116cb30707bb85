"""MLflow's own server and web UI on mlgrid's data, through the plugin.

mlgrid's SDK logs an experiment, a run with a metric history and a registered model; ``mlflow
server --backend-store-uri mlgrid://… --registry-store-uri mlgrid://…`` serves them; Debian's
headless Chromium (``make system-deps``) opens the UI and must show all three, with the run's
metric chart drawn.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from mlgrid import entities as mg

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
PAGE_TIMEOUT = 60


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def mlflow_server(plugin_stack, tmp_path_factory) -> Iterator[str]:
    """``mlflow server`` on the stack's gateway; yields its base URL."""
    uri = f"mlgrid://{plugin_stack.target}"
    port = free_port()
    log = tmp_path_factory.mktemp("mlflow_server") / "server.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "MLGRID_"))}
    command = [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", uri, "--registry-store-uri", uri,
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    with log.open("w") as out:
        server = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(base, server, log)
        yield base
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # the server and its uvicorn worker
        server.wait(timeout=30)


def wait_until_healthy(base: str, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"mlflow server exited with {server.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"{base}/health", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"mlflow server did not answer /health within 120 s:\n{log.read_text()}")


@pytest.fixture(scope="module")
def browser(tmp_path_factory) -> Iterator[webdriver.Chrome]:
    """Debian's headless Chromium, a fresh profile, nothing fetched from the network."""
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tmp_path_factory.mktemp("chromium-profile")
    for flag in (
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={profile}", "--window-size=1400,1000",
    ):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def page_text(driver: webdriver.Chrome) -> str:
    return str(driver.find_element(By.TAG_NAME, "body").text)


def open_until(driver: webdriver.Chrome, url: str, *texts: str) -> None:
    driver.get(url)
    try:
        WebDriverWait(driver, PAGE_TIMEOUT).until(
            lambda d: all(text in page_text(d) for text in texts)
        )
    except Exception:
        pytest.fail(f"{url} did not show {texts!r}; it showed:\n{page_text(driver)[:2000]}")


def test_mlflows_ui_shows_what_mlgrids_sdk_logged(sdk, unique, mlflow_server, browser):
    experiment = f"ui-experiment-{unique}"
    exp_id = sdk.create_experiment(experiment)
    run = sdk.create_run(exp_id, run_name=f"ui-run-{unique}")
    run_id = run.info.run_id
    losses = [mg.Metric("loss", 1.0 / (step + 1), 1_000 + step, step) for step in range(10)]
    sdk.log_batch(run_id, metrics=losses, params=[mg.Param("lr", "0.01")], synchronous=True)
    sdk.set_terminated(run_id)
    sdk.log_text(run_id, "flavors: {}\n", "model/MLmodel")  # a version's source holds files
    sdk.create_registered_model(f"ui-model-{unique}")
    sdk.create_model_version(f"ui-model-{unique}", f"{run.info.artifact_uri}/model", run_id=run_id)

    # The experiment's runs, by name.
    open_until(
        browser, f"{mlflow_server}/#/experiments/{exp_id}/runs", experiment, f"ui-run-{unique}"
    )

    # The run's metric chart: the "loss" panel with its plotted line.
    open_until(
        browser,
        f"{mlflow_server}/#/experiments/{exp_id}/runs/{run_id}/model-metrics",
        "loss",
        f"ui-run-{unique} (loss)",
    )
    WebDriverWait(browser, PAGE_TIMEOUT).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, ".scatterlayer .trace path.js-line")
    )
    points = browser.find_elements(By.CSS_SELECTOR, ".scatterlayer .trace .points path")
    assert len(points) == len(losses)

    # The registry: the model's page with its version (the list of all models is paged, and
    # this tier's stack holds many).
    open_until(
        browser, f"{mlflow_server}/#/models/ui-model-{unique}", f"ui-model-{unique}", "Version 1"
    )


def test_mlflow_servers_dataset_filter_lists_the_datasets_runs_used(
    mlflow_server: str, client, experiment_id: str
) -> None:
    # The UI's dataset filter asks MLflow's server, which asks the plugin's store.
    from mlflow.entities import Dataset, DatasetInput, InputTag

    run_id = client.create_run(experiment_id).info.run_id
    iris = Dataset("iris", "0123abcd", "local", '{"uri": "/data/iris.csv"}')
    client.log_inputs(run_id, [DatasetInput(iris, [InputTag("mlflow.data.context", "eval")])])
    request = urllib.request.Request(
        f"{mlflow_server}/ajax-api/2.0/mlflow/experiments/search-datasets",
        data=json.dumps({"experiment_ids": [experiment_id]}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        body = json.loads(answer.read())
    assert body == {
        "dataset_summaries": [
            {
                "experiment_id": experiment_id,
                "name": "iris",
                "digest": "0123abcd",
                "context": "eval",
            }
        ]
    }
