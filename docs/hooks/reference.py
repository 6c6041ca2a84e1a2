"""MkDocs hook: the config schema and the command line, written from the code at build time.

docs/reference/config.md and docs/reference/cli.md are placeholders in the source tree. This hook
replaces their Markdown, while the site builds, with tables made from the code itself:

- config.md from the pydantic models of a config file (`sim.config.schema.ExperimentConfig` and
  every table it declares, the valuation profiles of `agents.profiles.PROFILES`, the strategies
  of `agents.strategies.STRATEGIES`, the shock fields of `grid.plan.shocks.ShockSettings`) and of
  a sweep file (`sim.config.sweep.SweepConfig`);
- cli.md from the argparse parser of `dcmarket` (`sim.cli.build_parser`).

A field's description is its ``Field(description=...)``, else the ``- ``name``: ...`` bullet of
the docstring of the class that declares it. tests/test_docs.py builds the site with
``--strict`` and checks that every field is named and described.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import inspect
import json
import re
import sys
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

REPO = Path(__file__).resolve().parents[2]
# Document this checkout's code, whichever copy of dcmarket the environment has installed.
if sys.path[:1] != [str(REPO)]:
    sys.path.insert(0, str(REPO))

from pydantic import BaseModel  # noqa: E402
from pydantic_core import PydanticUndefined  # noqa: E402

from agents.profiles import PROFILES  # noqa: E402
from agents.strategies import STRATEGIES  # noqa: E402
from grid.plan.shocks import ShockSettings  # noqa: E402
from mechanisms.registry import MECHANISMS  # noqa: E402
from mechanisms.settings import Money  # noqa: E402
from sim.config.schema import ExperimentConfig  # noqa: E402
from sim.config.sweep import SweepConfig  # noqa: E402

CONFIG_PAGE = "reference/config.md"
CLI_PAGE = "reference/cli.md"

# The unit of a field, read from the end of its name (the first suffix that matches wins).
UNIT_SUFFIXES = (
    ("_mw_per_min", "MW/min"),
    ("_kw_per_phase", "kW per phase"),
    ("_per_mwh", "$/MWh"),
    ("_per_mvarh", "$/Mvarh"),
    ("_per_mw", "$/MW"),
    ("_per_km", "$/km"),
    ("_mwh", "MWh"),
    ("_mw", "MW"),
    ("_kw", "kW"),
    ("_kvar", "kvar"),
    ("_pu", "p.u."),
    ("_min", "min"),
    ("_usd", "$"),
    ("_kmh", "km/h"),
    ("_km", "km"),
    ("_s", "s"),
    ("_units", "units"),
)
# Fields whose names do not say their unit ("Class.field" -> unit). tests/test_docs.py checks that
# each names a field that exists.
UNIT_OF_FIELD = {
    "AuctionRules.increment": "$ or %",
    "AuctionRules.opening_bid": "$",
    "AuctionRules.reserve_prices": "$",
    "AuctionRules.eligibility_points": "points",
    "AuctionRules.initial_eligibility": "points",
    "ClockRules.increment": "$ or %",
    "ClockRules.opening_price": "$",
    "BusLoadConfig.mean": "MW",
    "BusLoadConfig.variance": "MW²",
    "BusLoadConfig.lower": "MW",
    "BusLoadConfig.upper": "MW",
    "SupplierConfig.inventory": "units",
    "TravelConfig.minutes": "min",
    "GeneratorConfig.quadratic_cost": "$/h per kW²",
    "PriceConfig.price_bound": "$/MWh",
}


@dataclass(frozen=True)
class Row:
    name: str
    type: str
    default: str
    unit: str
    description: str


@dataclass(frozen=True)
class Table:
    """One table of a config file, as the page shows it."""

    title: str  # what a user writes: "[network]", "[[plan.hubs]]", "strategy = "jump""
    anchor: str
    declared_by: str  # "sim.config.schema.NetworkConfig"
    intro: str
    rows: tuple[Row, ...]
    level: int = 2


# -------------------------------------------------------------------------------- descriptions
@functools.cache
def docstring_bullets(cls: type) -> dict[str, str]:
    """The ``- ``name``: text`` bullets of a class's own docstring, continuation lines joined."""
    doc = inspect.cleandoc(cls.__dict__.get("__doc__") or "")
    bullets: dict[str, str] = {}
    name = None
    for line in doc.splitlines():
        start = re.match(r"- ``(\w+)``(?:\s*\([^)]*\))?:\s*(.*)", line)
        if start:
            name = start.group(1)
            bullets[name] = start.group(2)
        elif name is not None and line.startswith("  ") and line.strip():
            bullets[name] += " " + line.strip()
        else:
            name = None
    return bullets


