"""What the XDS SOAP handlers share: the rs:RegistryResponse answer and the database-failure mapping.

The registry's handlers (ITI-18, ITI-42, ITI-57, ITI-62) and the repository's (ITI-41, ITI-86)
answer with an ``rs:RegistryResponse`` (ITI TF-3 4.2.4) and turn a failure of their database
transaction into an XdsError the requester can act on (ITI TF-3 Table 4.2.4.1-2):

- :class:`~sqlalchemy.exc.OperationalError` (the database is unreachable, a lock or statement
  timed out) -> XDSRegistryBusy / XDSRepositoryBusy: try again later;
- any other :class:`~sqlalchemy.exc.SQLAlchemyError` -> XDSRegistryError / XDSRepositoryError.

Both are logged with their traceback on the handler's own logger.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Final, Literal

from sqlalchemy.exc import OperationalError, SQLAlchemyError

from xds_hub.domain.vocabulary import ResponseStatus
from xds_hub.ebxml.render import render_registry_response
from xds_hub.errors import ErrorCode, Problem, Severity, XdsError
from xds_hub.soap.types import SoapResponse

if TYPE_CHECKING:
    import logging

    from xds_hub.domain.vocabulary import SoapAction

Actor = Literal["registry", "repository"]

#: The answer to an exception no rule foresaw (its traceback goes to the log).
REGISTRY_INTERNAL_ERROR: Final = Problem(ErrorCode.REGISTRY_ERROR, "internal error of the Document Registry")
REPOSITORY_INTERNAL_ERROR: Final = Problem(
    ErrorCode.REPOSITORY_ERROR, "internal error of the Document Repository"
)

#: actor -> (the code of an unavailable database, the code of any other database failure)
_CODES: Final[dict[Actor, tuple[ErrorCode, ErrorCode]]] = {
    "registry": (ErrorCode.REGISTRY_BUSY, ErrorCode.REGISTRY_ERROR),
    "repository": (ErrorCode.REPOSITORY_BUSY, ErrorCode.REPOSITORY_ERROR),
}


def registry_response(action: SoapAction, problems: tuple[Problem, ...] = ()) -> SoapResponse:
    """rs:RegistryResponse answering with wsa:Action ``action``: Failure if one of ``problems`` is
    an error, else Success (listing any warnings)."""
    failed = any(p.severity is Severity.ERROR for p in problems)
    status = ResponseStatus.FAILURE if failed else ResponseStatus.SUCCESS
    return SoapResponse(action=action, body=render_registry_response(status, problems))


@contextmanager
def database_errors(
    log: logging.Logger, transaction: str, busy_text: str, error_text: str, *, actor: Actor = "registry"
) -> Iterator[None]:
    """Raise the SQLAlchemy failures of the block as XdsError (see the module docstring).

    ``transaction`` ("ITI-42") starts the log line; ``busy_text`` and ``error_text`` are the
    codeContext of the Busy and Error answers.
    """
    try:
        yield
    except OperationalError:
        log.exception(f"{transaction}: the {actor} database is unavailable")
        raise XdsError.one(_CODES[actor][0], busy_text) from None
    except SQLAlchemyError:
        log.exception(f"{transaction}: database failure")
        raise XdsError.one(_CODES[actor][1], error_text) from None
