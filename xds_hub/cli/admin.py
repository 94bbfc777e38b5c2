"""Operator verbs on the hub's store: `config show`, `patient add`."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from xds_hub.cli import add_store_options, settings_from
from xds_hub.config import render_toml
from xds_hub.errors import XdsError


def register(sub: Any) -> None:
    config = sub.add_parser("config", help="show the effective configuration")
    config_sub = config.add_subparsers(dest="config_command", metavar="VERB", required=True)
    show = config_sub.add_parser("show", help="print the effective configuration as TOML")
    add_store_options(show)
    show.set_defaults(func=config_show)

    patient = sub.add_parser("patient", help="affinity-domain patient identities")
    patient_sub = patient.add_subparsers(dest="patient_command", metavar="VERB", required=True)
    add = patient_sub.add_parser("add", help="register an affinity-domain patient ID (as a feed would)")
    add_store_options(add)
    add.add_argument("patient_id", metavar="ID^^^&OID&ISO")
    add.set_defaults(func=patient_add)


def config_show(args: argparse.Namespace) -> int:
    sys.stdout.write(render_toml(settings_from(args)))
    return 0


def patient_add(args: argparse.Namespace) -> int:
    from xds_hub.pix.xref import CrossReference
    from xds_hub.storage.db import write_transaction
    from xds_hub.storage.stores import open_stores

    settings = settings_from(args)
    stores = open_stores(settings)
    try:
        with write_transaction(stores.engine) as conn:
            created = CrossReference(settings.domain).add_affinity_patient(conn, args.patient_id)
    except XdsError as exc:
        for problem in exc.problems:
            print(f"xds-hub: {problem.code}: {problem.context}", file=sys.stderr)
        return 1
    finally:
        stores.close()
    print(f"{args.patient_id}: {'registered' if created else 'already known'}")
    return 0
