"""The scale tier of the benchmarks (``python -m bench.scale``, ``make bench-scale``): how the
cost of a search, a metric history, a wide run, an artifact listing or transfer and a single
``log_metric`` grows with the size of the store, mlgrid beside MLflow, and the embedded mode's
whole-process time. Not part of CI nor of ``make bench``: it fills databases with millions of
rows. See docs/benchmarks.md ("Scale").
"""
