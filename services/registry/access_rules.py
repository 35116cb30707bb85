"""What each RegistryService call needs when auth is on (services/common/auth/policy.py).

Permissions are granted on registered models by name (as MLflow's); a model version is checked
on its model. A renamed model keeps its grants and workspace; a deleted one loses them, so a
new model of the same name starts clean.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from mlgrid.api.registry.v1 import registry_service_pb2 as pb
from mlgrid_services.common.auth.permissions import Permission, ResourceKind
from mlgrid_services.common.auth.policy import Rule, creates, edits, field, manages, reads

if TYPE_CHECKING:
    from mlgrid_services.common.auth.access import AccessControl

MODEL = ResourceKind.REGISTERED_MODEL
_SERVICE = pb.DESCRIPTOR.services_by_name["RegistryService"].full_name


def _keep(name: str, model_name: Callable[[Any], str]) -> Any:
    def keep(response: Any, readable: Callable[[Iterable[str]], set[str]]) -> Any:
        items = getattr(response, name)
        allowed = readable(model_name(item) for item in items)
        kept = [item for item in items if model_name(item) in allowed]
        del items[:]
        items.extend(kept)
        return response

    return keep


def _renamed(access: AccessControl, request: Any) -> None:
    access.store.move_grants(MODEL, request.name, request.new_name)


def _deleted(access: AccessControl, request: Any) -> None:
    access.store.forget_resource(MODEL, request.name)


def registry_rules() -> dict[str, Rule]:
    """The rule of every RegistryService method."""
    model = field("name")
    rules: dict[str, Rule] = {
        "CreateRegisteredModel": creates(MODEL, lambda _req, resp: resp.registered_model.name),
        "GetRegisteredModel": reads(MODEL, model),
        "RenameRegisteredModel": Rule(kind=MODEL, needs=Permission.EDIT, ids=model, after=_renamed),
        "UpdateRegisteredModel": edits(MODEL, model),
        "DeleteRegisteredModel": manages(MODEL, model, after=_deleted),
        "SearchRegisteredModels": Rule(
            kind=MODEL, filters=_keep("registered_models", lambda m: m.name)
        ),
        "GetLatestVersions": reads(MODEL, model),
        "SetRegisteredModelTag": edits(MODEL, model),
        "DeleteRegisteredModelTag": edits(MODEL, model),
        "CreateModelVersion": edits(MODEL, model),
        "GetModelVersion": reads(MODEL, model),
        "UpdateModelVersion": edits(MODEL, model),
        "DeleteModelVersion": manages(MODEL, model),
        "SearchModelVersions": Rule(kind=MODEL, filters=_keep("model_versions", lambda v: v.name)),
        "TransitionModelVersionStage": edits(MODEL, model),
        "SetModelVersionTag": edits(MODEL, model),
        "DeleteModelVersionTag": edits(MODEL, model),
        "GetModelVersionDownloadUri": reads(MODEL, model),
        "SetRegisteredModelAlias": edits(MODEL, model),
        "DeleteRegisteredModelAlias": edits(MODEL, model),
        "GetModelVersionByAlias": reads(MODEL, model),
    }
    return {f"/{_SERVICE}/{name}": rule for name, rule in rules.items()}
