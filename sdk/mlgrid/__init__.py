"""mlgrid: an ML lifecycle platform with MLflow's semantics, built as gRPC services."""

__version__ = "0.1.0"
