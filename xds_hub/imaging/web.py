"""HTTP access to the stored images: WADO-URI at ``/wado`` (DICOM PS3.18 9, IHE RAD-55) and DICOMweb
at ``/dicomweb``: WADO-RS retrieve of studies, series, instances, metadata, rendered images and
frames (PS3.18 8, 10.4) and QIDO-RS search of studies, series and instances (PS3.18 10.6).

Errors are JSON ``{"error": ...}`` with the status PS3.18 gives (400 bad parameters, 404 nothing
found, 406 a media type or transfer syntax the hub cannot produce).  DICOM bodies stream from the
blob store; memory stays flat whatever the size of the study.

Every WADO-URI (RAD-55) and WADO-RS (RAD-107) access to instances is audited (ITI-20, DICOM
Instances Transferred, :mod:`.audit`), and every QIDO-RS search (Query, with its query string): the
requestor is the HTTP client, named by its TLS certificate's establishment when mutual TLS is on.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Response, jsonify, request
from pydicom.dataelem import DataElement

from xds_hub.audit import events
from xds_hub.audit.model import Outcome
from xds_hub.domain.vocabulary import SoapAction
from xds_hub.errors import ParseError
from xds_hub.imaging import audit, files
from xds_hub.imaging.dicomweb import (
    DEFAULT_TRANSFER_SYNTAX,
    accepts,
    instance_parts,
    instance_url,
    multipart_content_type,
    new_boundary,
    parse_accept,
    qido_object,
    stream_parts,
)
from xds_hub.imaging.query import KEYS, KEYS_BY_TAG, Level, Query, StoredInstance, instances, search
from xds_hub.imaging.render import RENDERED_TYPES, RenderError, RenderOptions, frame_bytes, render_frame
from xds_hub.log import get_logger
from xds_hub.security.tls import identity_from_environ
from xds_hub.soap.routes import handler_for

if TYPE_CHECKING:
    from xds_hub.config import Settings
    from xds_hub.storage.stores import Stores

log = get_logger("xds_hub.imaging.web")

#: The SOP class a QIDO-RS search is audited under (Study Root Query/Retrieve - FIND, PS3.15 A.5.3.12).
QIDO_SOP_CLASS = "1.2.840.10008.5.1.4.1.2.2.1"
#: QIDO-RS results per request unless ``limit`` says otherwise.
QIDO_DEFAULT_LIMIT = 1000
_BULK_THRESHOLD = 4096


class WebError(Exception):
    """An error answered with ``status`` and a JSON body."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _base_url() -> str:
    return request.host_url.rstrip("/") + "/dicomweb"


