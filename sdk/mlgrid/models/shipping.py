"""What ``mlgrid models serve`` and ``predict`` do: find the model, pick its environment, run.

With ``--env-manager local`` the model loads into this process. With ``virtualenv`` or
``conda`` the model's files are fetched here, its environment is built (or reused), and the
same command runs again inside it with ``--env-manager local`` on the local copy.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from mlgrid.exceptions import InvalidParameterValue

from .server import ServeOptions, serve

__all__ = ["predict_file", "serve_model"]


def _log(text: str) -> None:
    sys.stderr.write(text)
    sys.stderr.flush()


def _model_dir(model_uri: str) -> Path:
    from mlgrid.pyfunc import get_model_dir

    return get_model_dir(model_uri)


def serve_model(model_uri: str, options: ServeOptions, env_manager: str) -> None:
    """Serves the model until SIGTERM/SIGINT (the command's process is the server)."""
    if env_manager != "local":
        from .environments import build_model_environment

        model_dir = _model_dir(model_uri)
        env = build_model_environment(model_dir, env_manager, _log)
        command = [
            *env.mlgrid, "models", "serve", "-m", str(model_dir), "--env-manager", "local",
            "-h", options.host, "-p", str(options.port), "-w", str(options.workers),
            "-t", str(options.timeout), "--max-body-mib", str(options.max_body_bytes / 2**20),
        ]  # fmt: skip
        os.execv(command[0], command)  # the environment's server takes over this process
    from mlgrid.pyfunc import load_model

    model = load_model(model_uri)
    serve(model, options, announce=_log_line)


def _log_line(text: str) -> None:
    _log(text + "\n")


def predict_file(model_uri: str, input_path: str, content_type: str, env_manager: str) -> bytes:
    """The server's answer to the file as a request body (``{"predictions": ...}``)."""
    path = Path(input_path)
    if not path.is_file():
        raise InvalidParameterValue(f"input file {input_path!r} does not exist")
    if env_manager != "local":
        from .environments import build_model_environment

        model_dir = _model_dir(model_uri)
        env = build_model_environment(model_dir, env_manager, _log)
        command = [*env.mlgrid, "models", "predict", "-m", str(model_dir), "-i", str(path)]
        command += ["-t", content_type, "--env-manager", "local"]
        done = subprocess.run(command, stdout=subprocess.PIPE)
        if done.returncode != 0:
            raise InvalidParameterValue(
                f"predicting in the model's {env_manager} environment failed (see above)"
            )
        return done.stdout.rstrip(b"\n")
    from mlgrid.pyfunc import load_model

    from .scoring import format_predictions, parse_request

    model = load_model(model_uri)
    media = "text/csv" if content_type == "csv" else "application/json"
    data, params = parse_request(path.read_bytes(), media, model.signature)
    return format_predictions(model.predict(data, params=params))
