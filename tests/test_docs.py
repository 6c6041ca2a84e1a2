"""The documentation site: it builds with ``mkdocs build --strict`` and no warning, its generated
config reference names and describes every field of the schema, its command-line reference every
command and option, and the code cites the docs (not the specs, which a clone does not have) by
anchors that exist.

The site is built once, in this process, into a temporary directory (a few seconds).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import importlib.util
import logging
import re
import sys
import tokenize
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
HOOK = REPO / "docs" / "hooks" / "reference.py"


def _hook():
    """docs/hooks/reference.py, loaded as MkDocs loads it."""
    if "docs_reference_hook" not in sys.modules:
        spec = importlib.util.spec_from_file_location("docs_reference_hook", HOOK)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    return sys.modules["docs_reference_hook"]


class _Warnings(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(f"{record.levelname}: {record.getMessage()}")


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> tuple[Path, list[str]]:
    """The site, built --strict in this process (so the schema is imported once), and every
    warning MkDocs logged."""
    from mkdocs.commands.build import build
    from mkdocs.config import load_config
    from mkdocs.exceptions import Abort

    out = tmp_path_factory.mktemp("site")
    warnings = _Warnings()
    logger = logging.getLogger("mkdocs")
    logger.addHandler(warnings)
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("NO_MKDOCS_2_WARNING", "1")  # Material's notice about its successor
            try:
                build(load_config(str(REPO / "mkdocs.yml"), site_dir=str(out), strict=True))
            except Abort as error:
                warnings.messages.append(f"aborted: {error}")
    finally:
        logger.removeHandler(warnings)
    return out, warnings.messages


def test_site_builds_strict_without_a_warning(site):
    _, warnings = site
    assert warnings == []


def _sections(page: str) -> dict[str, set[str]]:
    """The generated config page as {declaring class: the field names in its table}."""
    sections: dict[str, set[str]] = {}
    for section in re.split(r"^#+ ", page, flags=re.MULTILINE)[1:]:
        declared = re.search(r"^Declared by `([\w.]+)`\.$", section, flags=re.MULTILINE)
        if declared:
            names = set(re.findall(r"^\| `([\w-]+)` \|", section, flags=re.MULTILINE))
            sections.setdefault(declared.group(1), set()).update(names)
    return sections


def _named(sections: dict[str, set[str]], name: str) -> set[str]:
    """The fields of the section(s) declared by a class of this name."""
    found = [names for declared, names in sections.items() if declared.rsplit(".", 1)[-1] == name]
    assert found, f"no section of the config reference is declared by {name}"
    return set().union(*found)


def test_config_reference_names_every_field():
    from agents.profiles import PROFILES
    from agents.strategies import STRATEGIES
    from grid.plan.shocks import ShockSettings
    from sim.config.schema import ExperimentConfig
    from sim.config.sweep import SweepConfig

    sections = _sections(_hook().config_reference())
    aliases = ExperimentConfig.field_aliases
    for root in (ExperimentConfig, SweepConfig):
        schema = root.model_json_schema(by_alias=True)
        models = {root.__name__: schema, **schema.get("$defs", {})}
        for title, model in models.items():
            fields = {aliases.get(f, f) if title == "ExperimentConfig" else f for f in model.get("properties", {})}
            if "profile" in fields:  # a [[bidders]] entry: the common fields, and its profile's own
                profile = PROFILES[model["properties"]["profile"]["const"]]
                shown = sections["sim.config.schema.BidderConfig"] | _named(sections, profile.fields.__name__)
            else:
                shown = _named(sections, title)
            assert fields <= shown, f"{title}: {sorted(fields - shown)} missing from the config reference"
    for spec in STRATEGIES.values():
        if spec.fields.model_fields:
            assert set(spec.fields.model_fields) <= _named(sections, spec.fields.__name__)
    assert {f.name for f in dataclasses.fields(ShockSettings)} <= _named(sections, "ShockSettings")


def test_every_config_field_has_a_description():
    missing = [f"{table.title} {row.name}" for table in _hook().config_tables() for row in table.rows
               if not row.description]
    assert missing == [], "add description= (or a '- ``name``:' docstring bullet) to: " + ", ".join(missing)


def test_units_named_by_hand_name_fields_that_exist():
    from agents.profiles import PROFILES

    hook = _hook()
    declared = {t.declared_by.rsplit(".", 1)[-1]: {r.name for r in t.rows} for t in hook.config_tables()}
    declared.update({s.fields.__name__: set(s.fields.model_fields) for s in PROFILES.values()})
    for key in hook.UNIT_OF_FIELD:
        model, field = key.split(".")
        assert field in declared.get(model, set()), f"UNIT_OF_FIELD names {key}, which is not a field"


def test_cli_reference_names_every_command_and_option():
    from sim.cli import build_parser

    page = _hook().cli_reference()
    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    for name, parser in commands.choices.items():
        assert f"## dcmarket {name} " in page
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            for option in action.option_strings or [action.dest]:
                assert option in page, f"dcmarket {name} {option} missing from the CLI reference"


def test_generated_pages_are_in_the_site(site):
    out, _ = site
    config = (out / "reference" / "config" / "index.html").read_text(encoding="utf-8")
    cli = (out / "reference" / "cli" / "index.html").read_text(encoding="utf-8")
    assert 'id="profile-per-mw"' in config and "<code>outage_penalty</code>" in config
    assert 'id="sweep"' in cli and "<code>--workers</code>" in cli


# --------------------------------------------------------------------------- the code's citations
# Where code comments and docstrings may cite the docs: the four packages, experiments and tests.
CITING = ("sim", "grid", "agents", "mechanisms", "experiments", "tests")
# Citations of the project's notes, which a clone does not have: "spec 4.2", "spec (6)", "Spec
# section 5", "the spec's section 2", "spec `dlmp-bilevel.md`", "../shared/...", "the data note".
NOTES = re.compile(r"shared/|\bdata note\b|\b[Ss]pec(?:'s)?\s+(?:sections?\s+)?(?:\(?\d|`?[\w-]+\.md|Def\.)")
# A pointer into the README ("see README", 'README: "Reading the verdict"'): its sections moved into docs/.
README = re.compile(r"\bREADME\b(?!\.md)")
DOCS_PATH = re.compile(r"\bdocs/([\w/-]+\.md)(?:#([\w-]+))?")


@functools.cache  # read once for both tests (the module is one xdist group)
def _texts() -> list[tuple[str, str]]:
    """Every comment and string literal of the citing code, as ("path:line", text)."""
    kinds = {tokenize.COMMENT, tokenize.STRING, getattr(tokenize, "FSTRING_MIDDLE", tokenize.STRING)}
    texts = []
    for root in CITING:
        for path in sorted((REPO / root).rglob("*.py")):
            if path == Path(__file__).resolve():
                continue  # this file spells the patterns out
            with tokenize.open(path) as source:
                for token in tokenize.generate_tokens(source.readline):
                    if token.type in kinds:
                        texts.append((f"{path.relative_to(REPO)}:{token.start[0]}", token.string))
    return texts


def test_code_cites_the_docs_not_the_notes():
    wrong = [f"{where}: {match.group(0)!r}" for where, text in _texts()
             for match in (*NOTES.finditer(text), *README.finditer(text))
             if match.re is README or not DOCS_PATH.search(text)]
    assert wrong == [], ("cite the docs page and anchor instead (e.g. docs/models/capacity.md#ca-5-1): "
                         + "; ".join(wrong))


def test_docs_cited_in_code_exist(site):
    out, _ = site
    ids: dict[str, set[str]] = {}
    missing = []
    for where, text in _texts():
        for page, anchor in DOCS_PATH.findall(text):
            if not (REPO / "docs" / page).is_file():
                missing.append(f"{where}: docs/{page}")
                continue
            if anchor:
                if page not in ids:
                    built = out / Path(page).with_suffix("") / "index.html"
                    if Path(page).name == "index.md":
                        built = out / Path(page).parent / "index.html"
                    ids[page] = set(re.findall(r'\bid="([^"]+)"', built.read_text(encoding="utf-8")))
                if anchor not in ids[page]:
                    missing.append(f"{where}: docs/{page}#{anchor}")
    assert missing == []

