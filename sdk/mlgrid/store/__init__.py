"""Store interfaces that mlgrid's built-in backends and plugins implement.

- :mod:`mlgrid.store.tracking_store`: :class:`AbstractTrackingStore` (experiments, runs, data).
- :mod:`mlgrid.store.search_filter`: the search filter grammar every store shares.
- :mod:`mlgrid.store.paging`: opaque page tokens.
"""
