"""oru2xds (an independent ITI-41 MTOM Document Source, PyPI ``oru2xds`` 2.0.25) against the hub.

oru2xds turns an HL7 v2 ORU^R01 into a CDA document and provides it with ITI-41 (MTOM/XOP);
it insists on an MTOM reply with exactly one part, the response wsa:Action and a wsa:RelatesTo
equal to its MessageID.  Set it up once in its own venv (see ../shared/BENCHMARKING.md)::

    python3 -m venv /tmp/oruvenv
    /tmp/oruvenv/bin/pip install --no-deps oru2xds==2.0.25
    /tmp/oruvenv/bin/pip install lxml hl7==0.4.5 requests requests-toolbelt

then ``python -m bench.iti41_oru2xds [--venv /tmp/oruvenv] [--count 200]``.  The driver calls
oru2xds's own ``IheXds.convert_to_ITI41`` on its bundled sample ORU (patient moved into the test
affinity domain), so the MLLP listener (and its aiorun / sympy / striprtf imports, stubbed) is not involved.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.hubproc import Hub, db_url_for  # noqa: E402

AFFINITY = "1.3.6.1.4.1.21367.13.20.1000"
PATIENT = f"IHEBLUE-2709^^^&{AFFINITY}&ISO"

DRIVER = textwrap.dedent(
    """
    import logging, sys, time, types
    from pathlib import Path
    import oru2xds
    pkg = Path(oru2xds.__file__).parent
    sys.path.insert(0, str(pkg))
    sys.modules["sympy"] = types.SimpleNamespace(false=False)      # only `false` is imported
    sys.modules["aiorun"] = types.SimpleNamespace(run=None)
    striprtf = types.ModuleType("striprtf.striprtf")
    striprtf.rtf_to_text = lambda text: text  # RTF notes only; the sample has none
    sys.modules["striprtf"] = types.SimpleNamespace(striprtf=striprtf)
    sys.modules["striprtf.striprtf"] = striprtf
    import config, hl7
    config.SERVICE_URL = sys.argv[1]
    config.AFFINITY_DOMAIN_ASSIGNING_AUTHORITY_OID = sys.argv[3]
    config.LOG_DIR_PATH = sys.argv[4]
    config.LOG_CDA_TOFILE = config.LOG_XDS_REQUEST_TOFILE = False
    config.LOG_SOAP_ENVELOPE_TOFILE = config.LOG_SOAP_RESPONSE_TOFILE = False
    logging.basicConfig(level=logging.ERROR)
    import hl7_v2x_receiver  # noqa: F401  (imports ihe_xds in the order its circular imports need)
    from ihe_xds import IheXds
    text = (pkg / "examples" / "sample3-ORU-R01.hl7").read_text()
    text = text.replace("1.3.6.1.4.1.21367.13.20.3000", sys.argv[3])
    text = text.replace("\\r\\n", "\\r").replace("\\n", "\\r")
    count = int(sys.argv[2])
    ok = failed = 0
    start = time.perf_counter()
    for i in range(count):
        msg = hl7.parse(text.replace("MSG00001", f"MSG{i:05d}"))
        try:
            IheXds().convert_to_ITI41(msg)
            ok += 1
        except Exception as exc:
            failed += 1
            if failed <= 3:
                print("oru2xds failure:", repr(exc)[:500], flush=True)
    elapsed = time.perf_counter() - start
    print(f"oru2xds: {ok} accepted, {failed} failed, {count / elapsed:.1f} submissions/s (sequential)")
    """
)


def main() -> int:
    parser = argparse.ArgumentParser(description="oru2xds -> xds-hub ITI-41")
    parser.add_argument("--venv", type=Path, default=Path("/tmp/oruvenv"))
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-oru2xds-"))
    hub = Hub(folder=folder, db_url=db_url_for(args.backend, folder)).start()
    try:
        hub.add_patient(PATIENT)
        driver = folder / "driver.py"
        driver.write_text(DRIVER)
        (folder / "logs").mkdir()
        out = subprocess.run(
            [
                str(args.venv / "bin" / "python"),
                str(driver),
                hub.url("/xds/repository"),
                str(args.count),
                AFFINITY,
                str(folder / "logs"),
            ],
            capture_output=True,
            text=True,
            timeout=1800,
        )
        print(out.stdout + out.stderr[-3000:])
        return out.returncode
    finally:
        hub.stop()


if __name__ == "__main__":
    raise SystemExit(main())
