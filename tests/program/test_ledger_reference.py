"""The billing reference the ledger reads (monitoring/rpm_billing.yaml via program.codes):
every code has its rule and its rate entry, every fact names sources that exist, and no
figure is claimed verified that was not read in the rule itself."""

from decimal import Decimal

import yaml

from program.codes import REFERENCE_PATH, billing_reference


def reference_yaml() -> dict:
    with REFERENCE_PATH.open() as file:
        return yaml.safe_load(file)


def test_the_2026_code_set_as_the_ledger_reads_it():
    ref = billing_reference()

    assert [(c.code, c.min_days, c.max_days) for c in ref.device_codes] == [
        ("99445", 2, 15),
        ("99454", 16, 30),
    ]
    assert (ref.period_days, ref.setup_code, ref.setup_min_days) == (30, "99453", 2)
    m = ref.management
    assert (m.first_ten, m.first_ten_min_minutes, m.first_twenty, m.first_twenty_min_minutes) == (
        "99470",
        10,
        "99457",
        20,
    )
    assert (m.add_on, m.add_on_minutes, m.requires_interactive) == ("99458", 20, True)


def test_every_code_has_a_rate_entry_with_its_status():
    ref = billing_reference()

    assert set(ref.rates) == set(ref.all_codes)
    assert all(rate is None or rate > Decimal(0) for rate in ref.rates.values())
    # Approximate figures from summaries of the final rule, not its Addendum B.
    assert ref.rates_status == "secondary"
    assert reference_yaml()["national_average_rates"]["approximate"] is True


def _cited(node) -> list[str]:
    if isinstance(node, dict):
        found = list(node.get("sources", [])) if isinstance(node.get("sources"), list) else []
        return found + [s for value in node.values() for s in _cited(value)]
    if isinstance(node, list):
        return [s for value in node for s in _cited(value)]
    return []


def test_every_source_cited_is_described():
    data = reference_yaml()
    described = set(data["sources"])

    cited = set(_cited({k: v for k, v in data.items() if k != "sources"}))

    assert cited
    assert cited <= described


def test_nothing_is_verified_that_was_not_read_in_the_rule():
    # The rule's RPM section and Addendum B could not be read (rpm_billing.yaml,
    # cms_2026_pfs_final): every status is secondary, unverified or an engineering choice.
    statuses = set()

    def walk(node):
        if isinstance(node, dict):
            if isinstance(node.get("status"), str):
                statuses.add(node["status"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(reference_yaml())
    assert statuses <= {"secondary", "unverified", "engineering_choice"}
