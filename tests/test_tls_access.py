"""Access rules per authenticated node (ITI-19 identities): submissions, AE titles, feeds, admin
transactions; and the TLS identity settings of the config ([security], tls_subjects, [audit])."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

import pytest

from tests.metadata_samples import good_submission, with_document, with_folder, with_submission_set
from xds_hub.config import DEMO_DOMAIN, load_settings, render_toml
from xds_hub.domain.metadata import Submission
from xds_hub.errors import ConfigError, ErrorCode, FaultCode, FaultSubcode, SoapFault, XdsError
from xds_hub.security.access import (
    AccessDenied,
    NodeIdentity,
    check_ae,
    check_feed_authority,
    check_submission,
    require_admin,
)
from xds_hub.security.tls import check_tls_settings, identity_for_names, subject_matches

DOMAIN = DEMO_DOMAIN
HOPA, HOPB, CLIC = DOMAIN.establishments
AD = DOMAIN.assigning_authority
HOPA_ID = NodeIdentity("CN=Hopital A,O=Region", ("URI:urn:oid:1.2.3.100",), HOPA)
HOPB_ID = NodeIdentity("CN=Hopital B,O=Region", (), HOPB)
ADMIN = NodeIdentity("CN=Admin,OU=Administration,O=Region", (), None, admin=True)
STRANGER = NodeIdentity("CN=Somebody,O=Region")  # a certificate of the CA that the domain does not name


def _hopa_submission() -> Submission:
    sub = good_submission()
    return with_document(sub, source_patient_id="L1^^^&1.2.3.100&ISO")


def _codes(exc: XdsError) -> list[ErrorCode]:
    return [p.code for p in exc.problems]


def test_iti41_member_submits_under_its_own_source_id() -> None:
    check_submission(HOPA_ID, _hopa_submission(), DOMAIN)


def test_iti41_without_tls_identity_every_check_passes() -> None:
    sub = with_submission_set(_hopa_submission(), source_id="9.9.9")
    check_submission(None, sub, DOMAIN)
    check_ae(None, "HOPB_MR", DOMAIN)
    check_feed_authority(None, "9.9.9", DOMAIN)
    require_admin(None)


def test_iti41_rejects_foreign_source_id_with_registry_metadata_error() -> None:
    with pytest.raises(XdsError) as exc:
        check_submission(HOPB_ID, _hopa_submission(), DOMAIN)
    # Hopital B uses Hopital A's sourceId and a sourcePatientId of Hopital A's domain.
    assert _codes(exc.value) == [ErrorCode.REGISTRY_METADATA_ERROR, ErrorCode.REGISTRY_METADATA_ERROR]
    assert exc.value.problems[0].location == "SubmissionSet01"
    assert "1.2.3.100.1" in exc.value.problems[0].context


def test_iti41_rejects_patient_outside_affinity_domain() -> None:
    foreign = "X1^^^&1.2.3.100&ISO"
    sub = with_folder(
        with_document(with_submission_set(_hopa_submission(), patient_id=foreign), patient_id=foreign),
        patient_id=foreign,
    )
    with pytest.raises(XdsError) as exc:
        check_submission(HOPA_ID, sub, DOMAIN)
    assert _codes(exc.value) == [ErrorCode.UNKNOWN_PATIENT_ID] * 3
    assert [p.location for p in exc.value.problems] == ["SubmissionSet01", "Document01", "Folder01"]


def test_iti41_rejects_source_patient_id_of_another_establishment() -> None:
    sub = with_document(_hopa_submission(), source_patient_id="L1^^^&1.2.3.200&ISO")
    with pytest.raises(XdsError) as exc:
        check_submission(HOPA_ID, sub, DOMAIN)
    assert _codes(exc.value) == [ErrorCode.REGISTRY_METADATA_ERROR]
    assert exc.value.problems[0].location == "Document01"
    # the affinity-domain ID itself is accepted as sourcePatientId
    check_submission(HOPA_ID, with_document(sub, source_patient_id=f"P1^^^&{AD}&ISO"), DOMAIN)


def test_iti42_node_without_establishment_may_not_submit() -> None:
    for identity in (STRANGER, ADMIN):
        with pytest.raises(XdsError) as exc:
            check_submission(identity, _hopa_submission(), DOMAIN)
        assert _codes(exc.value) == [ErrorCode.REGISTRY_METADATA_ERROR]


def test_dicom_calling_ae_must_belong_to_the_calling_establishment() -> None:
    check_ae(HOPA_ID, "HOPA_CT", DOMAIN)
    check_ae(HOPA_ID, "HOPA_PACS ", DOMAIN)  # AE titles are space padded
    with pytest.raises(AccessDenied, match="belongs to 'Hopital B'"):
        check_ae(HOPA_ID, "HOPB_MR", DOMAIN)
    with pytest.raises(AccessDenied):
        check_ae(ADMIN, "HOPA_CT", DOMAIN)
    # an AE title no establishment owns is left to the listener's policy
    check_ae(STRANGER, "VIEWER", DOMAIN)


def test_iti8_feed_only_for_own_assigning_authority() -> None:
    check_feed_authority(HOPA_ID, "1.2.3.100", DOMAIN)
    check_feed_authority(HOPA_ID, DOMAIN.linking_authorities[0], DOMAIN)  # a linking (national) ID
    check_feed_authority(ADMIN, AD, DOMAIN)
    with pytest.raises(AccessDenied, match=r"1\.2\.3\.200"):
        check_feed_authority(HOPA_ID, "1.2.3.200", DOMAIN)
    with pytest.raises(AccessDenied):
        check_feed_authority(HOPA_ID, AD, DOMAIN)
    with pytest.raises(AccessDenied):
        check_feed_authority(STRANGER, "1.2.3.100", DOMAIN)


def test_iti57_iti62_iti86_require_admin_soap_fault() -> None:
    require_admin(ADMIN)
    with pytest.raises(SoapFault) as exc:
        require_admin(HOPA_ID)
    assert exc.value.code is FaultCode.SENDER
    assert exc.value.subcode is FaultSubcode.FAILED_AUTHENTICATION
    assert exc.value.http_status == 400


# ---------------------------------------------------------------------------------------------
# Certificate names -> identity
# ---------------------------------------------------------------------------------------------


def test_tls_subject_matching_by_dn_and_alt_names() -> None:
    subject = "CN=Hopital A,OU=Radiologie,O=Region Sud"
    assert subject_matches("cn=hopital a, ou=Radiologie,  O=Region  Sud", subject, ())
    assert not subject_matches("CN=Hopital A,O=Region Sud", subject, ())  # every RDN counts
    alt = ("URI:urn:oid:1.2.3.100", "DNS:PACS.hopital-a.example", "IP:10.0.0.5")
    assert subject_matches("URI:urn:oid:1.2.3.100", subject, alt)
    assert not subject_matches("URI:urn:oid:1.2.3.1000", subject, alt)
    assert subject_matches("DNS:pacs.hopital-a.example", subject, alt)
    assert subject_matches("IP:10.0.0.05".replace("05", "5"), subject, alt)
    assert not subject_matches("DNS:other.example", subject, alt)


def test_tls_identity_from_domain_subjects() -> None:
    domain = dataclasses.replace(
        DOMAIN,
        establishments=(
            dataclasses.replace(HOPA, tls_subjects=("URI:urn:oid:1.2.3.100",)),
            dataclasses.replace(HOPB, tls_subjects=("CN=Hopital B,O=Region",)),
            CLIC,
        ),
        admin_subjects=("CN=Admin,O=Region", "URI:urn:oid:1.2.3.100"),
    )
    a = identity_for_names("CN=whatever", ("URI:urn:oid:1.2.3.100",), domain)
    assert a.establishment == domain.establishments[0] and a.admin and a.label == "Hopital A (admin)"
    b = identity_for_names("CN=Hopital B,O=Region", (), domain)
    assert b.establishment == domain.establishments[1] and not b.admin
    nobody = identity_for_names("CN=Clinique C,O=Region", (), domain)
    assert nobody.establishment is None and not nobody.admin and nobody.label == "CN=Clinique C,O=Region"


def test_tls_config_keys_parse_render_and_validate(tmp_path: Path) -> None:
    config = tmp_path / "hub.toml"
    config.write_text(
        """
