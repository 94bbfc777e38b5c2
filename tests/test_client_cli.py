"""`xds-hub submit`, `xds-hub query`, `xds-hub retrieve` against a real hub (and failures)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from lxml import etree

from tests.hubproc import Hub, free_port
from tests.repository_support import hub_patient, new_pid, submission_for
from xds_hub.cli import main
from xds_hub.cli.client import EXIT_FAILED, EXIT_OK, EXIT_TRANSPORT, EXIT_USAGE
from xds_hub.ebxml.render import render_submit_objects_request
from xds_hub.storage.stores import Stores


def _files(tmp_path: Path) -> list[Path]:
    a = tmp_path / "report.pdf"
    a.write_bytes(b"%PDF-1.4 " + bytes(range(256)) * 10)
    b = tmp_path / "note.txt"
    b.write_text("a short clinical note\n")
    return [a, b]


def test_client_cli_submit_query_retrieve(
    hub: Hub, store: Stores, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pid = hub_patient(hub, store)
    files = _files(tmp_path)
    code = main(
        [
            "submit",
            "--to",
            hub.url("/xds/repository"),
            *map(str, files),
            "--patient",
            pid,
            "--config",
            str(hub.config),
            "--class-code",
            "REPORTS^1.3.6.1.4.1.19376.1.2.6.1^Reports",
            "-q",
        ]
    )
    out = capsys.readouterr()
    assert code == EXIT_OK, out.err
    uids = [line.split("\t")[0] for line in out.out.splitlines()]
    assert len(uids) == 2

    assert main(["query", "--registry", hub.url("/xds/registry"), "--patient", pid, "--json"]) == EXIT_OK
    doc = json.loads(capsys.readouterr().out)
    assert doc["status"] == "Success"
    by_uid = {o["unique_id"]: o for o in doc["objects"] if o["type"] == "DocumentEntry"}
    assert set(by_uid) == set(uids)
    assert by_uid[uids[0]]["mime_type"] == "application/pdf"
    assert by_uid[uids[1]]["mime_type"] == "text/plain"
    assert by_uid[uids[0]]["class_code"]["code"] == "REPORTS"

    assert main(["query", "--registry", hub.url("/xds/registry"), "--patient", pid]) == EXIT_OK
    table = capsys.readouterr().out
    assert all(uid in table for uid in uids)

    out_dir = tmp_path / "out"
    args = [
        "retrieve",
        "--repository",
        hub.url("/xds/repository"),
        "--out",
        str(out_dir),
        "-q",
        "--config",
        str(hub.config),
    ]
    for uid in uids:
        args += ["--unique-id", uid]
    assert main(args) == EXIT_OK
    lines = capsys.readouterr().out.splitlines()
    got = {Path(line.split("\t")[0]).suffix: Path(line.split("\t")[0]).read_bytes() for line in lines}
    assert got == {".pdf": files[0].read_bytes(), ".txt": files[1].read_bytes()}


def test_client_cli_submit_ready_metadata(
    hub: Hub, store: Stores, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pid = hub_patient(hub, store)
    sub, contents = submission_for(pid, [b"ready-made metadata document"], include_hash=False)
    meta = tmp_path / "submit.xml"
    meta.write_bytes(etree.tostring(render_submit_objects_request(sub)))
    doc = tmp_path / "doc.txt"
    doc.write_bytes(next(iter(contents.values())))
    code = main(["submit", "--to", hub.url("/xds/repository"), "--metadata", str(meta), str(doc), "-q"])
    out = capsys.readouterr()
    assert code == EXIT_OK, out.err
    assert out.out.split("\t")[0] == sub.documents[0].unique_id


def test_client_cli_submit_reports_registry_errors(
    hub: Hub, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "submit",
            "--to",
            hub.url("/xds/repository"),
            *map(str, _files(tmp_path)),
            "--patient",
            new_pid(),
            "--source-id",
            "1.2.3.100.1",
            "-q",
        ]
    )
    assert code == EXIT_FAILED
    err = capsys.readouterr().err
    assert "XDSUnknownPatientId" in err
    assert "submission failed (Failure)" in err


def test_client_cli_retrieve_reports_missing_document(
    hub: Hub, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "retrieve",
            "--repository",
            hub.url("/xds/repository"),
            "--unique-id",
            "1.2.3.404",
            "--repository-id",
            "1.3.6.1.4.1.21367.13.80.1",
            "--out",
            str(tmp_path),
            "-q",
        ]
    )
    assert code == EXIT_FAILED
    assert "XDSDocumentUniqueIdError [1.2.3.404]" in capsys.readouterr().err


def test_client_cli_unreachable_endpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{free_port()}/xds/repository"
    code = main(["submit", "--to", url, *map(str, _files(tmp_path)), "--patient", new_pid(), "-q"])
    assert code == EXIT_TRANSPORT
    assert "cannot reach" in capsys.readouterr().err


def test_client_cli_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["submit", "--to", "http://127.0.0.1:1/x", str(tmp_path / "nope.pdf"), "--patient", "X"])
        == EXIT_USAGE
    )
    assert "no such file" in capsys.readouterr().err
    assert main(["query", "--registry", "http://127.0.0.1:1/x", "--query", "FindDocuments"]) == EXIT_USAGE
    assert "needs --patient" in capsys.readouterr().err
    f = _files(tmp_path)[0]
    assert (
        main(["submit", "--to", "http://127.0.0.1:1/x", str(f), "--patient", "P", "--class-code", "bad"])
        == EXIT_USAGE
    )
    assert "CODE^SCHEME" in capsys.readouterr().err
