"""Readings: one table for every metric, immutable once stored."""

from datetime import datetime

from django.db import models
from django.db.models import Q, Subquery

from monitoring.models.patients import Device, Patient


class Metric(models.TextChoices):
    GLUCOSE = "glucose", "Blood glucose"
    BLOOD_PRESSURE = "blood_pressure", "Blood pressure"
    WEIGHT = "weight", "Body weight"
    INR = "inr", "INR"
    HEART_RATE = "heart_rate", "Heart rate"
    SPO2 = "spo2", "SpO2"
    TEMPERATURE = "temperature", "Body temperature"
    DOSE = "dose", "Medication dose"


class GlucoseContext(models.TextChoices):
    FASTING = "fasting", "Fasting"
    BEFORE_MEAL = "before_meal", "Before a meal"
    AFTER_MEAL = "after_meal", "After a meal"
    BEDTIME = "bedtime", "Bedtime"
    RANDOM = "random", "Random"


class DoseStatus(models.TextChoices):
    TAKEN = "taken", "Taken"
    SKIPPED = "skipped", "Skipped"


class ReadingSource(models.TextChoices):
    """Which door a reading came in by (the credential's kind, or the interface)."""

    APP = "app", "Patient app"
    DEVICE = "device", "Device key"
    FHIR = "fhir", "FHIR client"
    NIGHTSCOUT = "nightscout", "Nightscout uploader"


class Entry(models.TextChoices):
    """How the value was entered: only device readings count as RPM transmissions."""

    DEVICE = "device", "Measured by a device"
    MANUAL = "manual", "Typed by a person"


class ReadingQuerySet(models.QuerySet):
    def newest(self, count: int, *, since: datetime) -> list:
        """The first `count` rows of this queryset, ordered newest first (measured_at, then
        id, descending), looked for from `since` on first, and before it only if fewer.

        On PostgreSQL an unbounded "newest first" opens every monthly partition (the DEFAULT
        partition keeps the planner from reading them in order and stopping: one index
        descent each, a cost growing with every month of history); bounded by `since`, it
        reads the recent partitions only. The second query runs only for a sparse metric.
        """
        rows = list(self.filter(measured_at__gte=since)[:count])
        if len(rows) < count:
            rows += list(self.filter(measured_at__lt=since)[: count - len(rows)])
        return rows

    def by_client_id(self, *, patient_id: int, client_id) -> "ReadingQuerySet":
        """The patient's reading of this client id (none or one), found through its key.

        The readings have no index on client ids (their unique key lives in ReadingKey:
        docs/retention.md); the key names the reading's id and measured_at, which on
        PostgreSQL select its one partition (pruned at run time) and its primary-key entry.
        Filtering the readings by client_id instead reads the patient's whole history.
        """
        key = ReadingKey.objects.filter(patient_id=patient_id, client_id=client_id)
        return self.filter(
            patient_id=patient_id,
            id=Subquery(key.values("reading_id")[:1]),
            measured_at=Subquery(key.values("measured_at")[:1]),
        )


class Reading(models.Model):
    """One measurement or dose event. Immutable once stored.

    One table for every metric. `value` is in the metric's canonical unit (blood pressure
    uses `systolic` / `diastolic`, both mm[Hg]); `sent_value` / `sent_unit` keep what the
    client sent. `fingerprint` identifies the content so a re-sent id with other content is
    reported as a conflict instead of silently overwriting or duplicating.
    """

    patient = models.ForeignKey(
        Patient, on_delete=models.CASCADE, related_name="readings", db_index=False
    )
    client_id = models.UUIDField()
    metric = models.CharField(max_length=16, choices=Metric.choices)
    value = models.FloatField(null=True, blank=True)
    unit = models.CharField(max_length=16, blank=True)
    systolic = models.FloatField(null=True, blank=True)
    diastolic = models.FloatField(null=True, blank=True)
    sent_value = models.FloatField(null=True, blank=True)
    sent_unit = models.CharField(max_length=16, blank=True)
    context = models.CharField(max_length=16, choices=GlucoseContext.choices, blank=True)
    medication = models.CharField(max_length=64, blank=True)
    dose_status = models.CharField(max_length=8, choices=DoseStatus.choices, blank=True)
    scheduled_for = models.DateTimeField(null=True, blank=True)
    measured_at = models.DateTimeField()
    # The UTC offset the client stated, so the local clock time it saw can be shown.
    utc_offset_minutes = models.SmallIntegerField(default=0)
    received_at = models.DateTimeField()
    source = models.CharField(max_length=16, choices=ReadingSource.choices)
    entry = models.CharField(max_length=8, choices=Entry.choices)
    # Only a minority of readings name a registered device: the partial index in Meta serves
    # the device's readings (and SET NULL on its deletion) without indexing every NULL.
    device = models.ForeignKey(
        Device,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="readings",
        db_index=False,
    )
    device_serial = models.CharField(max_length=120, blank=True)
    # A CGM's trend arrow as its uploader sent it (Nightscout's `direction`), shown beside it.
    trend = models.CharField(max_length=24, blank=True)
    # A heart rate taken with a blood pressure points at that reading's client id.
    part_of = models.UUIDField(null=True, blank=True)
    fingerprint = models.CharField(max_length=64)
    evaluated_at = models.DateTimeField(null=True, blank=True)
    # Set, with evaluated_at left NULL, when evaluating this reading alone still raised: the
    # sweep then leaves it (no retry loop), /healthz counts it, and an operator retries it
    # from the admin once the cause is fixed (monitoring.evaluation.retry_failed_evaluations).
    evaluation_failed_at = models.DateTimeField(null=True, blank=True)
    # The error's class and the line that raised it, never its message: a message may quote
    # the reading's value or date. A database default: ingest's INSERT names its columns.
    evaluation_error = models.CharField(max_length=200, blank=True, default="", db_default="")

    objects = ReadingQuerySet.as_manager()

    class Meta:
        # The idempotency key, one reading per client id per patient whatever races, is held
        # by ReadingKey's primary key: on PostgreSQL this table is partitioned by month of
        # measured_at (docs/retention.md), and a partitioned table's unique keys must include
        # the partition key, which (patient, client id) does not.
        constraints = [
            models.CheckConstraint(
                condition=~Q(metric="blood_pressure")
                | Q(systolic__isnull=False, diastolic__isnull=False),
                name="reading_blood_pressure_has_components",
            ),
        ]
        indexes = [
            # "This patient's readings of this metric in this time window" (rules, charts, API).
            models.Index(
                fields=["patient", "metric", "-measured_at"], name="reading_patient_metric_time"
            ),
            # "This patient's readings, every metric, newest first" (the readings lists, whose
            # cursor orders by measured_at then id).
            models.Index(fields=["patient", "-measured_at", "-id"], name="reading_patient_time"),
            models.Index(
                fields=["device"], condition=Q(device__isnull=False), name="reading_device"
            ),
            # The evaluation sweep reads only the (few) rows still waiting; /healthz counts
            # them, failed ones included, and the admin's "evaluation failed" filter finds
            # those here too (a failed reading stays unevaluated).
            # Led by the patient: one patient's pending readings are found in its own slice
            # of the index, whatever the rest of the system's backlog.
            models.Index(
                fields=["patient", "received_at"],
                condition=Q(evaluated_at__isnull=True),
                name="reading_unevaluated",
            ),
        ]
        ordering = ["-measured_at", "-id"]

    def __str__(self) -> str:
        return f"reading {self.pk}"

    @property
    def is_evaluated(self) -> bool:
        return self.evaluated_at is not None


