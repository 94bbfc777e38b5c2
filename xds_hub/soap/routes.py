"""The wsa:Action -> handler table of each SOAP endpoint (../shared/INTERFACE.md, "SOAP endpoints").

A handler is named "module:function" with the signature of :data:`xds_hub.soap.types.Handler`;
it is imported on first use.  Add one line per transaction; the SOAP edge answers any other
action with a ``wsa:ActionNotSupported`` fault.
"""

from __future__ import annotations

import importlib
from functools import cache
from typing import Final

from xds_hub.domain.vocabulary import SoapAction
from xds_hub.soap.types import Handler

#: endpoint path -> {wsa:Action -> "module:function"}
ROUTES: Final[dict[str, dict[str, str]]] = {
    "/xds/registry": {},
    "/xds/repository": {},
    "/xdsi/source": {},
    "/pix": {},
}

_ = SoapAction  # the actions used as keys above are spelled in SoapAction


@cache
def handler_for(path: str, action: str) -> Handler | None:
    """The handler serving ``action`` at ``path``, or None if that endpoint does not serve it."""
    target = ROUTES.get(path, {}).get(action)
    if target is None:
        return None
    module, _, name = target.partition(":")
    handler: Handler = getattr(importlib.import_module(module), name)
    return handler
