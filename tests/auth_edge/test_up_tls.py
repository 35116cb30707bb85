"""``mlgrid up`` with TLS, as a real process: its gateway ports serve the certificate from the
files given on the command line, clients need the CA (and, with a client CA, a certificate),
and the stack's own services still reach each other (registry asks tracking about runs)."""

from __future__ import annotations

import os
import re
import ssl
import subprocess
import sys
import urllib.request
from pathlib import Path

import psutil
import pytest

from mlgrid.client import Client
from mlgrid.exceptions import TemporarilyUnavailable
from tests.auth_edge.conftest import Pki


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        parent = psutil.Process(proc.pid)
        for process in [parent, *parent.children(recursive=True)][::-1]:
            process.kill()
        proc.wait(timeout=10)


def test_up_with_mutual_tls(pki: Pki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlgrid.cli.main",
            "up",
            "--port",
            "0",
            "--grace",
            "3",
            "--tls-cert",
            str(pki.server.cert_path),
            "--tls-key",
            str(pki.server.key_path),
            "--tls-client-ca",
            str(pki.ca.cert_path),
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        endpoint = rest_url = ""
        banner = []
        for line in proc.stdout:
            banner.append(line)
            match = re.match(r"mlgrid is up at (\S+)", line)
            if match:
                endpoint = match.group(1)
            if "TLS on every gateway port" in line:
                assert "MLGRID_TRACKING_CLIENT_CERT_PATH" in line
            rest = re.search(r"MLflow REST API: (\S+)", line)
            if rest:
                rest_url = rest.group(1)
            if line.startswith("Ctrl-C"):
                break
        assert endpoint.startswith("grpcs://127.0.0.1:"), "".join(banner)
        assert rest_url.startswith("https://"), "".join(banner)

        monkeypatch.setenv("MLGRID_TRACKING_SERVER_CERT_PATH", str(pki.ca.cert_path))
        with pytest.raises(TemporarilyUnavailable, match="client certificate"):
            Client(tracking_uri=endpoint).create_experiment("refused")

        monkeypatch.setenv("MLGRID_TRACKING_CLIENT_CERT_PATH", str(pki.client.cert_path))
        monkeypatch.setenv("MLGRID_TRACKING_CLIENT_KEY_PATH", str(pki.client.key_path))
        # A new URI spelling: transports read TLS settings when built, once per URI.
        client = Client(tracking_uri=endpoint.replace("127.0.0.1", "localhost"))
        experiment_id = client.create_experiment("over-mtls")
        run = client.create_run(experiment_id)
        client.log_text(run.info.run_id, "weights", "model/weights.txt")
        client.create_registered_model("tls-model")
        # The registry service checks the run through the gateway: the stack's own hop.
        version = client.create_model_version(
            "tls-model", f"{run.info.artifact_uri}/model", run_id=run.info.run_id
        )
        assert version.version in ("1", 1)

        context = ssl.create_default_context(cafile=str(pki.ca.cert_path))
        context.load_cert_chain(pki.client.cert_path, pki.client.key_path)
        with urllib.request.urlopen(f"{rest_url}/health", context=context, timeout=10) as answer:
            assert answer.read() == b"OK"
    finally:
        _stop(proc)


@pytest.mark.parametrize(
    ("args", "variables", "message"),
    [
        (["--tls-cert", "{cert}"], {}, "set --tls-key / MLGRID_GATEWAY_TLS_KEY too"),
        ([], {"MLGRID_GATEWAY_TLS_KEY": "{key}"}, "set --tls-cert / MLGRID_GATEWAY_TLS_CERT too"),
        (["--tls-cert", "{cert}", "--tls-key", "{other_key}"], {}, "is not the key"),
    ],
)
def test_the_gateway_command_refuses_tls_files_that_do_not_fit(
    pki: Pki, tmp_path: Path, args: list[str], variables: dict[str, str], message: str
) -> None:
    files = {
        "cert": str(pki.server.cert_path),
        "key": str(pki.server.key_path),
        "other_key": str(pki.client.key_path),
    }
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MLGRID_GATEWAY_TLS")}
    environment.update({k: v.format(**files) for k, v in variables.items()})
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mlgrid.cli.main",
            "server",
            "gateway",
            "--port",
            "0",
            "--no-tunnel",
            "--no-rest",
            *(a.format(**files) for a in args),
        ],
        env=environment,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert message in result.stderr