def field_description(cls: type, name: str, declared: str | None = None) -> str:
    """A field's ``description=``, else the docstring bullet of the class that declares it."""
    if declared:
        return declared
    for klass in cls.__mro__:
        text = docstring_bullets(klass).get(name)
        if text:
            return text.rstrip(";.").rstrip()
    return ""


def markdown_text(text: str, page: str = CONFIG_PAGE) -> str:
    """Docstring text as Markdown: ``code`` as `code`, docs/<page>.md#anchor as a link."""
    text = re.sub(r"``([^`]+)``", r"`\1`", " ".join(text.split()))

    def link(match: re.Match[str]) -> str:
        target = match.group(1) + (match.group(2) or "")
        return f"[{target}]({'../' * (len(Path(page).parts) - 1)}{target})"

    return re.sub(r"docs/([\w/-]+\.md)(#[\w-]+)?", link, text)


def _sentence(text: str) -> str:
    """A summary from a registry as a sentence of the page."""
    text = markdown_text(text)
    return f"{text[:1].upper()}{text[1:]}" + ("" if text.endswith(".") else ".")


def intro_of(cls: type) -> str:
    """The first paragraph of a class's own docstring."""
    doc = inspect.cleandoc(cls.__dict__.get("__doc__") or "")
    return markdown_text(doc.split("\n\n")[0]) if doc else ""


# ------------------------------------------------------------------------------------- units
def _walk(annotation: Any) -> Iterator[Any]:
    yield annotation
    for argument in typing.get_args(annotation):
        yield from _walk(argument)


def field_unit(cls: type, name: str) -> str:
    for klass in cls.__mro__:
        if f"{klass.__name__}.{name}" in UNIT_OF_FIELD:
            return UNIT_OF_FIELD[f"{klass.__name__}.{name}"]
    for suffix, unit in UNIT_SUFFIXES:
        if name.endswith(suffix):
            return unit
    try:
        hints = typing.get_type_hints(cls, include_extras=True)
    except (NameError, TypeError):
        hints = {}
    if any(part is Money for part in _walk(hints.get(name))):
        return "$"
    return ""


# ------------------------------------------------------------------------------ types, defaults
def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def models_in(annotation: Any) -> list[type[BaseModel]]:
    """The config models a field's type holds (directly, in a list, or as a table's values)."""
    found: list[type[BaseModel]] = []
    for part in _walk(annotation):
        if _is_model(part) and part not in found:
            found.append(part)
    return found


def type_text(annotation: Any, links: dict[type, str] | None = None) -> str:
    links = links or {}
    origin, arguments = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return type_text(arguments[0], links)
    if origin in (typing.Union, types.UnionType):
        shown = [type_text(a, links) for a in arguments if a is not type(None)]
        return " or ".join(dict.fromkeys(shown))
    if origin is typing.Literal:
        return " or ".join(json.dumps(a) for a in arguments)
    if origin is tuple and len(arguments) == 2 and arguments[1] is Ellipsis:
        return f"list of {type_text(arguments[0], links)}"
    if origin is tuple:
        return "[" + ", ".join(type_text(a, links) for a in arguments) + "]"
    if origin is list:
        return f"list of {type_text(arguments[0], links)}"
    if origin is dict:
        return f"table of {type_text(arguments[0], links)} → {type_text(arguments[1], links)}"
    if _is_model(annotation):
        anchor = links.get(annotation)
        return f"[table](#{anchor})" if anchor else "table"
    names = {int: "integer", float: "number", str: "string", bool: "boolean", Any: "any"}
    return names.get(annotation, getattr(annotation, "__name__", str(annotation)))


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        keys = [k if re.fullmatch(r"[A-Za-z0-9_-]+", str(k)) else json.dumps(str(k)) for k in value]
        pairs = ", ".join(f"{k} = {toml_value(v)}" for k, v in zip(keys, value.values()))
        return f"{{ {pairs} }}" if pairs else "{}"
    return repr(value)


