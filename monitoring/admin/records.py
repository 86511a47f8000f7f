"""Devices, readings and rules as records: scoped, and read-only where they are history."""

from datetime import UTC, datetime, time, timedelta

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.db.models import Subquery
from django.db.models.functions import Coalesce
from django.http import Http404
from django.shortcuts import redirect
from django.template.defaultfilters import pluralize
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_date

from alerts.admin_scoping import TeamScopedAdmin
from alerts.triage import describe_provenance
from config.admin_lists import BoundedChangeListMixin
from monitoring import rules as rule_kinds
from monitoring.evaluation import unit_of
from monitoring.evaluation.failures import retry_failed_evaluations
from monitoring.models import (
    Device,
    Patient,
    Reading,
    Rule,
    RuleRevision,
)

# Scoped to the user's teams, permissions through their role there, audited: every admin
# of patient data here inherits it (alerts/admin_scoping.py).


@admin.register(Device)
class DeviceAdmin(TeamScopedAdmin):
    """Read-only: a device is registered (its key shown once) and revoked on its patient's
    page, through monitoring.auth; a device added here would have no key."""

    list_display = ["id", "patient", "kind", "model", "serial", "revoked_at", "last_seen_at"]
    list_filter = ["kind"]
    readonly_fields = ["key_hash", "created_at", "last_seen_at"]
    raw_id_fields = ["patient"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class EvaluationFailedFilter(admin.SimpleListFilter):
    title = "evaluation failed"
    parameter_name = "evaluation_failed"

    def lookups(self, request, model_admin):
        return [("yes", "Yes"), ("no", "No")]

    def queryset(self, request, queryset):
        # A failed reading is unevaluated: the partial index reading_unevaluated finds it.
        failed = {"evaluated_at__isnull": True, "evaluation_failed_at__isnull": False}
        if self.value() == "yes":
            return queryset.filter(**failed)
        if self.value() == "no":
            return queryset.exclude(**failed)
        return queryset


# --- The readings list: a bounded window, never the whole history (issue 15.2) -----------

# Display periods of the list, not clinical numbers: what it opens on, and what may be chosen.
PERIODS = {"24h": ("Last 24 hours", timedelta(hours=24)), "7d": ("Last 7 days", timedelta(days=7))}
PERIODS |= {
    "30d": ("Last 30 days", timedelta(days=30)),
    "90d": ("Last 90 days", timedelta(days=90)),
}
DEFAULT_PERIOD = "7d"
# Without a patient chosen, the list looks among this many of the latest stored readings only
# (newest first by id, the primary key): no index serves every patient's readings by measured
# time, and a sort of a week of every patient's readings grows with the system.
LATEST_STORED = 10_000


class PatientFilter(admin.SimpleListFilter):
    """One patient's readings (?patient=<id>, linked from the patient page): the list is then
    ordered by reading_patient_time and reads the page's rows only."""

    title = "patient"
    parameter_name = "patient"

    def lookups(self, request, model_admin):
        # Offered only when chosen (a typed or linked id): Django applies a filter that
        # offers something, and an id that is not one must list nothing, not everyone's.
        if self.value() is None:
            return []
        patient_id = self.patient_id()
        patient = Patient.objects.filter(pk=patient_id).only("external_id").first()
        return [(self.value(), patient.external_id if patient else f"#{self.value()}")]

    def patient_id(self) -> int | None:
        value = self.value()
        # isascii too: isdigit() is true of "²", which int() refuses.
        if value and value.isascii() and value.isdigit() and int(value) < 2**63:
            return int(value)
        return None

    def queryset(self, request, queryset):
        if self.value() is not None and self.patient_id() is None:
            return queryset.none()
        if self.patient_id() is not None:
            return queryset.filter(patient_id=self.patient_id())
        return queryset


class BeforeFilter(admin.SimpleListFilter):
    """?before=<YYYY-MM-DD>: read by PeriodFilter (the window's end); offers no choices, so
    Django only takes its parameter off the lookups (it calls no queryset() of it)."""

    title = "before"
    parameter_name = "before"

    def lookups(self, request, model_admin):
        return []

    def queryset(self, request, queryset):
        return queryset


class PeriodFilter(admin.SimpleListFilter):
    """Measured within the last 24 hours, 7 days (the default), 30 or 90 days, ending at
    ?before=<YYYY-MM-DD> (the start of that day, UTC) when given: an older window is
    reached by date, never by reading every row."""

    title = "measured"
    parameter_name = "period"

    def lookups(self, request, model_admin):
        return [(key, label) for key, (label, _) in PERIODS.items()]

    def choices(self, changelist):
        current = self.value() if self.value() in PERIODS else DEFAULT_PERIOD
        for key, label in self.lookup_choices:
            yield {
                "selected": current == key,
                "query_string": changelist.get_query_string({self.parameter_name: key}),
                "display": label,
            }

    def queryset(self, request, queryset):
        _, length = PERIODS.get(self.value(), PERIODS[DEFAULT_PERIOD])
        end = window_end(request)
        queryset = queryset.filter(measured_at__gte=end - length, measured_at__lt=end)
        if PatientFilter.parameter_name not in request.GET:
            # Every patient's: among the latest stored only, found by a backward scan of the
            # primary key (the LATEST_STORED-th newest id; fewer stored: from the first).
            # Here, not in PatientFilter: Django skips a filter that offers no choices.
            nth_latest = Reading.objects.order_by("-id").values("id")[LATEST_STORED - 1 :][:1]
            queryset = queryset.filter(id__gte=Coalesce(Subquery(nth_latest), 0))
        return queryset


def window_end(request) -> datetime:
    """Now, or the start (UTC) of the ?before= day."""
    try:
        before = parse_date(request.GET.get(BeforeFilter.parameter_name, ""))
    except ValueError:  # well formed but no such day (2026-02-30)
        before = None
    if before is None:
        return timezone.now()
    return datetime.combine(before, time.min, tzinfo=UTC)


@admin.register(Reading)
class ReadingAdmin(BoundedChangeListMixin, TeamScopedAdmin):
    list_display = [
        "id",
        "patient",
        "metric",
        "value",
        "systolic",
        "diastolic",
        "unit",
        "measured_at",
        "provenance",
        "evaluated_at",
        "evaluation_failed_at",
    ]
    list_filter = [
        PatientFilter,
        PeriodFilter,
        BeforeFilter,
        "metric",
        "entry",
        "source",
        EvaluationFailedFilter,
    ]
    list_select_related = ["patient", "device"]
    list_per_page = 100
    raw_id_fields = ["patient", "device"]
    readonly_fields = ["evaluated_at", "evaluation_failed_at", "evaluation_error"]
    actions = ["retry_evaluation"]

    def get_ordering(self, request):
        # One patient's: reading_patient_time (patient, -measured_at, -id), read from the
        # page's first row on. Every patient's: the latest stored first, by the primary key.
        if PatientFilter.parameter_name in request.GET:
            return ["-measured_at", "-id"]
        return ["-id"]

    @admin.display(description="Came from")
    def provenance(self, reading: Reading) -> str:
        return describe_provenance(
            source=reading.source,
            entry=reading.entry,
            device_serial=reading.device_serial,
            trend=reading.trend,
        )

    # Readings are immutable clinical records.
    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    # Whoever sees a reading may have its evaluation retried: it changes nothing of the
    # record, and evaluating twice changes nothing more than once.
    @admin.action(description="Retry evaluation of the selected readings", permissions=["view"])
    def retry_evaluation(self, request, queryset):
        selected = list(queryset.values_list("pk", flat=True))
        retried = retry_failed_evaluations(reading_ids=selected)
        if retried:
            self.message_user(
                request, f"Evaluation retried: {retried} reading{pluralize(retried)}."
            )
        if len(selected) > retried:
            left = len(selected) - retried
            self.message_user(
                request,
                f"Left alone {left} reading{pluralize(left)} (evaluation had not failed).",
                messages.WARNING,
            )


class RuleRevisionInline(admin.TabularInline):
    model = RuleRevision
    extra = 0
    can_delete = False
    readonly_fields = [
        "version",
        "parameters",
        "severity",
        "active",
        "changed_by",
        "changed_at",
        "note",
    ]

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Rule)
class RuleAdmin(TeamScopedAdmin):
    """Read-only here: tailoring goes through change_rule (the API) so every change is a
    new version; the patient page of the workspace will edit through it too."""

    list_display = ["id", "patient", "key", "kind", "metric", "severity", "active", "version"]
    list_filter = ["kind", "metric", "severity", "active"]
    search_fields = ["key", "patient__external_id"]
    readonly_fields = ["in_words", *(f.name for f in Rule._meta.fields)]
    inlines = [RuleRevisionInline]

    @admin.display(description="What it does")
    def in_words(self, rule: Rule) -> str:
        """The rule as a sentence, as on its page (the stored parameters below it)."""
        return rule_kinds.sentence(rule, unit=unit_of(rule.metric))

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def history_view(self, request, object_id, extra_context=None):
        """A rule's history is its versions, in words, on its page (issue 14.8): the admin's
        own log holds nothing for it (tailoring writes RuleRevisions, not log entries)."""
        rule = self.get_object(request, unquote(object_id))
        if rule is None or not self.has_view_or_change_permission(request, rule):
            raise Http404("rule not found")
        url = reverse("admin:monitoring_patient_rule", args=[rule.patient_id, rule.pk])
        return redirect(f"{url}#rule-history")
