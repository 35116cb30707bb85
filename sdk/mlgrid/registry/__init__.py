"""The model registry on the client side: entities, the store interface plugins implement,
the Client methods (RegistryClient, exposed on Client) and ``register_model``."""

from mlgrid.registry.entities import ModelVersion, RegisteredModel

__all__ = ["ModelVersion", "RegisteredModel", "register_model"]


def __getattr__(name: str):  # type: ignore[no-untyped-def]
    # register_model imports the client lazily; keep ``import mlgrid.registry`` light.
    if name == "register_model":
        from mlgrid.registry.fluent import register_model

        return register_model
    raise AttributeError(f"module 'mlgrid.registry' has no attribute {name!r}")