class ImagingWeb:
    """The views; one per application, over the hub's stores."""

    def __init__(self, settings: Settings, stores: Stores) -> None:
        self.settings = settings
        self.stores = stores

    # --------------------------------------------------------------------------------- audit

    def _audit(self, transaction: str, found: list[StoredInstance], not_sent: int = 0) -> None:
        """Queue the Instances Transferred message of this request (RAD-55 / RAD-107)."""
        identity = identity_from_environ(request.environ, self.settings.domain)
        requestor = events.peer(None, request.remote_addr, identity)
        hub = events.hub_http(self.settings, request.path)
        outcome, why = Outcome.SUCCESS, None
        if not_sent:
            outcome, why = Outcome.MINOR_FAILURE, f"{not_sent} instance(s) not provided in the asked syntax"
        audit.exported(self.settings, self.stores, requestor, hub, transaction, found, outcome, why)

    def _audit_query(self, match: dict[str, str]) -> None:
        """Queue the Query message of a QIDO-RS search (PS3.15 A.5.3.12: the query string)."""
        identity = identity_from_environ(request.environ, self.settings.domain)
        requestor = events.peer(None, request.remote_addr, identity)
        pid = match.get("PatientID", "").strip()
        patient = (pid, match.get("IssuerOfPatientID") or None) if pid and not set(pid) & set("*?") else None
        est = identity.establishment.name if identity is not None and identity.establishment else ""
        audit.queried(
            self.settings,
            self.stores,
            requestor,
            QIDO_SOP_CLASS,
            request.query_string or b"",
            "",
            patient,
            Outcome.SUCCESS,
            None,
            events.hub_http(self.settings, request.path),
            est,
        )

    # --------------------------------------------------------------------------------- lookup

    def _instances(
        self, study: str, series: str | None = None, sop: str | None = None
    ) -> list[StoredInstance]:
        with self.stores.engine.connect() as conn:
            found = instances(
                conn,
                study_uids=[study],
                series_uids=[series] if series else [],
                sop_uids=[sop] if sop else [],
            )
        if not found:
            raise WebError(404, "no stored instance matches the request")
        return found

    def _in_syntax(self, found: list[StoredInstance], wanted: str) -> tuple[list[StoredInstance], list[str]]:
        """Each instance in ``wanted`` ("*": as stored); the ones that cannot be, by UID."""
        ready: list[StoredInstance] = []
        failed: list[str] = []
        for inst in found:
            target = files.choose_syntax(inst.transfer_syntax, [wanted])
            try:
                if target is None:
                    raise files.TranscodeError(f"the hub cannot encode instances in {wanted}")
                ready.append(files.derived(self.stores, inst, target))
            except files.TranscodeError as exc:
                log.info("WADO transcoding refused", extra={"sop": inst.sop_instance_uid, "why": str(exc)})
                failed.append(inst.sop_instance_uid)
        return ready, failed

    # --------------------------------------------------------------------------------- WADO-RS

    def retrieve(self, study: str, series: str | None = None, sop: str | None = None) -> Response:
        """WADO-RS Retrieve Study / Series / Instance (PS3.18 10.4): multipart/related application/dicom."""
        ranges = parse_accept(request.headers.get("Accept"))
        chosen = accepts(ranges, "application/dicom")
        if chosen is None:
            raise WebError(406, 'only multipart/related; type="application/dicom" is produced here')
        wanted = chosen.transfer_syntax or DEFAULT_TRANSFER_SYNTAX
        ready, failed = self._in_syntax(self._instances(study, series, sop), wanted)
        if not ready:
            raise WebError(406, f"the instances cannot be provided in transfer syntax {wanted}")
        self._audit("RAD-107", ready, len(failed))
        if sop and not chosen.is_multipart and chosen.media_type == "application/dicom":
            inst = ready[0]
            return Response(
                files_stream(self.stores, inst.blob_key),
                content_type=f"application/dicom; transfer-syntax={inst.transfer_syntax}",
                headers={"Content-Length": str(inst.size)},
            )
        boundary = new_boundary()
        syntax = wanted if wanted != "*" else None
        response = Response(
            stream_parts(instance_parts(self.stores, ready, _base_url()), boundary),
            content_type=multipart_content_type("application/dicom", boundary, syntax),
        )
        if failed:
            response.headers["Warning"] = (
                f'299 XDSHUB "{len(failed)} instance(s) could not be provided in transfer syntax {wanted}"'
            )
        return response

    def metadata(self, study: str, series: str | None = None, sop: str | None = None) -> Response:
        """WADO-RS Retrieve Metadata (PS3.18 10.4.1.1.2): application/dicom+json, bulk data by URI."""
        found = self._instances(study, series, sop)
        base = _base_url()
        self._audit("RAD-107", found)

        def body() -> Iterator[bytes]:
            yield b"["
            for n, inst in enumerate(found):
                yield (b"," if n else b"") + json.dumps(self._metadata_of(inst, base)).encode("utf-8")
            yield b"]"

        return Response(body(), content_type="application/dicom+json")

    def _metadata_of(self, inst: StoredInstance, base: str) -> dict[str, Any]:
        ds = files.read_instance(self.stores, inst, stop_before_pixels=True)
        url = instance_url(base, inst)

        def bulk(elem: DataElement) -> str:
            return f"{url}/bulkdata/{int(elem.tag):08X}"

        obj: dict[str, Any] = ds.to_json_dict(_BULK_THRESHOLD, bulk)
        if inst.number_of_frames is not None or _has_pixels(self.stores, inst):
            obj["7FE00010"] = {"vr": "OW", "BulkDataURI": f"{url}/bulkdata/7FE00010"}
        obj["00020010"] = {"vr": "UI", "Value": [inst.transfer_syntax]}
        obj["00081190"] = {"vr": "UR", "Value": [url]}
        return dict(sorted(obj.items()))

    def bulkdata(self, study: str, series: str, sop: str, tag: str) -> Response:
        """The value of one bulk data element (the BulkDataURI of the metadata), as octets."""
        inst = self._instances(study, series, sop)[0]
        try:
            number = int(tag, 16)
        except ValueError:
            raise WebError(400, f"{tag!r} is not a tag (8 hexadecimal digits)") from None
        ds = files.read_instance(self.stores, inst)
        if number not in ds:
            raise WebError(404, f"the instance has no element {tag}")
        value = ds[number].value
        data = value if isinstance(value, bytes) else str(value).encode("utf-8")
        self._audit("RAD-107", [inst])
        boundary = new_boundary()
        part = ({"Content-Type": "application/octet-stream", "Content-Length": str(len(data))}, [data])
        return Response(
            stream_parts([part], boundary),
            content_type=multipart_content_type("application/octet-stream", boundary),
        )

    def rendered(self, study: str, series: str, sop: str, frames: str | None = None) -> Response:
        """WADO-RS Retrieve Rendered Instance / Frames (PS3.18 10.4.1.1.3): JPEG (default), PNG or GIF."""
        ranges = parse_accept(request.args.get("accept") or request.headers.get("Accept"))
        media = next(
            (m for r in ranges for m in RENDERED_TYPES if r.media_type in (m, "*/*", "image/*")), None
        )
        if media is None:
            raise WebError(406, f"rendered media types produced: {', '.join(RENDERED_TYPES)}")
        if ranges and ranges[0].media_type in ("*/*", "image/*"):
            media = "image/jpeg"
        options = _render_options(media, request.args)
        numbers = _frame_numbers(frames) if frames else [1]
        inst = self._instances(study, series, sop)[0]
        ds = files.read_instance(self.stores, inst)
        try:
            data = render_frame(ds, numbers[0], options)
        except RenderError as exc:
            raise WebError(400 if "out of range" in str(exc) else 406, str(exc)) from None
        self._audit("RAD-107", [inst])
        return Response(data, content_type=media)

    def frames(self, study: str, series: str, sop: str, frames: str) -> Response:
        """WADO-RS Retrieve Frames (PS3.18 10.4.1.1.4): multipart/related, one part per frame."""
        numbers = _frame_numbers(frames)
        inst = self._instances(study, series, sop)[0]
        ranges = parse_accept(request.headers.get("Accept"))
        octets = accepts(ranges, "application/octet-stream")
        from xds_hub.imaging.render import FRAME_MEDIA_TYPES

        compressed_type = FRAME_MEDIA_TYPES.get(inst.transfer_syntax)
        keep = (
            compressed_type is not None
            and accepts(ranges, compressed_type) is not None
            and (octets is None or (ranges and ranges[0].part_type == compressed_type))
        )
        if octets is None and not keep:
            raise WebError(406, "frames are produced as application/octet-stream or their stored media type")
        ds = files.read_instance(self.stores, inst)
        parts = []
        for n in numbers:
            try:
                media, data = frame_bytes(ds, n, inst.transfer_syntax, keep_compressed=bool(keep))
            except RenderError as exc:
                raise WebError(400 if "out of range" in str(exc) else 406, str(exc)) from None
            if media != "application/octet-stream":
                media += f"; transfer-syntax={inst.transfer_syntax}"
            parts.append(({"Content-Type": media, "Content-Length": str(len(data))}, [data]))
        self._audit("RAD-107", [inst])
        boundary = new_boundary()
        part_type = compressed_type if keep and compressed_type else "application/octet-stream"
        return Response(
            stream_parts(parts, boundary), content_type=multipart_content_type(part_type, boundary)
        )

    # --------------------------------------------------------------------------------- QIDO-RS

    def search(self, level: Level, study: str | None = None, series: str | None = None) -> Response:
        """QIDO-RS Search for Studies / Series / Instances (PS3.18 10.6)."""
        match: dict[str, str] = {}
        extra: list[str] = []
        limit = QIDO_DEFAULT_LIMIT
        offset = 0
        for name, value in request.args.items(multi=True):
            if name == "limit":
                limit = _non_negative(name, value)
            elif name == "offset":
                offset = _non_negative(name, value)
            elif name == "includefield":
                extra.extend(f for f in value.split(",") if f in KEYS)
            elif name in ("fuzzymatching", "accept", "charset"):
                continue
            else:
                keyword = _keyword(name)
                if keyword is None:
                    raise WebError(400, f"{name!r} is not a query attribute the hub supports")
                match[keyword] = value
        if study:
            match["StudyInstanceUID"] = study
        if series:
            match["SeriesInstanceUID"] = series
        try:
            with self.stores.engine.connect() as conn:
                rows = list(search(conn, Query(level, match, limit=limit, offset=offset)))
        except ParseError as exc:
            raise WebError(400, str(exc)) from None
        self._audit_query(match)
        base = _base_url()
        body = [qido_object(level, row, base, [*extra, *match]) for row in rows]
        return Response(json.dumps(body), content_type="application/dicom+json")

    # --------------------------------------------------------------------------------- WADO-URI

    def wado_uri(self) -> Response:
        """WADO-URI (PS3.18 9, RAD-55): one object, as DICOM or rendered."""
        args = request.args
        if args.get("requestType") != "WADO":
            raise WebError(400, "requestType=WADO is required")
        missing = [p for p in ("studyUID", "seriesUID", "objectUID") if not args.get(p)]
        if missing:
            raise WebError(400, f"missing parameter(s): {', '.join(missing)}")
        if args.get("anonymize") == "yes":
            raise WebError(400, "anonymize=yes is not supported by this server")
        inst = self._instances(args["studyUID"], args["seriesUID"], args["objectUID"])[0]
        wanted = [c.strip().split(";")[0].lower() for c in args.get("contentType", "image/jpeg").split(",")]
        for content_type in wanted:
            if content_type == "application/dicom":
                syntax = args.get("transferSyntax") or DEFAULT_TRANSFER_SYNTAX
                ready, _ = self._in_syntax([inst], syntax)
                if not ready:
                    raise WebError(406, f"the object cannot be provided in transfer syntax {syntax}")
                self._audit("RAD-55", [inst])
                return Response(
                    files_stream(self.stores, ready[0].blob_key),
                    content_type="application/dicom",
                    headers={"Content-Length": str(ready[0].size)},
                )
            if content_type in RENDERED_TYPES or content_type == "*/*":
                media = content_type if content_type in RENDERED_TYPES else "image/jpeg"
                ds = files.read_instance(self.stores, inst)
                frame = _non_negative("frameNumber", args.get("frameNumber", "1")) or 1
                options = _render_options(media, args, uri=True)
                try:
                    rendered = render_frame(ds, frame, options)
                except RenderError as exc:
                    raise WebError(400 if "out of range" in str(exc) else 406, str(exc)) from None
                self._audit("RAD-55", [inst])
                return Response(rendered, content_type=media)
        raise WebError(406, f"contentType {args.get('contentType')!r} is not produced by this server")


