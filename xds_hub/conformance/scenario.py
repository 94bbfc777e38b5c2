"""Conformance scenarios: one TOML file per test, a list of steps, loaded into frozen objects.

A scenario file (``conformance/scenarios/<actor>/<transaction>/<name>.toml``) reads::

    title = "Provide and Register one document"
    tf = "ITI TF-2 3.41.4.1.3"               # the Technical Framework section it checks
    description = "..."
    tags = ["positive"]
    requires = []                            # capabilities: "feed", "pix", "dicom", "imaging", ...
    patients = ["main"]                      # fresh affinity-domain patients fed before the steps

    [[steps]]
    name = "submit"
    transaction = "ITI-41"                   # see xds_hub.conformance.transactions.TRANSACTIONS
    [steps.submission]                       # the message, from a builder (submission, query, ...)
    documents = [{ id = "doc1", content = "hello" }]
    [steps.expect]                           # what must come back
    status = "Success"
    errors = []

Every string in a step may hold ``{{placeholders}}`` (:mod:`xds_hub.conformance.template`).  The
scenario id is the file's path below the catalogue root without ``.toml``.
"""

from __future__ import annotations

import fnmatch
import tomllib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

#: Step keys that are not the message description.
_STEP_META = frozenset(
    {
        "name",
        "transaction",
        "expect",
        "capture",
        "mutate",
        "description",
        "continue_on_failure",
        "delay",
        "retry",
    }
)
_SCENARIO_KEYS = frozenset({"title", "tf", "description", "tags", "requires", "patients", "steps", "skip"})


class ScenarioError(Exception):
    """A scenario file is malformed (not a failure of the target)."""


@dataclass(frozen=True, slots=True)
class Step:
    """One transaction of a scenario: the message to send and what must come back."""

    name: str
    transaction: str
    #: The message description: every key of the step table but the meta keys above.
    message: Mapping[str, Any]
    expect: Mapping[str, Any] = field(default_factory=dict)
    #: name -> XPath (SOAP answers) or HL7 field path (v2 answers); stored as steps.<step>.<name>.
    capture: Mapping[str, str] = field(default_factory=dict)
    #: Edits applied to the built XML before it is sent (remove / set), to break one thing.
    mutate: tuple[Mapping[str, Any], ...] = ()
    description: str = ""
    continue_on_failure: bool = False
    #: Seconds to wait before the step (e.g. for a study to be published).
    delay: float = 0.0
    #: Seconds during which a failing step is tried again (for what the target does in the background).
    retry: float = 0.0


@dataclass(frozen=True, slots=True)
class Scenario:
    id: str
    title: str
    steps: tuple[Step, ...]
    tf: str = ""
    description: str = ""
    tags: tuple[str, ...] = ()
    requires: tuple[str, ...] = ()
    patients: tuple[str, ...] = ("main",)
    #: Where the file lives (templates named by a step are read next to it).
    path: Path | None = None
    #: A reason to skip the scenario always (documented known limitation), or "".
    skip: str = ""

    @property
    def group(self) -> str:
        """The actor/transaction folder, e.g. ``repository/iti41``."""
        return self.id.rsplit("/", 1)[0] if "/" in self.id else ""

    @property
    def transactions(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(s.transaction for s in self.steps))


