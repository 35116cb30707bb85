"""The kubernetes backend's configuration: MLflow's keys, checked, with the service's defaults.

A run's ``--backend-config`` gives ``kube-context``, ``repository-uri`` and
``kube-job-template-path`` (MLflow's names), or ``kube-job-template`` (the template's text,
which the SDK sends when the path is a file on the client's machine). A deployment can set
defaults for every key in a JSON file named by ``MLGRID_KUBE_BACKEND_CONFIG`` (the Helm chart
does), so that users of an in-cluster service need give nothing at all.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlgrid import environment
from mlgrid.exceptions import InvalidParameterValue

__all__ = ["DEFAULTS_ENV", "KubernetesConfig", "parse_config"]

#: Environment variable naming the service's default backend configuration (a JSON file).
DEFAULTS_ENV = environment.MLGRID_KUBE_BACKEND_CONFIG.name

_KNOWN_KEYS = (
    "kube-context",
    "kube-namespace",
    "repository-uri",
    "kube-job-template-path",
    "kube-job-template",
    "image-pull-secrets",
)
#: Keys the projects service adds to every backend configuration (not the user's).
_SERVICE_KEYS = ("env_manager", "build_image", "working_directory", "docker_env")
_MAX_SHOWN = 200


@dataclass(frozen=True)
class KubernetesConfig:
    """Where and how a run's Job is created."""

    #: The kubeconfig context to use; None: the current context, else in-cluster config.
    context: str | None
    #: Image repository the project image is pushed to (``host:port/name`` or ``name``).
    repository_uri: str
    #: The Job template as YAML text (read from ``kube-job-template-path`` when given so).
    job_template: str
    #: Namespace of the Job; None: the template's, else the context's (or the pod's).
    namespace: str | None = None
    #: Secrets the Job's pods pull the image with (added to the template's own).
    image_pull_secrets: tuple[str, ...] = ()


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_SHOWN else text[:_MAX_SHOWN] + "…"


def _string(config: dict[str, Any], key: str, required: bool) -> str | None:
    value = config.get(key)
    if value is None or value == "":
        if required:
            raise InvalidParameterValue(
                f"backend config: {key!r} is required by the kubernetes backend "
                f"(known keys: {', '.join(_KNOWN_KEYS)})"
            )
        return None
    if not isinstance(value, str):
        raise InvalidParameterValue(
            f"backend config: {key!r} must be a string, got {_shown(value)}"
        )
    return value


def _service_defaults() -> dict[str, Any]:
    raw = environment.MLGRID_KUBE_BACKEND_CONFIG.get()
    if not raw:
        return {}
    try:
        defaults = json.loads(Path(raw).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        # The deployment's own file: its problem is the operator's, so say which variable.
        raise InvalidParameterValue(
            f"the projects service's {DEFAULTS_ENV} file cannot be read as JSON ({exc})"
        ) from None
    if not isinstance(defaults, dict):
        raise InvalidParameterValue(f"the projects service's {DEFAULTS_ENV} is not a JSON object")
    return defaults


def _read_template(path_value: str, base_dir: Path | None) -> str:
    path = Path(path_value).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidParameterValue(
            f"backend config: 'kube-job-template-path' {_shown(path_value)} cannot be read "
            f"by the projects service ({exc.strerror}); give a path on the service's machine "
            "or the template's text as 'kube-job-template'"
        ) from None


def _template_text(user: dict[str, Any], defaults: dict[str, Any], base_dir: Path | None) -> str:
    """The user's template (inline text, else the file), else the service's default one."""
    for source, relative_to in ((user, base_dir), (defaults, None)):
        inline = _string(source, "kube-job-template", required=False)
        if inline:
            return inline
        path = _string(source, "kube-job-template-path", required=False)
        if path:
            return _read_template(path, relative_to)
    raise InvalidParameterValue(
        "backend config: 'kube-job-template-path' (or 'kube-job-template', the template's "
        "text) is required by the kubernetes backend"
    )


def parse_config(user: dict[str, Any], base_dir: Path | None = None) -> KubernetesConfig:
    """The run's configuration: the service's defaults overridden by the user's keys."""
    unknown = sorted(k for k in user if k not in _KNOWN_KEYS and k not in _SERVICE_KEYS)
    if unknown:
        raise InvalidParameterValue(
            f"backend config: unknown key {_shown(unknown[0])} for the kubernetes backend; "
            f"known keys: {', '.join(_KNOWN_KEYS)}"
        )
    defaults = _service_defaults()
    config = {**defaults, **{k: v for k, v in user.items() if v not in (None, "")}}
    template = _template_text(user, defaults, base_dir)
    secrets = config.get("image-pull-secrets") or []
    if isinstance(secrets, str):
        secrets = [secrets]
    if not isinstance(secrets, list) or not all(isinstance(s, str) and s for s in secrets):
        raise InvalidParameterValue(
            "backend config: 'image-pull-secrets' must be a list of Secret names, got "
            f"{_shown(config.get('image-pull-secrets'))}"
        )
    repository = _string(config, "repository-uri", required=True)
    assert repository is not None
    return KubernetesConfig(
        context=_string(config, "kube-context", required=False),
        repository_uri=repository,
        job_template=template,
        namespace=_string(config, "kube-namespace", required=False),
        image_pull_secrets=tuple(secrets),
    )
