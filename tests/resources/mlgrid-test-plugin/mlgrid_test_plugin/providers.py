"""The run context and request header providers: loaded in every client process that runs or
calls, so they import nothing but their interfaces."""

from __future__ import annotations

import os

from mlgrid.plugins import RequestHeaderProvider, RunContextProvider

from . import CONTEXT_ENV, HEADER


class PluginRunContextProvider(RunContextProvider):
    def in_context(self) -> bool:
        return os.environ.get(CONTEXT_ENV) == "1"

    def tags(self) -> dict[str, str]:
        return {"test": "tag"}


class PluginRequestHeaderProvider(RequestHeaderProvider):
    def in_context(self) -> bool:
        return os.environ.get(CONTEXT_ENV) == "1"

    def request_headers(self) -> dict[str, str]:
        return {HEADER: "1"}
