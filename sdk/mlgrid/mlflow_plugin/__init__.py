"""mlgrid as a backend of the unmodified ``mlflow`` client (``pip install 'mlgrid[mlflow]'``).

Entry points in MLflow's own plugin groups (see pyproject.toml) make MLflow build:

- :class:`~mlgrid.mlflow_plugin.tracking_store.MlgridTrackingStore` and
  :class:`~mlgrid.mlflow_plugin.registry_store.MlgridRegistryStore` for
  ``MLFLOW_TRACKING_URI=mlgrid://host:port`` (``mlgrids://`` over TLS);
- :class:`~mlgrid.mlflow_plugin.artifact_repository.MlgridArtifactRepository` for the
  ``mlgrid-artifacts://`` URIs those stores hand out (see :mod:`~mlgrid.mlflow_plugin.uris`).

All of them are translators over mlgrid's SDK: its gRPC contracts, validation and semantics.
Importing this package needs ``mlflow`` (or ``mlflow-skinny``); the rest of mlgrid does not.
"""
