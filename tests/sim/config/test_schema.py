"""The schema reads in one place: every registered profile, mechanism and study has its table
declared in sim/config/schema.py, with the settings model its registry names."""

from __future__ import annotations

import typing

from agents.profiles import PROFILES
from mechanisms.registry import MECHANISMS
from sim.config.schema import STUDY_TABLES, BidderConfig, ExperimentConfig
from sim.studies.registry import STUDIES


def _declared(field: str) -> type:
    """The model a field holds (its annotation without ``| None``)."""
    annotation = ExperimentConfig.model_fields[field].annotation
    return next(a for a in typing.get_args(annotation) if a is not type(None))


def test_every_profile_has_its_bidder_entry_and_no_other():
    union = typing.get_args(typing.get_args(BidderConfig)[0])
    by_profile = {typing.get_args(entry.model_fields["profile"].annotation)[0]: entry for entry in union}
    assert set(by_profile) == set(PROFILES)
    for name, spec in PROFILES.items():
        assert issubclass(by_profile[name], spec.fields), name
        assert set(spec.fields.model_fields) <= set(by_profile[name].model_fields), name


def test_every_mechanism_has_its_rule_table():
    for spec in MECHANISMS.values():
        assert _declared(spec.table) is spec.rules, spec.kind


def test_every_study_table_is_declared():
    tables = {spec.table for spec in STUDIES.values() if spec.table}
    assert tables == set(STUDY_TABLES)
    for table in tables:
        assert table in ExperimentConfig.model_fields
