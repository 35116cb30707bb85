"""The tracking service: experiments, runs, params, metrics, tags and dataset inputs.

Layers: ``servicer`` (proto in/out) → ``domain`` (validation, defaults) → ``store`` (an
:class:`mlgrid.store.tracking_store.AbstractTrackingStore`; the SQL one lives in ``store/``).
``app.create(config)`` wires them; ``migrations.upgrade(uri)`` migrates a database.
"""
