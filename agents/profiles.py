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
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Iterable, Mapping

from pydantic import Field, ValidationError, model_validator

from agents.errors import AgentConfigError
from agents.valuations import (
    AdditiveValuation,
    BundleTableValuation,
    SymmetricConcaveValuation,
    ValuationProfile,
    money_tolerance,
)
from mechanisms.products import Product, ProductCatalog
from mechanisms.settings import Money, Settings, first_error


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


# -------------------------------------------------------------------------------- additive
class AdditiveFields(ProfileFields):
    profile_name: ClassVar[str] = "additive"
    one_of: ClassVar[tuple[tuple[str, ...], ...]] = (("values", "value_per_mw"),)
    values: dict[str, Money] | None = None
    value_per_mw: dict[str, Money] | None = None


def build_additive(fields: AdditiveFields, catalog: ProductCatalog) -> AdditiveValuation:
    """Values in $ per product (``values``), or in $/MW (``value_per_mw``) times each product's MW.

    ``value_per_mw`` keys may be a product id or a product without its block number (its bus and
    risk tier), which prices every block of it, so that changes in capacity change the auction.
    """
    kept: dict[str, float] = {}
    if fields.values is not None:
        if not fields.values:
            raise AgentConfigError("values: the additive profile needs a table of product id -> value ($)")
        for key, value in fields.values.items():
            amount = _money(value, f"values.{key}")
            product = _one_product(key, f"values.{key}", catalog)
            if product is not None:
                kept[product] = amount
        return AdditiveValuation(values=kept)
    assert fields.value_per_mw is not None
    if not fields.value_per_mw:
        raise AgentConfigError("value_per_mw: expected a table of product id -> value ($/MW)")
    for key, rate in fields.value_per_mw.items():
        where = f"value_per_mw.{key}"
        amount = _money(rate, where)
        products = catalog.resolve(key)
        if products is None:
            raise AgentConfigError(f"{where}: unknown product {key!r}; the products are {catalog.describe()}")
        for product in products:
            if product.id in kept:
                raise AgentConfigError(f"{where}: product {product.id} is priced twice; give each product one rate")
            if not math.isfinite(product.capacity_mw):
                raise AgentConfigError(f"{where}: product {product.id} has no capacity (MW) to price per MW")
            kept[product.id] = amount * product.capacity_mw
    return AdditiveValuation(values=kept)


# ------------------------------------------------------------------------ symmetric concave
class SymmetricConcaveFields(ProfileFields):
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
    products: list[str] = Field(min_length=1)
    value: Money


class BundlesFields(ProfileFields):
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
