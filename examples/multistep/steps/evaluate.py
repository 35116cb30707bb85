"""Step 3: score the trained model on the data set (root mean squared error)."""

from __future__ import annotations

import argparse
import csv
import json
import math

import mlgrid


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True)
    parser.add_argument("--model", required=True)
    args = parser.parse_args()
    with open(args.model) as handle:
        model = json.load(handle)
    with open(args.data, newline="") as handle:
        rows = [(float(r["x"]), float(r["y"])) for r in csv.DictReader(handle)]
    mse = sum((model["a"] * x + model["b"] - y) ** 2 for x, y in rows) / len(rows)
    with mlgrid.start_run():
        mlgrid.log_metric("rmse", math.sqrt(mse))
    print(f"rmse={math.sqrt(mse):.4f}")


if __name__ == "__main__":
    main()
