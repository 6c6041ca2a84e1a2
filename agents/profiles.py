"""Valuation profiles by name: each declares its config fields, builds its valuation, and says
whether it satisfies gross substitutes.

A `[[bidders]]` entry names a ``profile`` and gives that profile's own keys (and only those):
the config schema is assembled from this registry, so a new profile is one `ProfileSpec` here.
Structure (types, money bounds, unknown keys) is checked by the fields model; meaning (products
that exist, non-negative and monotone values, concavity) by the builder, against the products
the network can offer.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Iterable, Mapping

from pydantic import Field, ValidationError, field_validator, model_validator

from agents.aggregator_valuation import AggregatorValuation, build_members
from agents.errors import AgentConfigError
from agents.valuations import (
    AdditiveValuation,
    BudgetCappedValuation,
    BundleTableValuation,
    ComplementsValuation,
    PerMWValuation,
    Site,
    SitesValuation,
    SymmetricConcaveValuation,
    ValuationProfile,
    money_tolerance,
)
from mechanisms.products import Product, ProductCatalog, parse_product_id
from mechanisms.settings import MAX_COUNT, Money, Settings, first_error


class ProfileFields(Settings):
    """A profile's own config keys. ``one_of`` lists groups of keys of which exactly one must be
    given (a profile may read its values in more than one form)."""

    one_of: ClassVar[tuple[tuple[str, ...], ...]] = ()
    profile_name: ClassVar[str] = ""

    @model_validator(mode="after")
    def _one_of_each_group(self) -> "ProfileFields":
        for group in self.one_of:
            given = [f for f in group if getattr(self, f) is not None]
            if len(given) != 1:
                choice = " or ".join(repr(f) for f in group)
                what = "one of the fields" if len(group) > 1 else "the field"
                raise ValueError(f"profile {self.profile_name!r} needs {what} {choice}" + (", not both" if given else ""))
        return self


@dataclass(frozen=True)
class ProfileSpec:
    name: str
    fields: type[ProfileFields]
    build: Callable[[Any, ProductCatalog], ValuationProfile]
    # Kelso-Crawford gross substitutes: raising some prices never lowers demand for the others.
    # Where it holds, the SAA with straightforward bidders ends near a Walrasian equilibrium.
    gross_substitutes: bool
    summary: str

    def field_names(self) -> tuple[str, ...]:
        return tuple(self.fields.model_fields)


# --------------------------------------------------------------------------------------------
def _money(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise AgentConfigError(f"{where}: expected a finite number of $, got {value!r}")
    if value < 0:
        raise AgentConfigError(f"{where}: value {value:g} $ is negative; valuations must be >= 0")
    return float(value)


def _one_product(key: str, where: str, catalog: ProductCatalog) -> str | None:
    """The product a key names (None if it exists but is withheld); error if unknown or if it
    names a family split into several blocks (a per-product value must name one product)."""
    products = catalog.resolve(key)
    if products is None:
        raise AgentConfigError(f"{where}: unknown product {key!r}; the products are {catalog.describe()}")
    if len(products) > 1:
        raise AgentConfigError(
            f"{where}: {key!r} is split into {len(products)} blocks ({products[0].id}, ...); name one block, "
            "or give value_per_mw for the whole product"
        )
    return products[0].id if products else None


def _priced(
    table: Mapping[str, Any], where: str, catalog: ProductCatalog, *, per_mw: bool = False, families: bool = False
) -> dict[str, float]:
    """A table of product key -> $ (or $/MW with ``per_mw``) as $ per product id.

    Per-MW keys, and $ keys when ``families`` is set, may name a product without its block
    number, which gives every block of it that value; plain $ keys must name one product.
    """
    kept: dict[str, float] = {}
    for key, raw in table.items():
        here = f"{where}.{key}"
        amount = _money(raw, here)
        if not (per_mw or families):
            product_id = _one_product(key, here, catalog)
            if product_id is not None:
                kept[product_id] = amount
            continue
        products = catalog.resolve(key)
        if products is None:
            raise AgentConfigError(f"{here}: unknown product {key!r}; the products are {catalog.describe()}")
        for product in products:
            if product.id in kept:
                what = "rate" if per_mw else "value"
                raise AgentConfigError(f"{here}: product {product.id} is priced twice; give each product one {what}")
            if per_mw and not math.isfinite(product.capacity_mw):
                raise AgentConfigError(f"{here}: product {product.id} has no capacity (MW) to price per MW")
            kept[product.id] = amount * product.capacity_mw if per_mw else amount
    return kept


def _values_or_per_mw(fields: Any, catalog: ProductCatalog, profile: str) -> dict[str, float]:
    """``values`` ($ per product) or ``value_per_mw`` ($/MW times each product's MW)."""
    if fields.values is not None:
        if not fields.values:
            raise AgentConfigError(f"values: the {profile} profile needs a table of product id -> value ($)")
        return _priced(fields.values, "values", catalog)
    if not fields.value_per_mw:
        raise AgentConfigError("value_per_mw: expected a table of product id -> value ($/MW)")
    return _priced(fields.value_per_mw, "value_per_mw", catalog, per_mw=True)


def _keys_as_text(value: Any) -> Any:
    """Bus tables: TOML keys are strings; from Python, int keys are welcome too."""
    if isinstance(value, Mapping):
        return {str(k) if isinstance(k, int) and not isinstance(k, bool) else k: v for k, v in value.items()}
    return value


def _bus_values(table: Mapping[str, Any] | None, where: str, profile: str, what: str,
                catalog: ProductCatalog) -> dict[int, float]:
    """A profile's required table of bus -> ``what``, on products that all have a bus."""
    if not table:
        raise AgentConfigError(f"{where}: the {profile} profile needs a table of bus -> {what}")
    _require_buses(catalog, where, profile)
    return _bus_table(table, where, catalog)


def _require_buses(catalog: ProductCatalog, where: str, profile: str) -> None:
    for product in catalog.offered:
        if product.bus is None:
            raise AgentConfigError(
                f"{where}: product {product.id!r} has no bus; the {profile} profile values products by "
                "location, so it needs network products (or explicit products with a bus)"
            )


def _bus_table(table: Mapping[str, Any], where: str, catalog: ProductCatalog) -> dict[int, float]:
    """A table of bus number -> $ (or $/MW); every bus must be one the products can be at."""
    known = {p.bus for p in catalog.offered if p.bus is not None}
    for name in (*catalog.families, *catalog.withheld):
        key = parse_product_id(name)
        if key is not None:
            known.add(key.bus)
    kept: dict[int, float] = {}
    for key, raw in table.items():
        here = f"{where}.{key}"
        if not re.fullmatch(r"-?\d+", str(key)):
            raise AgentConfigError(f"{here}: key {key!r} is not a bus number; write the bus, e.g. \"3\" = ...")
        bus = int(key)
        if bus in kept:
            raise AgentConfigError(f"{where}: bus {bus} is given twice (as {key!r}); give each bus once")
        amount = _money(raw, here)
        if bus not in known:
            buses = ", ".join(str(b) for b in sorted(known)[:20]) or "none"
            raise AgentConfigError(f"{here}: no products at bus {bus}; the products are at buses {buses}")
        kept[bus] = amount
    return kept


# -------------------------------------------------------------------------------- additive
class AdditiveFields(ProfileFields):
    """A value per product; one of the two fields:

    - ``values``: product id -> $;
    - ``value_per_mw``: product id, or product without its block number (all its blocks) -> $/MW,
      times each product's MW.
    """

    profile_name: ClassVar[str] = "additive"
    one_of: ClassVar[tuple[tuple[str, ...], ...]] = (("values", "value_per_mw"),)
    values: dict[str, Money] | None = None
    value_per_mw: dict[str, Money] | None = None


def build_additive(fields: AdditiveFields, catalog: ProductCatalog) -> AdditiveValuation:
    """Values in $ per product (``values``), or in $/MW (``value_per_mw``) times each product's MW.

    ``value_per_mw`` keys may be a product id or a product without its block number (its bus and
    risk tier), which prices every block of it, so that changes in capacity change the auction.
    """
    return AdditiveValuation(values=_values_or_per_mw(fields, catalog, "additive"))


# ------------------------------------------------------------------------ symmetric concave
class SymmetricConcaveFields(ProfileFields):
    """A value by the number of products held.

    - ``by_size``: the values ($) of 1, 2, ... products, concave (no marginal value above the one
      before); flat beyond the last entry.
    """

    profile_name: ClassVar[str] = "symmetric_concave"
    one_of: ClassVar[tuple[tuple[str, ...], ...]] = (("by_size",),)
    by_size: list[Money] | None = None


def build_symmetric_concave(fields: SymmetricConcaveFields, catalog: ProductCatalog) -> SymmetricConcaveValuation:
    by_size = fields.by_size or []
    if not by_size:
        raise AgentConfigError("by_size: the symmetric_concave profile needs the values of 1, 2, ... products ($)")
    values = [_money(v, f"by_size[{i}]") for i, v in enumerate(by_size)]
    previous_value, previous_marginal = 0.0, math.inf
    for size, value in enumerate(values, start=1):
        marginal = value - previous_value
        if marginal < -money_tolerance(value):
            raise AgentConfigError(
                f"by_size: value of {size} products ({value:g}) is below that of {size - 1} ({previous_value:g}); "
                "valuations must not decrease with bundle size"
            )
        if marginal > previous_marginal + money_tolerance(value):
            raise AgentConfigError(
                f"by_size: marginal value of product {size} ({marginal:g}) exceeds that of product {size - 1} "
                f"({previous_marginal:g}); the profile must be concave (use the bundles profile for complements)"
            )
        previous_value, previous_marginal = value, marginal
    return SymmetricConcaveValuation(by_size=tuple(values))


# --------------------------------------------------------------------------- bundle table
class BundleEntry(Settings):
    """One bundle of the XOR table.

    - ``products``: the product ids of the bundle;
    - ``value``: what the bundle is worth ($).
    """

    products: list[str] = Field(min_length=1)
    value: Money


class BundlesFields(ProfileFields):
    """An XOR table with free disposal: a bundle is worth the largest value listed for a bundle
    within it.

    - ``bundles``: a list of ``{ products = [...], value = ... }``.
    """

    profile_name: ClassVar[str] = "bundles"
    one_of: ClassVar[tuple[tuple[str, ...], ...]] = (("bundles",),)
    bundles: list[BundleEntry] | None = None


def build_bundle_table(fields: BundlesFields, catalog: ProductCatalog) -> BundleTableValuation:
    entries = fields.bundles or []
    if not entries:
        raise AgentConfigError("bundles: the bundles profile needs a list of {products = [...], value = ...}")
    table: list[tuple[frozenset[str], float]] = []
    seen: set[frozenset[str]] = set()
    for i, entry in enumerate(entries):
        where = f"bundles[{i}]"
        products = entry.products
        if len(set(products)) != len(products):
            raise AgentConfigError(f"{where}.products: a product is listed twice")
        value = _money(entry.value, f"{where}.value")
        bundle = frozenset(products)
        if bundle in seen:
            raise AgentConfigError(f"{where}.products: this bundle is already listed; give each bundle once")
        seen.add(bundle)
        named = [_one_product(p, f"{where}.products", catalog) for p in products]
        if all(p is not None for p in named):
            table.append((frozenset(named), value))
    return BundleTableValuation(bundles=tuple(table))


# --------------------------------------------------------------------------------- sites
class SitesFields(ProfileFields):
    """Up to ``max_sites`` sites: a bundle is worth the sum of its ``max_sites`` largest product
    values (unit demand when 1).

    - ``site_values``: product key -> $ (the value of building on that product); a key without a
      block number gives each of its blocks that value;
    - ``site_value_per_mw``: product key -> $/MW, times each product's MW (instead of
      ``site_values``; one of the two);
    - ``max_sites``: how many products count, >= 1 (default 1).
    """

    profile_name: ClassVar[str] = "sites"
    one_of: ClassVar[tuple[tuple[str, ...], ...]] = (("site_values", "site_value_per_mw"),)
    site_values: dict[str, Money] | None = None
    site_value_per_mw: dict[str, Money] | None = None
    max_sites: int = Field(default=1, ge=1, le=MAX_COUNT)


def build_sites(fields: SitesFields, catalog: ProductCatalog) -> SitesValuation:
    if fields.site_values is not None:
        if not fields.site_values:
            raise AgentConfigError("site_values: the sites profile needs a table of product id -> value ($)")
        values = _priced(fields.site_values, "site_values", catalog, families=True)
    else:
        if not fields.site_value_per_mw:
            raise AgentConfigError("site_value_per_mw: expected a table of product id -> value ($/MW)")
        values = _priced(fields.site_value_per_mw, "site_value_per_mw", catalog, per_mw=True)
    return SitesValuation(values=values, max_sites=fields.max_sites)


# -------------------------------------------------------------------------------- per MW
class PerMWFields(ProfileFields):
    """A value per MW by location, discounted for interruption risk net of backup generation.

    A product at bus b with risk eps and q MW is worth
    ``q * value_per_mw[b] * max(0, 1 - eps * (1 - backup_share) * outage_penalty)``:

    - ``value_per_mw``: bus number -> $/MW (TOML keys are strings: ``{ "3" = 100 }``); products at
      other buses are worth 0;
    - ``backup_share``: the share of its load the bidder's own backup generation carries through
      an interruption, in [0, 1] (default 0);
    - ``outage_penalty``: the value lost per MW at interruption probability 1, as a multiple of the
      MW's value, >= 0 (default 10: lost jobs and contract penalties make an outage cost far more
      than the energy; at 10, a 10 % risk without backup leaves nothing). Firm capacity (risk 0)
      keeps the full rate.
    """

    profile_name: ClassVar[str] = "per_mw"
    one_of: ClassVar[tuple[tuple[str, ...], ...]] = (("value_per_mw",),)
    value_per_mw: dict[str, Money] | None = None
    backup_share: float = Field(default=0.0, ge=0, le=1)
    outage_penalty: float = Field(default=10.0, ge=0, le=1e6)

    @field_validator("value_per_mw", mode="before")
    @classmethod
    def _bus_keys(cls, value: Any) -> Any:
        return _keys_as_text(value)


def build_per_mw(fields: PerMWFields, catalog: ProductCatalog) -> PerMWValuation:
    rates = _bus_values(fields.value_per_mw, "value_per_mw", "per_mw", "value ($/MW)", catalog)
    products = tuple(p for p in catalog.offered if p.bus in rates)
    for product in products:
        if not math.isfinite(product.capacity_mw):
            raise AgentConfigError(f"value_per_mw.{product.bus}: product {product.id} has no capacity (MW) to price per MW")
    return PerMWValuation(rates=rates, products=products, backup_share=fields.backup_share,
                          outage_penalty=fields.outage_penalty)


# -------------------------------------------------------------------------- budget capped
class BudgetCappedFields(ProfileFields):
    """Additive values capped at a budget: v(S) = min(budget_usd, sum of the values in S).

    - ``values``: product id -> $, as for additive;
    - ``value_per_mw``: product key -> $/MW, as for additive (instead of ``values``);
    - ``budget_usd``: the most any bundle is worth, > 0 (required).
    """

    profile_name: ClassVar[str] = "budget_capped"
    one_of: ClassVar[tuple[tuple[str, ...], ...]] = (("values", "value_per_mw"),)
    values: dict[str, Money] | None = None
    value_per_mw: dict[str, Money] | None = None
    budget_usd: Money = Field(gt=0)


def build_budget_capped(fields: BudgetCappedFields, catalog: ProductCatalog) -> BudgetCappedValuation:
    values = _values_or_per_mw(fields, catalog, "budget_capped")
    return BudgetCappedValuation(values=values, budget=_money(fields.budget_usd, "budget_usd"))


# ---------------------------------------------------------------------------- complements
class ComplementsFields(ProfileFields):
    """A site is worth its value only with all of its products (firm and flexible together).

    - ``site_values``: bus number -> $, the value of a complete site: every product offered at
      that bus (all blocks and risk tiers); TOML keys are strings: ``{ "3" = 500 }``;
    - ``synergy_usd``: $ added for each complete site beyond the first, >= 0 (default 0).

    v(S) = sum of complete sites' values + synergy_usd * max(0, complete sites - 1).
    """

    profile_name: ClassVar[str] = "complements"
    one_of: ClassVar[tuple[tuple[str, ...], ...]] = (("site_values",),)
    site_values: dict[str, Money] | None = None
    synergy_usd: Money = 0.0

    @field_validator("site_values", mode="before")
    @classmethod
    def _bus_keys(cls, value: Any) -> Any:
        return _keys_as_text(value)


def build_complements(fields: ComplementsFields, catalog: ProductCatalog) -> ComplementsValuation:
    values = _bus_values(fields.site_values, "site_values", "complements", "value ($) of a complete site", catalog)
    synergy = _money(fields.synergy_usd, "synergy_usd")
    # A bus with no capacity offered is like a withheld product: its value is ignored.
    sites = tuple(
        Site(bus, frozenset(p.id for p in catalog.offered if p.bus == bus), value)
        for bus, value in values.items()
        if any(p.bus == bus for p in catalog.offered)
    )
    return ComplementsValuation(sites=sites, synergy=synergy)


# ------------------------------------------------------------------------------ aggregator
class AggregatorFields(ProfileFields):
    """The aggregator's value for a bundle is the best assignment of its products to its members.

    - ``members``: a list of member data centers, each ``{name, profile, <that profile's
      fields>}``.
    """

    profile_name: ClassVar[str] = "aggregator"
    one_of: ClassVar[tuple[tuple[str, ...], ...]] = (("members",),)
    members: list[dict[str, Any]] | None = None


def build_aggregator(fields: AggregatorFields, catalog: ProductCatalog) -> AggregatorValuation:
    if not fields.members:
        raise AgentConfigError("members: the aggregator profile needs at least one member "
                               "{name = ..., profile = ..., <its fields>}")
    return AggregatorValuation(members=build_members(fields.members, build_profile, catalog))


# ------------------------------------------------------------------------------ registry
PROFILES: dict[str, ProfileSpec] = {
    spec.name: spec
    for spec in (
        ProfileSpec("additive", AdditiveFields, build_additive, True,
                    "a value per product ($) or per MW ($/MW); no interaction between products"),
        ProfileSpec("symmetric_concave", SymmetricConcaveFields, build_symmetric_concave, True,
                    "a value by the number of products held, with diminishing marginal value"),
        ProfileSpec("bundles", BundlesFields, build_bundle_table, False,
                    "an XOR table of bundle values (complements allowed)"),
        ProfileSpec("sites", SitesFields, build_sites, True,
                    "up to max_sites products count, the most valuable ones (unit demand for 1)"),
        ProfileSpec("per_mw", PerMWFields, build_per_mw, True,
                    "a value per MW by bus, discounted for interruption risk net of backup generation"),
        ProfileSpec("budget_capped", BudgetCappedFields, build_budget_capped, False,
                    "additive values capped at a budget: min(budget, sum of values)"),
        ProfileSpec("complements", ComplementsFields, build_complements, False,
                    "a site counts only with all its products (firm and flexible), plus a synergy per extra site"),
        # Gross substitutes exactly when every member is (the flag of a built aggregator says).
        ProfileSpec("aggregator", AggregatorFields, build_aggregator, False,
                    "bids for member data centers: the best assignment of products to its members"),
    )
}


def profile_spec(kind: str) -> ProfileSpec:
    try:
        return PROFILES[kind]
    except KeyError:
        raise AgentConfigError(f"profile: unknown profile {kind!r}; choose one of {', '.join(PROFILES)}") from None


def build_profile(
    kind: str,
    params: Mapping[str, Any],
    offered: ProductCatalog | Iterable[str],
    withheld: Iterable[str] = (),
) -> ValuationProfile:
    """Build a profile by name from its config fields (a mapping, or its validated fields model).

    ``offered`` is the catalog of products (or, for abstract items, just their ids); ``withheld``
    (with plain ids) are product ids that exist but are not sold (zero capacity): values on them
    are ignored rather than rejected.
    """
    spec = profile_spec(kind)
    if isinstance(params, spec.fields):
        fields = params
    else:
        try:
            # From Python (tests, scripts) tuples and ints are fine; TOML configs are strict.
            fields = spec.fields.model_validate(dict(params), strict=False)
        except ValidationError as error:
            raise AgentConfigError(first_error(error)) from None
    if not isinstance(offered, ProductCatalog):
        # Abstract items carry no MW, so value_per_mw cannot price them.
        offered = ProductCatalog(
            offered=tuple(Product(pid, None, 0.0, math.nan) for pid in offered), withheld=frozenset(withheld)
        )
    return spec.build(fields, offered)
