"""The example plugin served out of process (``mlgrid plugin serve``), routed by the gateway."""

from __future__ import annotations

from pathlib import Path

import pytest
from fixtures.stack import start_stack

import mlgrid
from mlgrid.client import Client
from mlgrid.exceptions import InvalidParameterValue, ResourceAlreadyExists, TemporarilyUnavailable
from mlgrid_services.gateway.config import GatewayConfig, RouteSpec

from .helpers import PluginProcess


def test_plugin_served_out_of_process_is_routed_by_the_gateway(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store_dir = tmp_path / "plugin-store"
    store_uri = f"file-plugin://{store_dir}"
    tracking = PluginProcess("mlgrid_test_plugin:PluginFileStore", "file-plugin")
    artifacts = PluginProcess(
        "mlgrid_test_plugin:PluginLocalArtifactRepository",
        "file-plugin",
        env={"MLGRID_ARTIFACTS_ALLOWED_ROOTS": store_uri},  # the deployment allows the store
    )
    registry = PluginProcess("mlgrid_test_plugin:PluginRegistrySqlStore", "file-plugin")
    projects: PluginProcess | None = None
    try:
        tracking.wait_ready()
        artifacts.wait_ready()
        registry.wait_ready()
        assert tracking.ready["service"] == "tracking"
        assert artifacts.ready["service"] == "artifacts"
        assert f"serves the tracking service for scheme 'file-plugin' on {tracking.address}" in (
            "".join(tracking.output)
        )
        routes = GatewayConfig(
            backends=[
                RouteSpec("tracking", "file-plugin", tracking.address),
                RouteSpec("artifacts", "file-plugin", artifacts.address),
                RouteSpec("registry", "file-plugin", registry.address),
            ]
        )
        with start_stack(tmp_path / "stack", gateway_config=routes) as stack:
            client = Client(stack.tracking_uri)
            mlgrid.set_tracking_uri(stack.tracking_uri)
            # A project backend plugin reaches tracking through the gateway.
            projects = PluginProcess(
                "mlgrid_test_plugin:PluginDummyProjectBackend",
                "dummy-backend",
                "--gateway",
                stack.target,
            )

            # Tracking calls naming a file-plugin store reach the plugin process.
            monkeypatch.setenv("MLGRID_STORE_URI", store_uri)
            experiment_id = client.create_experiment("served-by-plugin")
            run = client.create_run(experiment_id)
            client.log_metric(run.info.run_id, "loss", 0.5)
            assert client.get_run(run.info.run_id).data.metrics == {"loss": 0.5}
            # Its errors come back unchanged.
            with pytest.raises(ResourceAlreadyExists, match="served-by-plugin"):
                client.create_experiment("served-by-plugin")

            # Artifacts under file-plugin:// go to the plugin's repository process.
            assert run.info.artifact_uri.startswith(f"file-plugin://{store_dir}/artifacts/")
            local = tmp_path / "model.txt"
            local.write_text("weights")
            client.log_artifact(run.info.run_id, str(local))
            assert [f.path for f in client.list_artifacts(run.info.run_id)] == ["model.txt"]
            stored = store_dir / "artifacts" / experiment_id / run.info.run_id / "artifacts"
            assert (stored / "model.txt").read_text() == "weights"

            # Registry calls for the plugin's store go to the plugin registry process.
            client.create_registered_model("served-model")
            assert client.get_registered_model("served-model").name == "served-model"

            # Project runs on the plugin backend go to the plugin projects process.
            projects.wait_ready()
            stack.gateway.add_route("projects", "dummy-backend", projects.address)
            project = tmp_path / "project"
            project.mkdir()
            (project / "MLproject").write_text("name: p\nentry_points: {main: {command: 'true'}}\n")
            submitted = mlgrid.projects.run(
                str(project),
                backend="dummy-backend",
                experiment_id=experiment_id,
                synchronous=False,
            )
            assert submitted.get_status() == "FINISHED"
            assert projects.terminate() == 0
            with pytest.raises(TemporarilyUnavailable, match=projects.address):
                submitted.get_status()

            # The data is in the plugin's store, not in the stack's default store.
            monkeypatch.delenv("MLGRID_STORE_URI")
            assert client.get_experiment_by_name("served-by-plugin") is None
            from mlgrid_test_plugin import PluginFileStore

            direct = PluginFileStore(store_uri)
            try:
                assert direct.get_experiment(experiment_id).name == "served-by-plugin"
            finally:
                direct.close()

            # SIGTERM stops the plugin service; the gateway then names it, the rest works.
            assert tracking.terminate() == 0
            monkeypatch.setenv("MLGRID_STORE_URI", store_uri)
            with pytest.raises(TemporarilyUnavailable) as down:
                client.get_run(run.info.run_id)
            assert "file-plugin" in str(down.value) and tracking.address in str(down.value)
            monkeypatch.delenv("MLGRID_STORE_URI")
            assert client.create_experiment("default-store-still-works")
            # The plugin artifacts service is still up.
            listed = client.list_artifacts_at(run.info.artifact_uri)
            assert [f.path for f in listed] == ["model.txt"]
    finally:
        for process in (tracking, artifacts, registry, projects):
            if process is not None:
                process.kill()


def test_plugin_serve_refuses_a_class_that_is_no_plugin() -> None:
    process = PluginProcess("pathlib:Path", "x")
    assert process.process.wait(timeout=60) != 0
    process.kill()
    err = "".join(process.stderr)
    assert "implements no mlgrid plugin interface" in err
    assert "mlgrid.store.tracking_store.AbstractTrackingStore (tracking)" in err


def test_refuses_store_uris_of_other_schemes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlgrid_test_plugin import PluginFileStore

    from mlgrid_services.plugin_host.host import start_plugin_service

    served = start_plugin_service(PluginFileStore, "file-plugin")
    try:
        with start_stack(
            tmp_path,
            gateway_config=GatewayConfig(backends=[RouteSpec("tracking", "other", served.address)]),
            services=[],
        ) as stack:
            monkeypatch.setenv("MLGRID_STORE_URI", "other:///x")
            with pytest.raises(InvalidParameterValue, match="scheme 'file-plugin'"):
                Client(stack.tracking_uri).create_experiment("x")
    finally:
        served.stop()
