"""A patient's own rules: copied from protocol defaults, tailored by clinicians, versioned."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from monitoring import rules as rule_kinds
from monitoring.models import Patient, Protocol, Rule, RuleRevision
from monitoring.protocols import RuleTemplate, protocol_templates, template_for


class StaleRule(Exception):
    """The rule was changed since the version the clinician saw."""

    def __init__(self, current_version: int):
        super().__init__(current_version)
        self.current_version = current_version


def first_check_at(kind: str, parameters: dict, now: datetime) -> datetime | None:
    """Scheduled kinds get a deadline for the sweep (the kind's own, or at once);
    reading-driven kinds none."""
    return rule_kinds.KINDS[kind].first_check_at(parameters, now)


def apply_protocols(*, patient: Patient, codes: list[str], now: datetime | None = None) -> int:
    """Give the patient their own copy of each protocol's default rules.

    Writes: Rule and RuleRevision (version 1) rows. A rule the patient already has (same
    key, e.g. from another protocol) is kept as it is. Returns how many rules were added.
    """
    now = now or timezone.now()
    protocols = {p.code: p for p in Protocol.objects.for_codes(codes)}
    existing = set(patient.rules.values_list("key", flat=True))
    new_rules = []
    for code in codes:
        for template in protocol_templates()[code]:
            if template.key in existing:
                continue
            existing.add(template.key)
            new_rules.append(_rule_from(template, patient, protocols.get(code), now))
    with transaction.atomic():
        # Two concurrent enrolments cannot copy a rule twice: (patient, key) is unique.
        Rule.objects.bulk_create(new_rules, ignore_conflicts=True)
        fresh = Rule.objects.filter(
            patient=patient, key__in=[r.key for r in new_rules], revisions__isnull=True
        ).select_related("protocol")
        RuleRevision.objects.bulk_create(
            [
                RuleRevision(
                    rule=rule,
                    version=rule.version,
                    parameters=rule.parameters,
                    severity=rule.severity,
                    active=rule.active,
                    note=f"{rule.protocol.code} protocol default" if rule.protocol else "",
                )
                for rule in fresh
            ],
            ignore_conflicts=True,
        )
    return len(new_rules)


def _rule_from(
    template: RuleTemplate, patient: Patient, protocol: Protocol | None, now: datetime
) -> Rule:
    """The patient's own copy of a protocol default, unsaved."""
    return Rule(
        patient=patient,
        key=template.key,
        protocol=protocol,
        kind=template.kind,
        metric=template.metric,
        severity=template.severity,
        group=template.group,
        title=template.title,
        parameters=template.parameters,
        default_parameters=template.parameters,
        reference=template.reference,
        source=template.source,
        next_check_at=first_check_at(template.kind, template.parameters, now),
    )


def add_reference_rule(*, patient: Patient, key: str, note: str) -> Rule:
    """Give the patient one protocol default rule outside enrolment (e.g. the missed-dose
    rule when a critical medication plan is first missed), with its reference and source.
    Writes: Rule, RuleRevision (version 1). Raises IntegrityError if the patient has it."""
    rule = _rule_from(template_for(key), patient, None, timezone.now())
    with transaction.atomic():
        rule.save(force_insert=True)
        RuleRevision.objects.create(
            rule=rule,
            version=1,
            parameters=rule.parameters,
            severity=rule.severity,
            active=True,
            note=note,
        )
    return rule


def add_rule(
    *,
    patient: Patient,
    key: str,
    kind: str,
    metric: str,
    severity: str,
    group: str,
    title: str,
    parameters: dict,
    user=None,
    note: str = "",
) -> Rule:
    """A clinician's own rule for the patient. Raises InvalidParameters with a reason per
    parameter. Writes: Rule, RuleRevision (version 1)."""
    parameters = rule_kinds.validate_parameters(kind, parameters, metric=metric)
    now = timezone.now()
    with transaction.atomic():
        rule = Rule.objects.create(
            patient=patient,
            key=key,
            kind=kind,
            metric=metric,
            severity=severity,
            group=group,
            title=title,
            parameters=parameters,
            updated_by=user,
            next_check_at=first_check_at(kind, parameters, now),
        )
        RuleRevision.objects.create(
            rule=rule,
            version=1,
            parameters=parameters,
            severity=severity,
            active=True,
            changed_by=user,
            note=note,
        )
    return rule


def change_rule(
    *,
    rule: Rule,
    user=None,
    parameters: dict | None = None,
    severity: str | None = None,
    active: bool | None = None,
    title: str | None = None,
    note: str = "",
    expected_version: int | None = None,
) -> Rule:
    """Tailor a rule: a new version with its revision row. Raises InvalidParameters, and
    StaleRule when `expected_version` (the version the clinician saw) is no longer current.

    Writes: Rule (version + 1, under a row lock: two clinicians editing at once each make
    their own version, in turn, and both versions are in the revisions; with the version they
    saw, the second is refused instead of silently replacing the first's), RuleRevision.
    """
    if parameters is not None:
        parameters = rule_kinds.validate_parameters(rule.kind, parameters, metric=rule.metric)
    with transaction.atomic():
        current = Rule.objects.select_for_update().get(pk=rule.pk)
        if expected_version is not None and expected_version != current.version:
            raise StaleRule(current.version)
        current.parameters = current.parameters if parameters is None else parameters
        current.severity = severity or current.severity
        current.active = current.active if active is None else active
        current.title = title or current.title
        current.version += 1
        current.updated_by = user
        if current.next_check_at is None:
            current.next_check_at = first_check_at(current.kind, current.parameters, timezone.now())
        elif parameters is not None and rule_kinds.is_scheduled(current.kind):
            # Checked again by the next sweep with the new values, which then sets the deadline
            # they imply: a shorter missing-data limit must not wait for the longer one.
            current.next_check_at = timezone.now()
        current.save()
        RuleRevision.objects.create(
            rule=current,
            version=current.version,
            parameters=current.parameters,
            severity=current.severity,
            active=current.active,
            changed_by=user,
            note=note,
        )
    return current