[hub]
tls_cert = "/x/hub.pem"
tls_key = "/x/hub-key.pem"

[security]
admin_subjects = ["CN=Admin,O=Region"]

[audit]
repository = "tls://arr.example:6514"
source_id = "REGION-HUB"

[affinity_domain]
assigning_authority = "1.3.6.1.4.1.21367.13.20.1000"

[[establishment]]
name = "Hopital A"
assigning_authority = "1.2.3.100"
tls_subjects = ["URI:urn:oid:1.2.3.100", "CN=Hopital A,O=Region"]
""",
        encoding="utf-8",
    )
    settings = load_settings(config)
    assert settings.tls_cert == "/x/hub.pem" and settings.tls_ca == ""
    assert settings.audit_repository == "tls://arr.example:6514"
    assert settings.audit_source_id == "REGION-HUB"
    assert settings.domain.admin_subjects == ("CN=Admin,O=Region",)
    assert settings.domain.establishments[0].tls_subjects == (
        "URI:urn:oid:1.2.3.100",
        "CN=Hopital A,O=Region",
    )
    doc = tomllib.loads(render_toml(settings))
    assert doc["hub"]["tls_cert"] == "/x/hub.pem"
    assert doc["audit"] == {"repository": "tls://arr.example:6514", "source_id": "REGION-HUB"}
    assert doc["security"] == {"admin_subjects": ["CN=Admin,O=Region"]}
    assert doc["establishment"][0]["tls_subjects"] == ["URI:urn:oid:1.2.3.100", "CN=Hopital A,O=Region"]
    again = tmp_path / "again.toml"
    again.write_text(render_toml(settings), encoding="utf-8")
    assert load_settings(again).domain == settings.domain
    # the certificate files do not exist: a configuration error, said before any listener starts
    with pytest.raises(ConfigError, match="cannot load TLS certificate"):
        check_tls_settings(settings)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"tls_cert": "/x.pem"}, "tls_cert and tls_key go together"),
        ({"tls_ca": "/ca.pem"}, "needs tls_cert"),
    ],
)
def test_tls_incomplete_settings_are_config_errors(overrides: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        check_tls_settings(load_settings(None, **overrides))


def test_tls_bad_subject_pattern_is_config_error(tmp_path: Path) -> None:
    config = tmp_path / "hub.toml"
    config.write_text('[security]\nadmin_subjects = ["IP:not-an-ip"]\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="not an IP address"):
        check_tls_settings(load_settings(config))
    config.write_text('[audit]\nrepositry = "udp://x"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="unknown \\[audit\\] keys"):
        load_settings(config)
