"""`xds-hub pix feed` / `xds-hub pix query` against a running hub (SQLite and PostgreSQL), and the
[pix] section of the configuration."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.hubproc import Hub, free_port
from tests.pix_support import AFFINITY, HOPA, HOPB, NATIONAL, ack_code, adt, cx, new_id, send
from xds_hub.config import PixSubscriber, load_settings, parse_domain, render_toml
from xds_hub.errors import ConfigError


def xds_hub(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "xds_hub", *args], capture_output=True, text=True, timeout=120
    )


def test_pix_cli_feed_and_query(hub: Hub, tmp_path: Path) -> None:
    national = cx(new_id("N"), NATIONAL)
    a, b = cx(new_id(), HOPA), cx(new_id(), HOPB)
    messages = tmp_path / "feed.hl7"
    messages.write_text(
        adt("A01", a, national, control="CLI-1").replace("\r", "\n")
        + adt("A01", b, national, control="CLI-2").replace("\r", "\n")
        + adt("A01", cx(new_id(), "2.999.1"), control="CLI-3"),
        encoding="utf-8",
    )
    fed = xds_hub("pix", "feed", str(messages), "--to", f"127.0.0.1:{hub.mllp_port}")
    assert fed.returncode == 1, fed.stderr
    assert fed.stdout.splitlines() == ["CLI-1\tAA", "CLI-2\tAA", "CLI-3\tAE"]
    assert "204" in fed.stderr

    v2 = xds_hub("pix", "query", a, "--to", f"127.0.0.1:{hub.mllp_port}")
    assert v2.returncode == 0, v2.stderr
    lines = set(v2.stdout.splitlines())
    assert b in lines and national in lines and len(lines) == 3

    v3 = xds_hub("pix", "query", b, "--to", hub.url("/pix"), "--domain", AFFINITY, "--json")
    assert v3.returncode == 0, v3.stderr
    answer = json.loads(v3.stdout)
    assert answer["status"] == "OK" and answer["ack"] == "AA"
    (regional,) = answer["identifiers"]
    assert regional in lines


def test_pix_cli_feed_failures(hub: Hub, tmp_path: Path) -> None:
    messages = tmp_path / "feed.hl7"
    messages.write_text(adt("A01", cx(new_id(), HOPA), control="CLI-9"), encoding="utf-8")
    closed = xds_hub("pix", "feed", str(messages), "--to", f"127.0.0.1:{free_port()}", "--no-progress")
    assert closed.returncode == 3 and closed.stdout == "" and "cannot feed" in closed.stderr
    empty = tmp_path / "empty.hl7"
    empty.write_text("\n", encoding="utf-8")
    assert xds_hub("pix", "feed", str(empty), "--to", f"127.0.0.1:{hub.mllp_port}").returncode == 2
    assert xds_hub("pix", "feed", str(messages), "--to", hub.url("/pix")).returncode == 2


def test_pix_cli_query_failures(hub: Hub) -> None:
    a = cx(new_id(), HOPA)
    unknown = xds_hub("pix", "query", a, "--to", f"127.0.0.1:{hub.mllp_port}")
    assert unknown.returncode == 1 and "204" in unknown.stderr
    assert xds_hub("pix", "query", "not-a-cx", "--to", f"127.0.0.1:{hub.mllp_port}").returncode == 2
    closed = xds_hub("pix", "query", a, "--to", f"127.0.0.1:{free_port()}")
    assert closed.returncode == 3


def test_pix_cli_query_nf(hub: Hub) -> None:
    a = cx(new_id(), HOPA)
    assert ack_code(send(hub.mllp_port, adt("A01", a))) == "AA"
    nf = xds_hub("pix", "query", a, "--to", f"127.0.0.1:{hub.mllp_port}", "--domain", HOPB)
    assert nf.returncode == 1 and nf.stdout == "" and "(NF)" in nf.stderr


def test_pix_config_section_round_trips(tmp_path: Path) -> None:
    config = tmp_path / "hub.toml"
    config.write_text(
        """
[pix]
allocation = "wait"
id_prefix = "REG"
namespaces = { HIMSS2005 = "1.3.6.1.4.1.21367.2005.1.1" }
sources = { "HOPA_ADT|HOPA" = "1.2.3.100" }

[[pix.subscriber]]
name = "Hopital B"
host = "10.0.0.2"
port = 3700
domains = ["1.2.3.200"]
application = "HOPB_PIX"
"""
    )
    settings = load_settings(config)
    pix = settings.domain.pix
    assert pix.allocation == "wait" and pix.id_prefix == "REG"
    assert pix.namespaces == {"HIMSS2005": "1.3.6.1.4.1.21367.2005.1.1"}
    assert pix.subscribers == (PixSubscriber("Hopital B", "10.0.0.2", 3700, ("1.2.3.200",), "HOPB_PIX", ""),)
    assert settings.domain.establishments  # the demo region's, since the file names none
    assert parse_domain(tomllib.loads(render_toml(settings))) == settings.domain
    shown = xds_hub("config", "show", "--config", str(config))
    assert shown.returncode == 0 and 'allocation = "wait"' in shown.stdout


@pytest.mark.parametrize(
    "section",
    [
        '[pix]\nallocation = "sometimes"\n',
        '[[pix.subscriber]]\nname = "x"\nhost = "h"\n',
        "[pix]\nnamespaces = { a = 1 }\n",
    ],
)
def test_pix_config_errors(tmp_path: Path, section: str) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(section)
    with pytest.raises(ConfigError):
        load_settings(config)