class ReadingKey(models.Model):
    """The idempotency key of a stored reading: one row per (patient, client id), ever.

    Claimed with `INSERT … ON CONFLICT DO NOTHING` in the same statement as the reading's own
    insert (monitoring.ingest.store), so whichever request claims the key is the one that
    stores the reading, however many retries race. It holds what telling a re-sent item
    apart needs (the fingerprint) and where the reading is (its id and measured_at, which on
    PostgreSQL name its partition), so a duplicate or a conflict is classified here without
    touching the readings table. Not a foreign key to Reading: PostgreSQL cannot reference
    `id` alone on a table partitioned by time. Kept when raw CGM readings are replaced by
    their hourly summary, so a late retry of one is still a duplicate, not a new reading.
    """

    pk = models.CompositePrimaryKey("patient_id", "client_id")
    # The primary key, led by the patient, serves the patient's keys: no index of its own.
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="+", db_index=False)
    client_id = models.UUIDField()
    reading_id = models.BigIntegerField()
    measured_at = models.DateTimeField()
    fingerprint = models.CharField(max_length=64)

    def __str__(self) -> str:
        return f"reading key {self.reading_id}"


class DeviceDay(models.Model):
    """A calendar day, in the patient's zone, on which the patient sent at least one
    physiologic reading measured by a device (`entry: device`; medication doses are not
    physiologic data): what the RPM device codes count (program/, issue 13).

    Written by the statement that stores the readings (monitoring.ingest.store), for the
    readings it created, with the day in the patient's zone at the time of the upload; a
    re-sent reading adds nothing. Kept when raw readings are removed by retention: the day
    is the billing evidence, not the reading.
    """

    pk = models.CompositePrimaryKey("patient_id", "day")
    # The primary key, led by the patient, serves "this patient's days in a period".
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="+", db_index=False)
    day = models.DateField()

    class Meta:
        ordering = ["patient", "day"]

    def __str__(self) -> str:
        return f"patient {self.patient_id} device data on {self.day}"


class CgmHourlySummary(models.Model):
    """One patient's CGM glucose over one clock hour (UTC): what replaces the raw readings.

    Written only where the clinic chose to replace raw CGM readings older than
    VIGIL_CGM_RAW_REPLACED_AFTER (monitoring.retention; off by default). Sums rather than a
    mean and a deviation, so that readings of an hour replaced in two runs (a late upload)
    add up exactly: mean = total / count, variance = total_of_squares / count - mean².
    """

    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="+", db_index=False)
    hour = models.DateTimeField()
    unit = models.CharField(max_length=16)
    count = models.PositiveIntegerField()
    total = models.FloatField()
    total_of_squares = models.FloatField()
    minimum = models.FloatField()
    maximum = models.FloatField()

    class Meta:
        constraints = [
            # One row per patient and hour; also serves "this patient's hours in a window".
            models.UniqueConstraint(fields=["patient", "hour"], name="cgm_summary_patient_hour")
        ]
        ordering = ["patient", "hour"]

    def __str__(self) -> str:
        return f"CGM hour summary {self.pk}"

    @property
    def mean(self) -> float:
        return self.total / self.count

    @property
    def standard_deviation(self) -> float:
        return max(self.total_of_squares / self.count - self.mean**2, 0.0) ** 0.5
