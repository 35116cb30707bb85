"""The two servers behind one small interface: mlgrid through its SDK and gRPC stubs, MLflow
through its REST API (urllib from this process, so MLflow's figures carry no client library cost
at all: the comparison leans, if anything, in MLflow's favour).
"""

from __future__ import annotations

import http.client
import json
import shutil
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

CHUNK = 1024 * 1024


class MlflowRest:
    """MLflow's server, over its REST API."""

    server = "mlflow"

    def __init__(self, uri: str) -> None:
        self.uri = uri.rstrip("/")

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            f"{self.uri}/api/2.0/mlflow/{path}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=3600) as response:
            return json.loads(response.read() or b"{}")

    def get(self, endpoint: str, **query: Any) -> Any:
        return self.call("GET", f"{endpoint}?{urllib.parse.urlencode(query)}")

    def create_experiment(self, name: str) -> str:
        return str(self.call("POST", "experiments/create", {"name": name})["experiment_id"])

    def create_run(self, experiment_id: str) -> tuple[str, str]:
        """A run; its id and artifact URI."""
        info = self.call(
            "POST",
            "runs/create",
            {"experiment_id": experiment_id, "start_time": int(time.time() * 1000)},
        )["run"]["info"]
        return info["run_id"], info["artifact_uri"]

    def search(self, experiment_id: str, filter_string: str, order_by: list[str]) -> list[str]:
        answer = self.call(
            "POST",
            "runs/search",
            {
                "experiment_ids": [experiment_id],
                "filter": filter_string,
                "max_results": 100,
                "order_by": order_by,
            },
        )
        return [r["info"]["run_name"] for r in answer.get("runs", [])]

    def get_run_metric_count(self, run_id: str) -> int:
        run = self.get("runs/get", run_id=run_id)["run"]
        return len(run["data"].get("metrics", []))

    def log_metrics(self, run_id: str, metrics: dict[str, float]) -> None:
        now = int(time.time() * 1000)
        points = [{"key": k, "value": v, "timestamp": now, "step": 0} for k, v in metrics.items()]
        self.call("POST", "runs/log-batch", {"run_id": run_id, "metrics": points})

    def stream_history(self, run_id: str, key: str) -> int:
        """Every point, in the pages MLflow's own client asks for; the number of points."""
        count, token = 0, ""
        while True:
            query: dict[str, Any] = {"run_id": run_id, "metric_key": key, "max_results": 25000}
            if token:
                query["page_token"] = token
            page = self.get("metrics/get-history", **query)
            count += len(page.get("metrics", []))
            token = page.get("next_page_token", "")
            if not token:
                return count

    def list_dir_pages(self, run_id: str, artifact_uri: str, path: str) -> list[int]:
        """MLflow lists a directory in one answer (it has no pages for it)."""
        answer = self.get("artifacts/list", run_id=run_id, path=path)
        return [len(answer.get("files", []))]

    def _artifact_path(self, artifact_uri: str, name: str) -> str:
        # mlflow-artifacts:/<exp>/<run>/artifacts -> the proxied artifact REST path
        rest = artifact_uri.split(":", 1)[1].lstrip("/")
        return f"/api/2.0/mlflow-artifacts/artifacts/{rest}/{name}"

    def upload(self, run_id: str, artifact_uri: str, source: Path) -> None:
        parsed = urllib.parse.urlsplit(self.uri)
        conn = http.client.HTTPConnection(parsed.hostname or "", parsed.port, timeout=3600)
        size = source.stat().st_size
        with source.open("rb") as body:
            conn.request(
                "PUT",
                self._artifact_path(artifact_uri, source.name),
                body=body,
                headers={"Content-Length": str(size)},
            )
            response = conn.getresponse()
            response.read()
        conn.close()
        if response.status != 200:
            raise RuntimeError(f"MLflow upload answered {response.status}")

    def download(self, run_id: str, artifact_uri: str, name: str, target: Path) -> Path:
        url = f"{self.uri}{self._artifact_path(artifact_uri, name)}"
        local = target / name
        with urllib.request.urlopen(url, timeout=3600) as response, local.open("wb") as out:
            shutil.copyfileobj(response, out, CHUNK)
        return local


class MlgridSdk:
    """mlgrid's server, through its SDK (and its gRPC stubs where the SDK returns whole lists)."""

    server = "mlgrid"

    def __init__(self, uri: str) -> None:
        import grpc

        import mlgrid

        self.client = mlgrid.MlflowClient(uri)
        self.channel = grpc.insecure_channel(uri.removeprefix("grpc://"))

    def close(self) -> None:
        self.channel.close()

    def create_experiment(self, name: str) -> str:
        return str(self.client.create_experiment(name))

    def create_run(self, experiment_id: str) -> tuple[str, str]:
        run = self.client.create_run(experiment_id)
        return run.info.run_id, run.info.artifact_uri

    def search(self, experiment_id: str, filter_string: str, order_by: list[str]) -> list[str]:
        runs = self.client.search_runs(
            [experiment_id], filter_string, max_results=100, order_by=order_by
        )
        return [r.info.run_name for r in runs]

    def get_run_metric_count(self, run_id: str) -> int:
        return len(self.client.get_run(run_id).data.metrics)

    def log_metrics(self, run_id: str, metrics: dict[str, float]) -> None:
        from mlgrid.entities import Metric

        now = int(time.time() * 1000)
        points = [Metric(k, v, now, 0) for k, v in metrics.items()]
        self.client.log_batch(run_id, metrics=points)

    def stream_history(self, run_id: str, key: str) -> int:
        """The streamed history through the SDK's call for long histories, chunk by chunk,
        counted without building entities (what a caller that plots or aggregates the points
        does)."""
        return sum(len(c.values) for c in self.client.iter_metric_history_columns(run_id, key))

    def list_dir_pages(self, run_id: str, artifact_uri: str, path: str) -> list[int]:
        from mlgrid.api.artifacts.v1 import artifacts_service_pb2 as apb
        from mlgrid.api.artifacts.v1 import artifacts_service_pb2_grpc as agrpc

        stub = agrpc.ArtifactsServiceStub(self.channel)
        pages, token = [], ""
        while True:
            answer = stub.ListArtifacts(
                apb.ListArtifactsRequest(
                    artifact_uri=artifact_uri, path=path, page_size=1000, page_token=token
                )
            )
            pages.append(len(answer.files))
            token = answer.next_page_token
            if not token:
                return pages

    def upload(self, run_id: str, artifact_uri: str, source: Path) -> None:
        self.client.log_artifact(run_id, str(source))

    def download(self, run_id: str, artifact_uri: str, name: str, target: Path) -> Path:
        return Path(self.client.download_artifacts(run_id, name, str(target)))
