"""The workflow driver: runs prepare -> train -> evaluate as separate project runs.

Each step is ``mlgrid.projects.run`` on an entry point of this same project. The driver reads
each finished step through the client (status, artifacts) and passes the output on to the next
step as a ``runs:/<run_id>/<path>`` URI for a ``path`` parameter, which the projects service
downloads for the step before it starts.

With ``--backend docker --image <python image>`` each step runs in a container instead: an image
built FROM ``<python image>`` with this project (and mlgrid) inside (``build_image``); the
downloaded inputs are mounted into the step's container.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import mlgrid
from mlgrid import projects
from mlgrid.client import Client

HERE = str(Path(__file__).resolve().parent)


def run_step(entry_point: str, parameters: dict[str, object], backend: str, image: str) -> str:
    if backend == "docker":
        submitted = projects.run(
            HERE,
            entry_point=entry_point,
            parameters=parameters,
            backend="docker",
            backend_config={"image": image},
            build_image=True,
        )
    else:
        submitted = projects.run(HERE, entry_point=entry_point, parameters=parameters)
    print(f"step {entry_point}: run {submitted.run_id} {submitted.get_status()}")
    return submitted.run_id


def output(client: Client, run_id: str, directory: str) -> str:
    """The single file a step wrote under ``directory``, as a runs:/ URI."""
    files = [f for f in client.list_artifacts(run_id, directory) if not f.is_dir]
    if len(files) != 1:
        raise SystemExit(f"run {run_id} should have one file under {directory}, found {files}")
    return f"runs:/{run_id}/{files[0].path}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=float, required=True)
    parser.add_argument("--learning-rate", type=float, required=True)
    parser.add_argument("--backend", choices=("local", "docker"), default="local")
    parser.add_argument("--image", default="python:3.11-slim")
    args = parser.parse_args()
    backend, image = args.backend, args.image
    client = Client()
    with mlgrid.start_run() as driver:
        prepare_id = run_step("prepare", {"rows": args.rows}, backend, image)
        data = output(client, prepare_id, "data")
        train_id = run_step(
            "train", {"data": data, "learning_rate": args.learning_rate}, backend, image
        )
        model = output(client, train_id, "model")
        evaluate_id = run_step("evaluate", {"data": data, "model": model}, backend, image)
        rmse = client.get_run(evaluate_id).data.metrics["rmse"]
        mlgrid.log_metric("rmse", rmse)
        for key, value in (("prepare", prepare_id), ("train", train_id), ("evaluate", evaluate_id)):
            mlgrid.set_tag(f"step.{key}", value)
        print(f"workflow {driver.info.run_id}: rmse={rmse:.4f}")


if __name__ == "__main__":
    main()
