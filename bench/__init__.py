"""Side-by-side benchmark: mlgrid against the real MLflow server, same machine, same PostgreSQL.

``python -m bench`` (or ``make bench``) starts each target on a fresh database, runs the same
workload against it from a separate client process, and prints each phase's figure for every
target with the ratio and the target from the issues. See docs/benchmarks.md.

The workload (bench.workload, bench.worker) imports only the standard library at module level so
that it runs unchanged in mlgrid's venv (client ``mlgrid``) and in MLflow's own venv (client
``mlflow``): one code path, two SDKs.
"""
