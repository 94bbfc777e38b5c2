"""xds_hub.registry.responses: the RegistryResponse answer and the database-failure mapping shared by
the ITI-18/41/42/57/62/86 handlers."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy.exc import IntegrityError, OperationalError

from xds_hub.domain.vocabulary import ResponseStatus, SoapAction
from xds_hub.errors import ErrorCode, Problem, Severity, XdsError
from xds_hub.registry.responses import Actor, database_errors, registry_response

LOG = logging.getLogger("xds_hub.registry.test_handler")
OPERATIONAL = OperationalError("BEGIN IMMEDIATE", {}, Exception("database is locked"))
INTEGRITY = IntegrityError("INSERT", {}, Exception("UNIQUE constraint failed"))


@pytest.mark.parametrize(
    ("actor", "busy", "error"),
    [
        ("registry", ErrorCode.REGISTRY_BUSY, ErrorCode.REGISTRY_ERROR),
        ("repository", ErrorCode.REPOSITORY_BUSY, ErrorCode.REPOSITORY_ERROR),
    ],
)
@pytest.mark.parametrize("operational", [True, False])
def test_database_errors_map_sqlalchemy_failures(
    actor: Actor, busy: ErrorCode, error: ErrorCode, operational: bool, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger=LOG.name)
    with (
        pytest.raises(XdsError) as caught,
        database_errors(LOG, "ITI-99", "busy text", "error text", actor=actor),
    ):
        raise OPERATIONAL if operational else INTEGRITY
    (problem,) = caught.value.problems
    assert (problem.code, problem.context) == ((busy, "busy text") if operational else (error, "error text"))
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    (record,) = caplog.records
    assert record.name == LOG.name and record.levelno == logging.ERROR and record.exc_info
    expected = f"ITI-99: the {actor} database is unavailable" if operational else "ITI-99: database failure"
    assert record.getMessage() == expected


def test_database_errors_pass_other_exceptions_and_results_through() -> None:
    with pytest.raises(ValueError), database_errors(LOG, "ITI-99", "b", "e"):
        raise ValueError("not a database failure")
    with database_errors(LOG, "ITI-99", "b", "e"):
        value = 42
    assert value == 42


@pytest.mark.parametrize(
    ("problems", "status"),
    [
        ((), ResponseStatus.SUCCESS),
        ((Problem(ErrorCode.REGISTRY_ERROR, "w", severity=Severity.WARNING),), ResponseStatus.SUCCESS),
        ((Problem(ErrorCode.REGISTRY_ERROR, "e"),), ResponseStatus.FAILURE),
    ],
)
def test_registry_response_status(problems: tuple[Problem, ...], status: ResponseStatus) -> None:
    resp = registry_response(SoapAction.ITI42_RESPONSE, problems)
    assert resp.action == SoapAction.ITI42_RESPONSE
    assert resp.body.get("status") == status.value
    assert len(resp.body.findall(".//{*}RegistryError")) == len(problems)
