"""Project environments can log: the running mlgrid is importable in a built virtualenv."""

from __future__ import annotations

import sys
from pathlib import Path

from mlgrid.api.projects.v1 import projects_service_pb2 as pb
from mlgrid.client import Client
from mlgrid.projects.submitted import RemoteSubmittedRun
from mlgrid_services.projects.sdk_site import PTH_NAME

from .helpers import write
from .service import own_projects_service

MINOR = f"{sys.version_info.major}.{sys.version_info.minor}"


def test_a_python_env_project_imports_mlgrid_and_logs(
    grpc_stack, env_root: Path, tmp_path: Path
) -> None:
    project = write(
        tmp_path / "p",
        {
            "MLproject": "name: venv-logs\npython_env: python_env.yaml\n"
            "entry_points: {main: {command: 'python train.py'}}\n",
            "python_env.yaml": f'python: "{MINOR}"\n',
            "train.py": (
                "import sys, mlgrid\n"
                "with mlgrid.start_run():\n"
                "    mlgrid.log_metric('m', 1.5)\n"
                "print(sys.prefix)\n"
                "print(mlgrid.__file__)\n"
            ),
        },
    )
    with own_projects_service(grpc_stack.config, tmp_path / "state") as svc:
        answer = svc.transport.call(
            svc.transport.projects.SubmitRun, pb.SubmitRunRequest(backend="local", uri=str(project))
        )
        submitted = RemoteSubmittedRun(svc.transport, "local", answer.run_id)
        assert submitted.wait(timeout=300) is True, b"".join(c.data for c in submitted.logs())
        prefix, sdk = b"".join(c.data for c in submitted.logs() if c.stream == "stdout").split()
    venv = Path(prefix.decode())
    assert venv.parent == env_root  # the project's own virtualenv …
    assert Path(sdk.decode()).is_relative_to(env_root / "sdk-sites")  # … sees the SDK site
    (pth,) = venv.glob(f"lib/python*/site-packages/{PTH_NAME}")
    assert Path(pth.read_text().strip()).parent == env_root / "sdk-sites"
    assert Client(grpc_stack.tracking_uri).get_run(answer.run_id).data.metrics == {"m": 1.5}
