"""The wsa:Action -> handler table of each SOAP endpoint (the INTERFACE contract, "SOAP endpoints").

A handler is named "module:function" with the signature of :data:`xds_hub.soap.types.Handler`;
:func:`load_all` imports every handler when a worker starts (so no request pays for imports).
Add one line per transaction; the SOAP edge answers any other action with a
``wsa:ActionNotSupported`` fault.
"""

from __future__ import annotations

import importlib
from functools import cache
from typing import Final

from xds_hub.domain.vocabulary import SoapAction
from xds_hub.soap.types import Handler

#: endpoint path -> {wsa:Action -> "module:function"}
ROUTES: Final[dict[str, dict[str, str]]] = {
    "/xds/registry": {
        SoapAction.ITI42: "xds_hub.registry.iti42:handle",
        SoapAction.ITI18: "xds_hub.registry.iti18:handle",
        SoapAction.ITI57: "xds_hub.registry.iti57:handle",
        SoapAction.ITI62: "xds_hub.registry.iti62:handle",
    },
    "/xds/repository": {
        SoapAction.ITI41: "xds_hub.repository.iti41:handle",
        SoapAction.ITI43: "xds_hub.repository.iti43:handle",
        SoapAction.ITI86: "xds_hub.repository.iti86:handle",
    },
    "/xdsi/source": {SoapAction.RAD69: "xds_hub.imaging.rad69:handle"},
    "/pix": {
        SoapAction.ITI44_ADD: "xds_hub.pix.iti44:handle",
        SoapAction.ITI44_REVISE: "xds_hub.pix.iti44:handle",
        SoapAction.ITI44_MERGE: "xds_hub.pix.iti44:handle",
        SoapAction.ITI45: "xds_hub.pix.iti45:handle",
    },
}


@cache
def handler_for(path: str, action: str) -> Handler | None:
    """The handler serving ``action`` at ``path``, or None if that endpoint does not serve it."""
    target = ROUTES.get(path, {}).get(action)
    if target is None:
        return None
    module, _, name = target.partition(":")
    handler: Handler = getattr(importlib.import_module(module), name)
    return handler


def load_all() -> None:
    """Import every handler of :data:`ROUTES` now (raises if one is missing)."""
    for path, actions in ROUTES.items():
        for action in actions:
            if handler_for(path, action) is None:  # pragma: no cover - ROUTES names a handler
                raise LookupError(f"no handler for {action} at {path}")