def _str_tuple(value: Any, what: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ScenarioError(f"{what} must be a list of strings")
    return tuple(value)


def _parse_step(raw: Any, index: int, transactions: Iterable[str]) -> Step:
    if not isinstance(raw, Mapping):
        raise ScenarioError(f"steps[{index}] must be a table")
    name = str(raw.get("name") or f"step{index + 1}")
    transaction = raw.get("transaction")
    if not isinstance(transaction, str) or transaction not in set(transactions):
        raise ScenarioError(f"step {name}: unknown transaction {transaction!r}")
    expect = raw.get("expect", {})
    capture = raw.get("capture", {})
    mutate = raw.get("mutate", [])
    if not isinstance(expect, Mapping) or not isinstance(capture, Mapping) or not isinstance(mutate, list):
        raise ScenarioError(f"step {name}: expect and capture must be tables, mutate a list of tables")
    return Step(
        name=name,
        transaction=transaction,
        message={k: v for k, v in raw.items() if k not in _STEP_META},
        expect=dict(expect),
        capture={str(k): str(v) for k, v in capture.items()},
        mutate=tuple(dict(m) for m in mutate),
        description=str(raw.get("description", "")),
        continue_on_failure=bool(raw.get("continue_on_failure", False)),
        delay=float(raw.get("delay", 0.0)),
        retry=float(raw.get("retry", 0.0)),
    )


def parse_scenario(doc: Mapping[str, Any], scenario_id: str, path: Path | None = None) -> Scenario:
    """The scenario described by a parsed TOML document."""
    from xds_hub.conformance.transactions import TRANSACTIONS

    unknown = set(doc) - _SCENARIO_KEYS
    if unknown:
        raise ScenarioError(f"{scenario_id}: unknown keys {', '.join(sorted(unknown))}")
    steps_raw = doc.get("steps")
    if not isinstance(steps_raw, list) or not steps_raw:
        raise ScenarioError(f"{scenario_id}: a scenario needs at least one [[steps]]")
    steps = tuple(_parse_step(s, i, TRANSACTIONS) for i, s in enumerate(steps_raw))
    names = [s.name for s in steps]
    if len(set(names)) != len(names):
        raise ScenarioError(f"{scenario_id}: step names must be unique")
    return Scenario(
        id=scenario_id,
        title=str(doc.get("title", scenario_id)),
        steps=steps,
        tf=str(doc.get("tf", "")),
        description=str(doc.get("description", "")),
        tags=_str_tuple(doc.get("tags", []), "tags"),
        requires=_str_tuple(doc.get("requires", []), "requires"),
        patients=_str_tuple(doc.get("patients", ["main"]), "patients"),
        path=path,
        skip=str(doc.get("skip", "")),
    )


def load_file(path: Path, scenario_id: str | None = None) -> Scenario:
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ScenarioError(f"{path}: {exc}") from exc
    try:
        return parse_scenario(doc, scenario_id or path.stem, path)
    except ScenarioError as exc:
        raise ScenarioError(f"{path}: {exc}") from exc


def catalogue_root() -> Path:
    """The built-in catalogue (the repository's ``conformance/scenarios``, shipped as package data)."""
    return Path(str(resources.files("xds_hub.conformance") / "catalogue" / "scenarios"))


def _files_under(root: Path) -> Iterator[tuple[str, Path]]:
    for path in sorted(root.rglob("*.toml")):
        yield path.relative_to(root).with_suffix("").as_posix(), path


def load_catalogue(root: Path | None = None) -> list[Scenario]:
    base = root or catalogue_root()
    return [load_file(path, sid) for sid, path in _files_under(base)]


def select(selectors: Sequence[str], root: Path | None = None) -> list[Scenario]:
    """Scenarios named by ``selectors``: catalogue ids, id prefixes (folders), globs, or TOML paths.

    No selector: the whole catalogue.  Raises ScenarioError for a selector matching nothing.
    """
    base = root or catalogue_root()
    catalogue = dict(_files_under(base))
    if not selectors:
        return [load_file(p, sid) for sid, p in catalogue.items()]
    chosen: dict[str, Path] = {}
    for selector in selectors:
        path = Path(selector)
        if selector.endswith(".toml") and path.is_file():
            chosen[path.with_suffix("").name if not path.is_absolute() else path.stem] = path
            continue
        if path.is_dir() and not (base / selector).is_dir():
            for sid, p in _files_under(path):
                chosen[f"{path.name}/{sid}"] = p
            continue
        key = selector.strip("/")
        matched = [
            sid for sid in catalogue if sid == key or sid.startswith(key + "/") or fnmatch.fnmatch(sid, key)
        ]
        if not matched:
            raise ScenarioError(f"no scenario matches {selector!r}")
        for sid in matched:
            chosen[sid] = catalogue[sid]
    return [load_file(p, sid) for sid, p in chosen.items()]
