"""The base currency: LTV_BASE_CURRENCY, else what the last load recorded, else USD."""

from __future__ import annotations

from datetime import date

import pytest

from ltv_pipeline import settings
from ltv_pipeline.lib.errors import InputError


def test_the_base_currency_is_the_setting_then_the_load_then_usd(ltv_home, monkeypatch):
    assert settings.base_currency() == "USD"  # nothing loaded yet
    settings.write_data_span(date(2025, 1, 1), date(2025, 6, 30), "GBP")
    assert settings.base_currency() == "GBP"
    assert settings.data_span() == (date(2025, 1, 1), date(2025, 6, 30))
    monkeypatch.setenv("LTV_BASE_CURRENCY", " eur ")
    assert settings.base_currency() == "EUR"


def test_a_base_currency_that_is_not_iso_4217_is_an_input_error(ltv_home, monkeypatch):
    monkeypatch.setenv("LTV_BASE_CURRENCY", "pounds")
    with pytest.raises(InputError, match=r"LTV_BASE_CURRENCY='pounds' is not an ISO 4217"):
        settings.base_currency()
