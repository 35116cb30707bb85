"""Registry methods of :class:`mlgrid.client.Client` (create_registered_model, ...)."""


class RegistryClientMixin:
    """Mixed into Client; uses ``self._transport``."""
