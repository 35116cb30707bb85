"""Step 2: fit y = a*x + b by gradient descent on the prepared data; store the model as JSON."""

from __future__ import annotations

import argparse
import csv
import json
import tempfile
from pathlib import Path

import mlgrid


def load(path: str) -> list[tuple[float, float]]:
    with open(path, newline="") as handle:
        return [(float(row["x"]), float(row["y"])) for row in csv.DictReader(handle)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True)
    parser.add_argument("--epochs", type=float, required=True)
    parser.add_argument("--learning-rate", type=float, required=True)
    args = parser.parse_args()
    rows = load(args.data)
    a = b = 0.0
    with mlgrid.start_run():
        for epoch in range(int(args.epochs)):
            grad_a = sum(2 * (a * x + b - y) * x for x, y in rows) / len(rows)
            grad_b = sum(2 * (a * x + b - y) for x, y in rows) / len(rows)
            a -= args.learning_rate * grad_a
            b -= args.learning_rate * grad_b
            if epoch % 20 == 0:
                loss = sum((a * x + b - y) ** 2 for x, y in rows) / len(rows)
                mlgrid.log_metric("train_mse", loss, step=epoch)
        model = Path(tempfile.mkdtemp()) / "model.json"
        model.write_text(json.dumps({"a": a, "b": b}))
        mlgrid.log_artifact(str(model), artifact_path="model")
        print(f"trained a={a:.3f} b={b:.3f}")


if __name__ == "__main__":
    main()
