"""Client verbs: `xds-hub submit` (ITI-41), `xds-hub query` (ITI-18), `xds-hub retrieve` (ITI-43).

They talk to any XDS.b endpoint over HTTP(S).  Exit status: 0 success, 1 the endpoint answered
Failure or PartialSuccess (its RegistryErrors are printed), 2 bad arguments or configuration,
3 the endpoint could not be reached or did not answer SOAP (or answered a SOAP Fault).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from lxml import etree

from xds_hub import ns
from xds_hub.config import Settings, load_settings
from xds_hub.domain.vocabulary import Status, StoredQuery

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_TRANSPORT = 0, 1, 2, 3

#: Query names accepted by --query (ITI TF-2 3.18.4.1.2.3.7) and the patient parameter of each.
QUERY_NAMES: dict[str, tuple[StoredQuery, str | None]] = {
    "FindDocuments": (StoredQuery.FIND_DOCUMENTS, "$XDSDocumentEntryPatientId"),
    "FindSubmissionSets": (StoredQuery.FIND_SUBMISSION_SETS, "$XDSSubmissionSetPatientId"),
    "FindFolders": (StoredQuery.FIND_FOLDERS, "$XDSFolderPatientId"),
    "GetAll": (StoredQuery.GET_ALL, "$patientId"),
    "FindDocumentsByReferenceId": (StoredQuery.FIND_DOCUMENTS_BY_REFERENCE_ID, "$XDSDocumentEntryPatientId"),
    "GetDocuments": (StoredQuery.GET_DOCUMENTS, None),
    "GetFolders": (StoredQuery.GET_FOLDERS, None),
    "GetAssociations": (StoredQuery.GET_ASSOCIATIONS, None),
    "GetDocumentsAndAssociations": (StoredQuery.GET_DOCUMENTS_AND_ASSOCIATIONS, None),
    "GetSubmissionSets": (StoredQuery.GET_SUBMISSION_SETS, None),
    "GetSubmissionSetAndContents": (StoredQuery.GET_SUBMISSION_SET_AND_CONTENTS, None),
    "GetFolderAndContents": (StoredQuery.GET_FOLDER_AND_CONTENTS, None),
    "GetFoldersForDocument": (StoredQuery.GET_FOLDERS_FOR_DOCUMENT, None),
    "GetRelatedDocuments": (StoredQuery.GET_RELATED_DOCUMENTS, None),
}
#: The status parameters each patient query requires.
_STATUS_PARAMS: dict[str, tuple[str, ...]] = {
    "FindDocuments": ("$XDSDocumentEntryStatus",),
    "FindSubmissionSets": ("$XDSSubmissionSetStatus",),
    "FindFolders": ("$XDSFolderStatus",),
    "GetAll": ("$XDSDocumentEntryStatus", "$XDSSubmissionSetStatus", "$XDSFolderStatus"),
    "FindDocumentsByReferenceId": ("$XDSDocumentEntryStatus",),
}
_STATUSES = {s.name.lower(): s for s in Status}


def register(sub: Any) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config", type=Path, help="affinity-domain TOML file, for defaults (see each option)"
    )
    common.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for the endpoint (300)")
    common.add_argument("--insecure", action="store_true", help="do not verify the server's TLS certificate")
    common.add_argument("--quiet", "-q", action="store_true", help="no progress bars")

    submit = sub.add_parser(
        "submit", parents=[common], help="ITI-41: provide and register documents to a Document Repository"
    )
    submit.add_argument(
        "--to", required=True, metavar="URL", help="Document Repository endpoint (or its ?wsdl)"
    )
    submit.add_argument("files", nargs="*", type=Path, metavar="FILE", help="documents to submit")
    submit.add_argument(
        "--patient", metavar="ID^^^&OID&ISO", help="affinity-domain patient ID (required without --metadata)"
    )
    submit.add_argument(
        "--metadata",
        type=Path,
        metavar="XML",
        help="a ready lcm:SubmitObjectsRequest or "
        "xdsb:ProvideAndRegisterDocumentSetRequest; FILEs go to its ExtrinsicObjects in order",
    )
    submit.add_argument("--source-id", help="SubmissionSet sourceId (default: first source_ids of --config)")
    submit.add_argument("--source-patient-id", help="sourcePatientId (default: the --patient ID)")
    submit.add_argument("--mime-type", help="mimeType of every FILE (default: guessed from its name)")
    submit.add_argument("--title", help="title of the documents (default: the file name)")
    for flag, what in (
        ("--class-code", "classCode"),
        ("--type-code", "typeCode"),
        ("--format-code", "formatCode"),
        ("--facility-code", "healthcareFacilityTypeCode"),
        ("--practice-code", "practiceSettingCode"),
        ("--content-type-code", "SubmissionSet contentTypeCode"),
    ):
        submit.add_argument(flag, metavar="CODE^SCHEME[^DISPLAY]", help=what)
    submit.add_argument(
        "--confidentiality-code",
        action="append",
        metavar="CODE^SCHEME[^DISPLAY]",
        help="confidentialityCode (repeatable; default N^2.16.840.1.113883.5.25)",
    )
    submit.add_argument(
        "--event-code", action="append", metavar="CODE^SCHEME[^DISPLAY]", help="eventCodeList"
    )
    submit.add_argument(
        "--inline", action="store_true", help="send documents inline (base64), not as MTOM parts"
    )
    submit.add_argument(
        "--no-hash", action="store_true", help="do not send hash and size (the repository computes them)"
    )
    submit.set_defaults(func=run_submit)

    query = sub.add_parser(
        "query", parents=[common], help="ITI-18: run a stored query on a Document Registry"
    )
    query.add_argument(
        "--registry", required=True, metavar="URL", help="Document Registry endpoint (or its ?wsdl)"
    )
    query.add_argument(
        "--patient", metavar="ID^^^&OID&ISO", help="patient ID (for the Find* and GetAll queries)"
    )
    query.add_argument(
        "--query", default="FindDocuments", choices=sorted(QUERY_NAMES), help="(FindDocuments)"
    )
    query.add_argument("--status", action="append", choices=sorted(_STATUSES), help="(approved; repeatable)")
    query.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a query parameter as sent, e.g. \"\\$XDSDocumentEntryClassCode=('REPORTS^^1.2.3')\"",
    )
    query.add_argument("--object-refs", action="store_true", help="returnType ObjectRef instead of LeafClass")
    query.add_argument("--json", action="store_true", help="print the result as JSON")
    query.set_defaults(func=run_query)

    retrieve = sub.add_parser(
        "retrieve", parents=[common], help="ITI-43: retrieve documents from a Document Repository"
    )
    retrieve.add_argument("--repository", required=True, metavar="URL", help="Document Repository endpoint")
    retrieve.add_argument(
        "--unique-id", action="append", required=True, metavar="UID", help="document uniqueId (repeatable)"
    )
    retrieve.add_argument(
        "--repository-id", help="repositoryUniqueId (default: repository_unique_id of --config)"
    )
    retrieve.add_argument("--home-community-id", help="homeCommunityId to send (optional in XDS.b)")
    retrieve.add_argument(
        "--out", type=Path, default=Path("."), metavar="DIR", help="folder for the documents (.)"
    )
    retrieve.set_defaults(func=run_retrieve)


# ---------------------------------------------------------------------------------------------


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(getattr(args, "config", None))


def _endpoint(url: str, operation: str) -> str:
    if url.lower().endswith("?wsdl"):
        from xds_hub.client.xds import endpoint_from_wsdl

        return endpoint_from_wsdl(url, operation)
    return url


def _progress(args: argparse.Namespace, total: int, desc: str) -> tuple[Callable[[int], None] | None, Any]:
    """A tqdm byte counter for transfers above 1 MB (none when --quiet)."""
    if args.quiet or total < 1024 * 1024:
        return None, None
    from tqdm import tqdm

    bar = tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=desc, file=sys.stderr)
    return bar.update, bar


def _print_errors(result: Any) -> None:
    for e in result.errors:
        kind = "error" if e.is_error else "warning"
        where = f" [{e.location}]" if e.location else ""
        print(f"xds-hub: {kind}: {e.code}{where}: {e.context}", file=sys.stderr)


def _guarded(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    def wrapper(args: argparse.Namespace) -> int:
        from xds_hub.client.soap import XdsClientError

        try:
            return run(args)
        except XdsClientError as exc:
            print(f"xds-hub: {exc}", file=sys.stderr)
            return EXIT_TRANSPORT
        except ValueError as exc:
            print(f"xds-hub: {exc}", file=sys.stderr)
            return EXIT_USAGE
        except OSError as exc:
            print(f"xds-hub: {exc}", file=sys.stderr)
            return EXIT_USAGE

    return wrapper


# ---------------------------------------------------------------------------------------------
# submit
# ---------------------------------------------------------------------------------------------


def _code_set(args: argparse.Namespace) -> Any:
    from dataclasses import replace

    from xds_hub.client.metadata import CodeSet, parse_code

    codes = CodeSet()
    for attr, field_name in (
        ("class_code", "class_code"),
        ("type_code", "type_code"),
        ("format_code", "format_code"),
        ("facility_code", "healthcare_facility_type_code"),
        ("practice_code", "practice_setting_code"),
        ("content_type_code", "content_type_code"),
    ):
        value = getattr(args, attr)
        if value:
            changes: dict[str, Any] = {field_name: parse_code(value)}
            codes = replace(codes, **changes)
    if args.confidentiality_code:
        codes = replace(codes, confidentiality_codes=tuple(parse_code(c) for c in args.confidentiality_code))
    if args.event_code:
        codes = replace(codes, event_codes=tuple(parse_code(c) for c in args.event_code))
    return codes


def _submit_ready(args: argparse.Namespace) -> tuple[etree._Element, list[Any]]:
    """A ready metadata file: wrap/complete it and attach the FILEs to its ExtrinsicObjects."""
    import uuid

    from xds_hub.client.mtom import OutgoingPart

    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True)
    root = etree.parse(str(args.metadata), parser).getroot()
    if root.tag == ns.qn(ns.LCM, "SubmitObjectsRequest"):
        request = etree.Element(
            ns.qn(ns.XDSB, "ProvideAndRegisterDocumentSetRequest"), nsmap={"xdsb": ns.XDSB}
        )
        request.append(root)
    elif root.tag == ns.qn(ns.XDSB, "ProvideAndRegisterDocumentSetRequest"):
        request = root
    else:
        raise ValueError(
            f"{args.metadata}: expected lcm:SubmitObjectsRequest or ProvideAndRegisterDocumentSetRequest"
        )
    entries = list(request.iter(ns.qn(ns.RIM, "ExtrinsicObject")))
    if args.files and len(args.files) != len(entries):
        raise ValueError(
            f"{args.metadata} has {len(entries)} ExtrinsicObjects but {len(args.files)} FILEs were given"
        )
    parts: list[Any] = []
    for entry, path in zip(entries, args.files, strict=False):
        doc = etree.SubElement(request, ns.qn(ns.XDSB, "Document"), id=entry.get("id", ""))
        if args.inline:
            import base64

            doc.text = base64.b64encode(path.read_bytes()).decode("ascii")
        else:
            cid = f"doc{len(parts)}.{uuid.uuid4().hex}@xds-hub-client"
            etree.SubElement(doc, ns.qn(ns.XOP, "Include"), href=f"cid:{cid}", nsmap={"xop": ns.XOP})
            parts.append(OutgoingPart(cid, entry.get("mimeType", "application/octet-stream"), path=path))
    return request, parts


@_guarded
def run_submit(args: argparse.Namespace) -> int:
    from xds_hub.client.metadata import DocumentInput, SubmissionOptions, build_submission
    from xds_hub.client.xds import XdsClient

    for path in args.files:
        if not path.is_file():
            raise ValueError(f"{path}: no such file")
    url = _endpoint(args.to, "DocumentRepository_ProvideAndRegisterDocumentSet-b")
    total = sum(p.stat().st_size for p in args.files)
    update, bar = _progress(args, total, "upload")
    with XdsClient(repository_url=url, timeout=args.timeout, verify=not args.insecure) as client:
        try:
            if args.metadata:
                body, parts = _submit_ready(args)
                result = client.provide_and_register_element(
                    body, parts, mtom=not args.inline, on_upload=update
                )
                unique_ids = [
                    e.get("value", "")
                    for e in body.iter(ns.qn(ns.RIM, "ExternalIdentifier"))
                    if e.get("identificationScheme") == "urn:uuid:2e82c1f6-a085-4c72-9da3-8640a32e42ab"
                ]
            else:
                if not args.patient or not args.files:
                    raise ValueError("give --patient and at least one FILE (or --metadata)")
                settings = _settings(args)
                source_id = args.source_id or next(
                    (s for e in settings.domain.establishments for s in e.source_ids), None
                )
                if not source_id:
                    raise ValueError("give --source-id (the --config names no establishment source_ids)")
                options = SubmissionOptions(
                    patient_id=args.patient,
                    source_id=source_id,
                    source_patient_id=args.source_patient_id,
                    codes=_code_set(args),
                    include_hash=not args.no_hash,
                )
                docs = [DocumentInput(p, mime_type=args.mime_type, title=args.title) for p in args.files]
                submission, contents = build_submission(docs, options)
                result = client.provide_and_register(
                    submission,
                    {k: v.content for k, v in contents.items()},
                    mtom=not args.inline,
                    on_upload=update,
                )
                unique_ids = [d.unique_id for d in submission.documents]
        finally:
            if bar is not None:
                bar.close()
    _print_errors(result)
    if not result.ok:
        print(f"xds-hub: submission failed ({result.status_name})", file=sys.stderr)
        return EXIT_FAILED
    for path, uid in zip(args.files, unique_ids, strict=False):
        print(f"{uid}\t{path}")
    print(f"submitted {len(unique_ids)} document(s): {result.status_name}", file=sys.stderr)
    return EXIT_OK


# ---------------------------------------------------------------------------------------------
# query
# ---------------------------------------------------------------------------------------------


def _query_params(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, list[str]]]:
    _, patient_param = QUERY_NAMES[args.query]
    params: dict[str, Any] = {}
    if patient_param:
        if not args.patient:
            raise ValueError(f"--query {args.query} needs --patient")
        params[patient_param] = args.patient
    statuses = [_STATUSES[s].value for s in (args.status or ["approved"])]
    for name in _STATUS_PARAMS.get(args.query, ()):
        params[name] = statuses
    raw: dict[str, list[str]] = {}
    for item in args.param:
        name, sep, value = item.partition("=")
        if not sep or not name.startswith("$"):
            raise ValueError(f"--param must be $NAME=VALUE, not {item!r}")
        params.pop(name, None)
        raw.setdefault(name, []).append(value)
    return params, raw


def _doc_row(d: Any) -> dict[str, Any]:
    return {
        "uniqueId": d.unique_id,
        "repositoryUniqueId": d.repository_unique_id,
        "homeCommunityId": d.home_community_id,
        "mimeType": d.mime_type,
        "size": d.size,
        "hash": d.hash,
        "creationTime": d.creation_time,
        "title": d.title,
        "classCode": d.class_code.code if d.class_code else None,
        "status": str(d.status).rsplit(":", 1)[-1],
        "entryUUID": d.entry_uuid,
    }


@_guarded
def run_query(args: argparse.Namespace) -> int:
    from xds_hub.client.xds import XdsClient
    from xds_hub.domain.metadata import DocumentEntry

    query_id, _ = QUERY_NAMES[args.query]
    params, raw = _query_params(args)
    url = _endpoint(args.registry, "DocumentRegistry_RegistryStoredQuery")
    with XdsClient(registry_url=url, timeout=args.timeout, verify=not args.insecure) as client:
        result = client.query(
            query_id, params, raw_params=raw, return_type="ObjectRef" if args.object_refs else "LeafClass"
        )
    _print_errors(result)
    if args.json:
        out = {
            "status": result.status_name,
            "errors": [asdict(e) for e in result.errors],
            "objects": [{"type": type(o).__name__, **asdict(o)} for o in result.objects],
        }
        json.dump(out, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    else:
        docs = [o for o in result.objects if isinstance(o, DocumentEntry)]
        others = len(result.objects) - len(docs)
        _print_table([_doc_row(d) for d in docs])
        print(f"{len(docs)} document(s), {others} other object(s): {result.status_name}", file=sys.stderr)
    return EXIT_OK if result.status_name == "Success" else EXIT_FAILED


def _print_table(rows: Sequence[dict[str, Any]]) -> None:
    columns = ["uniqueId", "mimeType", "size", "creationTime", "title", "repositoryUniqueId"]
    if not rows:
        return
    cells = [[("" if r[c] is None else str(r[c])) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


# ---------------------------------------------------------------------------------------------
# retrieve
# ---------------------------------------------------------------------------------------------


@_guarded
def run_retrieve(args: argparse.Namespace) -> int:
    from xds_hub.client.xds import DocumentRequest, XdsClient

    repo_id = args.repository_id or _settings(args).domain.repository_unique_id
    url = _endpoint(args.repository, "DocumentRepository_RetrieveDocumentSet")
    requests_ = [DocumentRequest(repo_id, uid, args.home_community_id) for uid in args.unique_id]
    bar = None
    update = None
    if not args.quiet:
        from tqdm import tqdm

        bar = tqdm(unit="B", unit_scale=True, unit_divisor=1024, desc="download", file=sys.stderr, delay=1.0)
        update = bar.update
    try:
        with XdsClient(repository_url=url, timeout=args.timeout, verify=not args.insecure) as client:
            result = client.retrieve(requests_, args.out, on_download=update)
    finally:
        if bar is not None:
            bar.close()
    _print_errors(result)
    for doc in result.documents:
        print(f"{doc.path}\t{doc.mime_type}\t{doc.size}\t{doc.sha1}\t{doc.unique_id}")
    print(
        f"retrieved {len(result.documents)} of {len(requests_)} document(s): {result.status_name}",
        file=sys.stderr,
    )
    return EXIT_OK if result.ok else EXIT_FAILED
