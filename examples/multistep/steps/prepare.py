"""Step 1: make a noisy linear data set y = 3x + 2 and store it as the run's artifact."""

from __future__ import annotations

import argparse
import csv
import random
import tempfile
from pathlib import Path

import mlgrid


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=float, required=True)
    parser.add_argument("--noise", type=float, required=True)
    parser.add_argument("--seed", type=float, required=True)
    args = parser.parse_args()
    rng = random.Random(int(args.seed))
    with mlgrid.start_run():  # resumes the run the projects service created (MLGRID_RUN_ID)
        out = Path(tempfile.mkdtemp()) / "dataset.csv"
        with out.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["x", "y"])
            for _ in range(int(args.rows)):
                x = rng.uniform(-1, 1)
                writer.writerow([x, 3 * x + 2 + rng.gauss(0, args.noise)])
        mlgrid.log_metric("rows", int(args.rows))
        mlgrid.log_artifact(str(out), artifact_path="data")
        print(f"prepared {int(args.rows)} rows")


if __name__ == "__main__":
    main()
