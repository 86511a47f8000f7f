"""The RPM billing reference (monitoring/rpm_billing.yaml), loaded once, as typed values.

Every threshold the ledger, the panel and the outreach job apply is read from here; a file
that lacks one fails at load, not in use.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from pathlib import Path

import yaml

REFERENCE_PATH = Path(__file__).resolve().parent.parent / "monitoring" / "rpm_billing.yaml"


@dataclass(frozen=True)
class DeviceCode:
    code: str
    min_days: int
    max_days: int


@dataclass(frozen=True)
class ManagementCodes:
    first_ten: str  # 99470
    first_ten_min_minutes: int
    first_twenty: str  # 99457
    first_twenty_min_minutes: int
    add_on: str  # 99458
    add_on_minutes: int
    requires_interactive: bool


@dataclass(frozen=True)
class BillingReference:
    period_days: int
    device_codes: tuple[DeviceCode, ...]  # by min_days
    setup_code: str
    setup_min_days: int
    management: ManagementCodes
    rates: dict[str, Decimal | None]
    rates_status: str

    @property
    def full_period_days(self) -> int:
        """The days with data the higher device code needs (16): "above the line"."""
        return max(code.min_days for code in self.device_codes)

    def device_code_for(self, days: int) -> str | None:
        """The device-supply code a period with `days` days of data earns, or None."""
        for code in self.device_codes:
            if code.min_days <= days <= code.max_days:
                return code.code
        return None

    @property
    def all_codes(self) -> tuple[str, ...]:
        m = self.management
        return (
            *(code.code for code in self.device_codes),
            self.setup_code,
            m.first_ten,
            m.first_twenty,
            m.add_on,
        )


def _value(node) -> object:
    return node["value"] if isinstance(node, dict) else node


def parse_reference(data: dict) -> BillingReference:
    device = data["device_supply"]
    codes = tuple(
        sorted(
            (
                DeviceCode(str(c["code"]), int(c["min_days"]), int(c["max_days"]))
                for c in device["codes"]
            ),
            key=lambda c: c.min_days,
        )
    )
    by_code = {str(c["code"]): c for c in data["treatment_management"]["codes"]}
    add_on = next(c for c in by_code.values() if "add_on_to" in c)
    first_twenty = by_code[str(add_on["add_on_to"])]
    first_ten = next(c for c in by_code.values() if c is not add_on and c is not first_twenty)
    management = ManagementCodes(
        first_ten=str(first_ten["code"]),
        first_ten_min_minutes=int(first_ten["min_minutes"]),
        first_twenty=str(first_twenty["code"]),
        first_twenty_min_minutes=int(first_twenty["min_minutes"]),
        add_on=str(add_on["code"]),
        add_on_minutes=int(add_on["minutes_per_unit"]),
        requires_interactive=bool(
            _value(data["treatment_management"]["requires_interactive_communication"])
        ),
    )
    rates = data["national_average_rates"]
    return BillingReference(
        period_days=int(_value(device["period_days"])),
        device_codes=codes,
        setup_code=str(data["setup"]["code"]),
        setup_min_days=int(data["setup"]["min_days"]),
        management=management,
        rates={
            str(code): None if rate is None else Decimal(str(rate))
            for code, rate in rates["rates"].items()
        },
        rates_status=str(rates["status"]),
    )


@cache
def billing_reference() -> BillingReference:
    with REFERENCE_PATH.open() as file:
        return parse_reference(yaml.safe_load(file))