def default_text(default: Any, factory: Any = None) -> str:
    if factory is not None:
        default = factory()
    if default is PydanticUndefined or default is dataclasses.MISSING:
        return "required"
    if default is None:
        return "not set"
    if isinstance(default, BaseModel):
        return "its table's defaults"
    return f"`{toml_value(default)}`"


def _escaped(text: str) -> str:
    """Text for a table cell: pipes escaped, and <...> shown rather than read as HTML outside code."""
    parts = text.replace("|", "\\|").split("`")
    return "`".join(p if i % 2 else p.replace("<", "&lt;").replace(">", "&gt;") for i, p in enumerate(parts))


def _anchor(path: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", path.lower()).strip("-")


# ----------------------------------------------------------------------------------- tables
def user_name(cls: type, name: str) -> str:
    info = cls.model_fields[name]
    return info.alias or getattr(cls, "field_aliases", {}).get(name, name)


def model_rows(cls: type[BaseModel], names: list[str] | None = None,
               links: dict[type, str] | None = None) -> tuple[Row, ...]:
    rows = []
    for name in names if names is not None else list(cls.model_fields):
        info = cls.model_fields[name]
        rows.append(Row(user_name(cls, name), type_text(info.annotation, links),
                        default_text(info.default, info.default_factory), field_unit(cls, name),
                        markdown_text(field_description(cls, name, info.description))))
    return tuple(rows)


def _declared_by(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _holder(annotation: Any) -> str:
    """How a field holds its model: as a "table", a "list" of tables, or a table "keyed" by bus."""
    origin, arguments = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        return _holder(next(a for a in arguments if models_in(a)))
    if origin is typing.Annotated:
        return _holder(arguments[0])
    return {list: "list", dict: "keyed"}.get(origin, "table")


def _variants(annotation: Any, nested: list[type[BaseModel]]) -> list[tuple[list[type[BaseModel]], str]]:
    """The tables a field may hold: the bidder entries' union as one, else each model with how it
    is held (``[products]`` a table, ``[[products]]`` a list)."""
    if len(nested) > 1 and all("profile" in m.model_fields for m in nested):
        return [(nested, "union")]
    if len(nested) == 1:
        return [(nested, _holder(annotation))]
    arguments = [a for a in typing.get_args(annotation) if models_in(a)]
    return [(models_in(a), _holder(a)) for a in arguments]


def _tables_of(cls: type[BaseModel], path: str, title: str, anchor: str, intro: str, level: int,
               prefix: str = "", top: bool = False) -> list[Table]:
    """The table of ``cls`` at ``path``, then the tables its fields declare, depth first; ``top``:
    the tables of the file's root are headed at the root's level."""
    children: list[tuple[str, str, list[type[BaseModel]], str]] = []
    links: dict[type, str] = {}
    for name, info in cls.model_fields.items():
        nested = models_in(info.annotation)
        if not nested:
            continue
        child = f"{path}.{user_name(cls, name)}" if path else user_name(cls, name)
        for model, kind in _variants(info.annotation, nested):
            # `[products]` and `[[products]]` are two tables of one name.
            taken = any(c[0] == child for c in children) and kind == "list"
            children.append((child, prefix + _anchor(child) + ("-list" if taken else ""), model, kind))
            for member in model:
                links.setdefault(member, children[-1][1])
    tables = [Table(title, anchor, _declared_by(cls), intro, model_rows(cls, links=links), level)]
    below = min(level + 1, 3) if path or not top else level
    for child, child_anchor, nested, kind in children:
        if kind == "union":
            tables += _union_tables(child, child_anchor, nested, below)
            continue
        child_title = {"table": f"[{child}]", "list": f"[[{child}]]", "keyed": f"[{child}.BUS]"}[kind]
        rules_of = next((spec for spec in MECHANISMS.values() if spec.table == child), None)
        text = intro_of(nested[0])
        if rules_of is not None:
            text = f"The rules of `[mechanism] kind = \"{rules_of.kind}\"`: {rules_of.summary}. {text}".strip()
        tables += _tables_of(nested[0], child, child_title, child_anchor, text, below, prefix)
    return tables


def _union_tables(path: str, anchor: str, members: list[type[BaseModel]], level: int) -> list[Table]:
    """``[[bidders]]``: the fields every entry has, then each profile's own fields."""
    common = [n for n in members[0].model_fields if all(n in m.model_fields for m in members)]
    names = [typing.get_args(m.model_fields["profile"].annotation)[0] for m in members]
    ordered = ["name", "profile"] + [n for n in common if n not in ("name", "profile")]
    rows = [dataclasses.replace(r, type=" or ".join(json.dumps(n) for n in names)) if r.name == "profile" else r
            for r in model_rows(members[0], ordered)]
    tables = [Table(f"[[{path}]]", anchor, "sim.config.schema.BidderConfig",
                    "One entry per bidder: these fields, and the fields of its profile (below).", tuple(rows), level)]
    for name, member in zip(names, members):
        spec = PROFILES[name]
        own = [n for n in member.model_fields if n not in common]
        claim = "gross substitutes" if spec.gross_substitutes else "not gross substitutes in general"
        entries = [(n, m) for n in own for m in models_in(member.model_fields[n].annotation)]
        tables.append(Table(f"profile = \"{name}\"", f"profile-{_anchor(name)}", _declared_by(spec.fields),
                            _sentence(f"{spec.summary} ({claim})"), model_rows(member, own), level + 1))
        tables += [Table(f"{field} = [{{ {', '.join(model.model_fields)} }}]", f"profile-{_anchor(name)}-{_anchor(field)}",
                         _declared_by(model), "", model_rows(model), level + 2) for field, model in entries]
    return tables


def strategy_tables() -> list[Table]:
    tables = []
    for spec in STRATEGIES.values():
        plays = "every mechanism" if spec.mechanisms is None else ", ".join(sorted(spec.mechanisms))
        intro = _sentence(f"{spec.summary}. Plays: {plays}")
        if spec.fields.model_fields:
            intro += f" Written as a table: `strategy = {{ name = \"{spec.name}\", ... }}`."
            tables.append(Table(f"strategy = \"{spec.name}\"", f"strategy-{_anchor(spec.name)}",
                                _declared_by(spec.fields), intro, model_rows(spec.fields), 3))
        else:
            tables.append(Table(f"strategy = \"{spec.name}\"", f"strategy-{_anchor(spec.name)}", "",
                                f"{intro} It has no fields.", (), 3))
    return tables


def shock_table() -> Table:
    hints = typing.get_type_hints(ShockSettings)
    rows = tuple(Row(f.name, type_text(hints[f.name]), default_text(f.default, None), field_unit(ShockSettings, f.name),
                     markdown_text(field_description(ShockSettings, f.name)))
                 for f in dataclasses.fields(ShockSettings))
    return Table("[plan.shocks] and [plan.shift]", "plan-shocks", _declared_by(ShockSettings),
                 "The demand-shock generator. `[plan.shift]` gives only the fields that differ in the shifted "
                 "distribution of the out-of-sample test (not `window_min` or `step_min`).", rows, 3)


def config_tables() -> list[Table]:
    """Every table of a config file, then of a sweep file, in the order the page shows them."""
    tables = _tables_of(ExperimentConfig, "", "The config file", "config-file",
                        "The top-level fields of an experiment config.", 2, top=True)
    at = next(i for i, t in enumerate(tables) if t.anchor == "population") + 1
    tables[at:at] = [Table("Strategies", "strategies", "agents.strategies.STRATEGIES",
                           "A bidder's (or a population's) `strategy`: a name, or a table with `name` and the "
                           "strategy's fields.", (), 2), *strategy_tables()]
    at = max(i for i, t in enumerate(tables) if t.anchor == "plan" or t.anchor.startswith("plan-")) + 1
    tables.insert(at, shock_table())
    return tables + _tables_of(SweepConfig, "", "The sweep file", "sweep-file", intro_of(SweepConfig), 2, "sweep-")


def _render_table(table: Table) -> str:
    lines = [f"{'#' * table.level} {table.title} {{#{table.anchor}}}", ""]
    if table.intro:
        lines += [table.intro, ""]
    if table.declared_by:
        lines += [f"Declared by `{table.declared_by}`.", ""]
    if table.rows:
        lines += ["| field | type | default | unit | description |", "|---|---|---|---|---|"]
        lines += [f"| `{r.name}` | {_escaped(r.type)} | {_escaped(r.default)} | {r.unit} | {_escaped(r.description)} |"
                  for r in table.rows]
        lines.append("")
    return "\n".join(lines)


def config_reference() -> str:
    head = ("# Config schema\n\n"
            "Generated from the code when the site is built (docs/hooks/reference.py): every table and field "
            "that a config file and a sweep file may hold, with its type, default, unit and description. "
            "[Config notes](config-notes.md) shows them in example files. A field marked *required* must be "
            "given whenever its table is; *not set* means the description says what happens without it.\n")
    return head + "\n" + "\n".join(_render_table(t) for t in config_tables())


# ----------------------------------------------------------------------------------- the CLI
def _value_text(action: argparse.Action) -> str:
    if action.nargs == 0:
        return ""
    if action.metavar is not None:
        name = action.metavar
    elif action.choices is not None:
        name = "{" + ",".join(str(c) for c in action.choices) + "}"
    else:
        name = action.dest.upper() if action.option_strings else action.dest
    return {"+": f"{name} [{name} ...]", "*": f"[{name} ...]", "?": f"[{name}]"}.get(action.nargs, name)


def _help_text(action: argparse.Action, prog: str) -> str:
    text = action.help or ""
    if "%" in text:
        text = text % {**vars(action), "prog": prog}
    return text


def _fixed_width(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Usage lines wrapped at 100 columns whatever the terminal, so the page does not depend on it."""
    parser.formatter_class = functools.partial(argparse.HelpFormatter, width=100)
    return parser


def cli_reference() -> str:
    from sim.cli import build_parser

    parser = _fixed_width(build_parser())
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    summaries = {a.dest: a.help for a in commands._choices_actions}
    lines = ["# Command line", "",
             "Generated from the code when the site is built (docs/hooks/reference.py), from the parser of "
             "`dcmarket` (`sim.cli.build_parser`). [Getting started](../getting-started.md) shows the commands "
             "at work.", "", "```text", parser.format_usage().strip(), "```", "",
             "| command | what it does |", "|---|---|"]
    lines += [f"| [`dcmarket {name}`](#{_anchor(name)}) | {_escaped(summaries[name])} |" for name in commands.choices]
    for name, sub in commands.choices.items():
        sub = _fixed_width(sub)
        lines += ["", f"## dcmarket {name} {{#{_anchor(name)}}}", "", _escaped(_sentence(sub.description or summaries[name])),
                  "",
                  "```text", sub.format_usage().strip(), "```", "",
                  "| argument | value | what it does |", "|---|---|---|"]
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            shown = ", ".join(action.option_strings) or action.dest
            value = _value_text(action) if action.option_strings else ""
            lines.append(f"| `{shown}` | {f'`{value}`' if value else ''} | {_escaped(_help_text(action, sub.prog))} |")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------- the hook
def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    if page.file.src_uri == CONFIG_PAGE:
        return config_reference()
    if page.file.src_uri == CLI_PAGE:
        return cli_reference()
    return markdown