def files_stream(stores: Stores, key: str) -> Iterator[bytes]:
    from xds_hub.imaging.dicomweb import blob_chunks

    return blob_chunks(stores, key)


def _has_pixels(stores: Stores, inst: StoredInstance) -> bool:
    return inst.sop_class_uid.startswith("1.2.840.10008.5.1.4.1.1.") and not inst.sop_class_uid.startswith(
        ("1.2.840.10008.5.1.4.1.1.88.", "1.2.840.10008.5.1.4.1.1.481.")
    )


def _keyword(name: str) -> str | None:
    if name in KEYS:
        return name
    try:
        key = KEYS_BY_TAG.get(int(name, 16)) if len(name) == 8 else None
    except ValueError:
        return None
    return key.keyword if key else None


def _non_negative(name: str, value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise WebError(400, f"{name} must be a whole number") from None
    if number < 0:
        raise WebError(400, f"{name} must not be negative")
    return number


def _frame_numbers(text: str) -> list[int]:
    try:
        numbers = [int(n) for n in text.split(",") if n.strip()]
    except ValueError:
        raise WebError(400, f"{text!r} is not a list of frame numbers") from None
    if not numbers or any(n < 1 for n in numbers):
        raise WebError(400, "frame numbers start at 1")
    return numbers


def _render_options(media: str, args: Any, uri: bool = False) -> RenderOptions:
    window: tuple[float, float] | None = None
    viewport: tuple[int, int] | None = None
    try:
        if uri and args.get("windowCenter") and args.get("windowWidth"):
            window = (float(args["windowCenter"]), float(args["windowWidth"]))
        elif not uri and args.get("window"):
            center, width = args["window"].split(",")[:2]
            window = (float(center), float(width))
        if uri and (args.get("rows") or args.get("columns")):
            viewport = (int(args.get("columns") or args["rows"]), int(args.get("rows") or args["columns"]))
        elif not uri and args.get("viewport"):
            vw, vh = args["viewport"].split(",")[:2]
            viewport = (int(vw), int(vh))
        quality = int(args.get("imageQuality" if uri else "quality", 90))
    except (ValueError, TypeError):
        raise WebError(400, "window / viewport / quality parameters are not numbers") from None
    return RenderOptions(media_type=media, window=window, viewport=viewport, quality=quality)


def make_blueprint(settings: Settings, stores: Stores) -> Blueprint:
    """The ``/wado`` and ``/dicomweb`` routes over ``stores``.

    Also loads the RAD-69 handler of ``/xdsi/source`` now, while the worker starts: importing
    (and, without bytecode caches, compiling) it and its dependencies on the first request cost
    that request about 0.1 s.
    """
    handler_for("/xdsi/source", SoapAction.RAD69)
    web = ImagingWeb(settings, stores)
    bp = Blueprint("imaging", __name__)

    @bp.errorhandler(WebError)
    def _error(exc: WebError) -> tuple[Response, int]:
        return jsonify({"error": exc.message}), exc.status

    study = "/dicomweb/studies/<study>"
    series = study + "/series/<series>"
    instance = series + "/instances/<sop>"
    routes: list[tuple[str, Any]] = [
        ("/wado", web.wado_uri),
        ("/dicomweb/studies", lambda: web.search(Level.STUDY)),
        ("/dicomweb/series", lambda: web.search(Level.SERIES)),
        ("/dicomweb/instances", lambda: web.search(Level.IMAGE)),
        (study, web.retrieve),
        (study + "/metadata", web.metadata),
        (study + "/series", lambda study: web.search(Level.SERIES, study)),
        (study + "/instances", lambda study: web.search(Level.IMAGE, study)),
        (series, web.retrieve),
        (series + "/metadata", web.metadata),
        (series + "/instances", lambda study, series: web.search(Level.IMAGE, study, series)),
        (instance, web.retrieve),
        (instance + "/metadata", web.metadata),
        (instance + "/rendered", web.rendered),
        (instance + "/frames/<frames>", web.frames),
        (instance + "/frames/<frames>/rendered", web.rendered),
        (instance + "/bulkdata/<tag>", web.bulkdata),
    ]
    for n, (rule, view) in enumerate(routes):
        bp.add_url_rule(rule, f"r{n}", view, methods=["GET"])
    return bp
