"""mlgrid-test-plugin: one plugin of every type, each as small as it can be.

- ``file-plugin`` tracking store and registry store: the built-in SQL stores over a SQLite
  database in the directory named by ``file-plugin:///<dir>``; new experiments keep their
  artifacts under ``file-plugin:///<dir>/artifacts``, so artifacts go through the plugin
  repository too.
- ``file-plugin`` artifact repository: the built-in file repository, for ``file-plugin:///<dir>``.
- A run context provider adding ``{"test": "tag"}`` and a request header provider adding
  ``x-mlgrid-test-plugin: 1``, both in context when ``MLGRID_TEST_PLUGIN_CONTEXT=1`` (so that
  installing this package does not change the runs and calls of unrelated code).
- ``dummy-backend``: a project backend whose runs finish at once.

Each kind lives in its own module, and this package loads none of them: a client process loads
the providers (``providers.py``) on its first run or call, so they import nothing more than
their interfaces; the stores and the backend, which need the server's code, load only where a
service or a project run asks for them.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from mlgrid.exceptions import InvalidParameterValue

SCHEME = "file-plugin"
#: Environment variable that puts the providers in context.
CONTEXT_ENV = "MLGRID_TEST_PLUGIN_CONTEXT"
HEADER = "x-mlgrid-test-plugin"

#: What ``mlgrid_test_plugin.<name>`` still gives (its module is loaded on first use).
_EXPORTS = {
    "PluginFileStore": "stores",
    "PluginRegistrySqlStore": "stores",
    "PluginLocalArtifactRepository": "stores",
    "PluginRunContextProvider": "providers",
    "PluginRequestHeaderProvider": "providers",
    "DummySubmittedRun": "backend",
    "PluginDummyProjectBackend": "backend",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'mlgrid_test_plugin' has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


def plugin_directory(uri: str) -> Path:
    """The local directory of ``file-plugin:///<dir>``; anything else is refused."""
    parts = urlsplit(uri)
    path = unquote(parts.path)
    if parts.scheme.lower() != SCHEME:
        raise InvalidParameterValue(f"URI {uri!r} is not a {SCHEME}:/// URI")
    if parts.netloc not in ("", "localhost") or parts.query or parts.fragment:
        raise InvalidParameterValue(
            f"URI {uri!r} is not allowed: {SCHEME} URIs name a local directory, as "
            f"{SCHEME}:///absolute/path (no host, query or fragment)"
        )
    if not path.startswith("/") or ".." in path.split("/") or "\x00" in path:
        raise InvalidParameterValue(
            f"URI {uri!r} is not allowed: the path must be absolute, without '..'"
        )
    return Path(path)
