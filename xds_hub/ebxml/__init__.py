"""ebRIM 3.0 XML <-> typed XDS metadata: the only code that reads or writes XDS metadata XML.

:mod:`.parse` turns lxml elements into :mod:`xds_hub.domain.metadata` objects, :mod:`.render`
turns them back; :mod:`.wire` is the table of how each attribute sits on the wire.
"""

from xds_hub.ebxml.parse import (
    inline_document,
    parse_provide_and_register,
    parse_registry_object_list,
    parse_submit_objects_request,
)
from xds_hub.ebxml.render import (
    render_adhoc_query_response,
    render_object,
    render_provide_and_register,
    render_registry_object_list,
    render_registry_response,
    render_submit_objects_request,
)
from xds_hub.ebxml.wire import INLINE_REF_PREFIX

__all__ = [
    "INLINE_REF_PREFIX",
    "inline_document",
    "parse_provide_and_register",
    "parse_registry_object_list",
    "parse_submit_objects_request",
    "render_adhoc_query_response",
    "render_object",
    "render_provide_and_register",
    "render_registry_object_list",
    "render_registry_response",
    "render_submit_objects_request",
]
