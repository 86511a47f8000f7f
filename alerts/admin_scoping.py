"""The admin, scoped to the user's care teams, and audited.

Every admin class that shows patient data inherits TeamScopedAdmin and names the path from
its model to the patient's care team (`team_path`, e.g. "patient__care_team"; found by
itself for a model with a `patient`, `alert` or `rule` foreign key). For a user who is not a
superuser it then:

- lists, searches, filters and autocompletes only their teams' objects (list filters on a
  relation offer only the values found among those objects; foreign key and many-to-many
  choices, autocomplete included, only their teams' patients, rules, alerts… and colleagues);
- answers 404 for another team's object at its change, delete and history URLs, exactly as
  for one that does not exist;
- runs actions on the selected objects of their teams only;
- grants a permission on one object only through the role they hold in that object's team
  (alerts.teams.can);
- records in the audit log (monitoring.audit) the patients whose data a list page showed,
  each change page viewed, and every addition, change, deletion and action.

Inlines with foreign keys to patient data mix in ScopedChoicesMixin. A custom view of an
admin (get_urls) fetches its object with get_object (None → Http404) and records what it
shows with monitoring.audit.record.
"""

from __future__ import annotations

from collections import deque

from django.contrib import admin
from django.contrib.admin import widgets
from django.contrib.admin.options import TO_FIELD_VAR
from django.contrib.admin.utils import get_fields_from_path, unquote
from django.contrib.auth import get_permission_codename, get_user_model
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.db import models
from django.http import Http404

from alerts.models import CareTeam, CareTeamMembership
from alerts.teams import can
from monitoring.audit import record, record_for_patients
from monitoring.models import AuditAction, Patient

User = get_user_model()


def team_path_for(model: type[models.Model]) -> str | None:
    """The lookup path from `model` to its care team ("" for CareTeam itself), following
    foreign keys towards Patient; None for models that belong to no team (User, Protocol)."""
    if model is CareTeam:
        return ""
    if model is Patient:
        return "care_team"
    seen, queue = {model}, deque([(model, "")])
    while queue:  # breadth first: Reading.patient wins over Reading.device.patient
        current, prefix = queue.popleft()
        for field in current._meta.get_fields():
            if not (field.many_to_one and field.concrete) or field.related_model in seen:
                continue
            path = f"{prefix}{field.name}"
            if field.related_model is Patient:
                return f"{path}__care_team"
            if field.related_model is CareTeam:
                return path
            seen.add(field.related_model)
            queue.append((field.related_model, f"{path}__"))
    return None


def scope_to_teams(queryset: models.QuerySet, user, team_path: str) -> models.QuerySet:
    """`queryset` narrowed to the objects of `user`'s care teams (all of it for a superuser).

    A subquery, not a join through memberships: no duplicate rows, and it composes with
    any other filter, search or ordering the admin adds."""
    if user.is_active and user.is_superuser:
        return queryset
    teams = CareTeamMembership.objects.filter(user_id=user.pk).values("team_id")
    lookup = f"{team_path}__in" if team_path else "pk__in"
    return queryset.filter(**{lookup: teams})


def scoped_choices(model: type[models.Model], user) -> models.QuerySet | None:
    """The objects of `model` that `user` may pick in a form, or None where the model is not
    team data (protocols) and the default choices stand."""
    if user.is_active and user.is_superuser:
        return None
    if model is User:  # colleagues: the members of the user's teams
        teams = CareTeamMembership.objects.filter(user_id=user.pk).values("team_id")
        return User._default_manager.filter(
            pk__in=CareTeamMembership.objects.filter(team_id__in=teams).values("user_id")
        )
    team_path = team_path_for(model)
    if team_path is None:
        return None
    return scope_to_teams(model._default_manager.all(), user, team_path)


class ScopedRawIdWidget(widgets.ForeignKeyRawIdWidget):
    """The raw id input, whose label (the object's name and a link beside the id) is looked
    up among the objects the user may pick only: an id of another team's object, typed or
    put in the add form's URL (?patient=4), shows no label at all, as a missing one."""

    def __init__(self, rel, admin_site, *, queryset, attrs=None, using=None):
        super().__init__(rel, admin_site, attrs=attrs, using=using)
        self.queryset = queryset

    def label_and_url_for_value(self, value):
        key = self.rel.get_related_field().name
        try:
            self.queryset.using(self.db).get(**{key: value})
        except (ValueError, ValidationError, self.queryset.model.DoesNotExist):
            return "", ""
        return super().label_and_url_for_value(value)


class ScopedChoicesMixin:
    """Foreign key and many-to-many choices limited to the user's teams' objects. The
    queryset also validates a submitted id, so a raw id or a hand-made POST naming another
    team's patient is refused as an invalid choice; a raw id field's label is looked up in
    the same queryset (ScopedRawIdWidget)."""

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if "queryset" not in kwargs:
            queryset = scoped_choices(db_field.related_model, request.user)
            if queryset is not None:
                kwargs["queryset"] = queryset
                if "widget" not in kwargs and db_field.name in self.raw_id_fields:
                    kwargs["widget"] = ScopedRawIdWidget(
                        db_field.remote_field,
                        self.admin_site,
                        queryset=queryset,
                        using=kwargs.get("using"),
                    )
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        if "queryset" not in kwargs:
            queryset = scoped_choices(db_field.related_model, request.user)
            if queryset is not None:
                kwargs["queryset"] = queryset
        return super().formfield_for_manytomany(db_field, request, **kwargs)


class ScopedValuesListFilter(admin.AllValuesFieldListFilter):
    """Django's all-values filter reads a field across a relation from the whole related
    table (every team's values); this one reads it from the admin's scoped queryset."""

    def __init__(self, field, request, params, model, model_admin, field_path):
        super().__init__(field, request, params, model, model_admin, field_path)
        self.lookup_choices = (
            model_admin.get_queryset(request)
            .order_by(field_path)
            .values_list(field_path, flat=True)
            .distinct()
        )


class TeamScopedAdmin(ScopedChoicesMixin, admin.ModelAdmin):
    # Lookup path from the model to its CareTeam; found by team_path_for when None.
    team_path: str | None = None
    # Lookup path from the model to its Patient ("" for Patient itself); derived from
    # team_path when None. None after that: the model holds no patient data to audit.
    patient_path: str | None = None

    def __init__(self, model, admin_site):
        super().__init__(model, admin_site)
        if self.team_path is None:
            self.team_path = team_path_for(model)
        if self.team_path is None:
            raise ImproperlyConfigured(f"{type(self).__name__}: set team_path for {model}")
        if self.patient_path is None and self.team_path.endswith("care_team"):
            self.patient_path = self.team_path.removesuffix("care_team").removesuffix("__")

    # --- What the user sees -----------------------------------------------------------------

    def get_queryset(self, request):
        return scope_to_teams(super().get_queryset(request), request.user, self.team_path)

    def get_search_results(self, request, queryset, search_term):
        queryset, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        # The queryset is scoped already when it comes from get_queryset; the autocomplete
        # view or another admin may hand over one that is not.
        return scope_to_teams(queryset, request.user, self.team_path), may_have_duplicates

    def get_list_filter(self, request):
        return [self._scoped_list_filter(item) for item in super().get_list_filter(request)]

    def _scoped_list_filter(self, item):
        if isinstance(item, tuple | list) and item[1] is admin.RelatedFieldListFilter:
            return (item[0], admin.RelatedOnlyFieldListFilter)
        if not isinstance(item, str):
            return item  # the owner's own filter class decides what it offers
        fields = get_fields_from_path(self.model, item)
        if fields[-1].is_relation:
            return (item, admin.RelatedOnlyFieldListFilter)
        if len(fields) > 1 and not fields[-1].flatchoices:
            return (item, ScopedValuesListFilter)
        return item

    def _get_obj_does_not_exist_redirect(self, request, opts, object_id):
        # Django redirects to the index with "… doesn't exist"; another team's object must
        # look exactly like a missing one, and a guessed URL is a plain 404.
        raise Http404(f"{opts.verbose_name} not found")

    def delete_view(self, request, object_id, extra_context=None):
        # Django asks for the delete permission before it looks the object up; the object's
        # URL answers 404 outside the user's teams whatever they may delete.
        by_pk = TO_FIELD_VAR not in request.GET and TO_FIELD_VAR not in request.POST
        if by_pk and self.get_object(request, unquote(object_id)) is None:
            raise Http404(f"{self.opts.verbose_name} not found")
        return super().delete_view(request, object_id, extra_context)

    # --- Permissions through the role in the object's team -------------------------------

    def team_id_of(self, obj) -> int | None:
        if not self.team_path:
            return obj.pk
        *hops, last = self.team_path.split("__")
        for hop in hops:
            obj = getattr(obj, hop)
            if obj is None:
                return None
        return getattr(obj, f"{last}_id")

    def _team_allows(self, request, obj, action: str) -> bool:
        if obj is None or (request.user.is_active and request.user.is_superuser):
            return True
        team_id = self.team_id_of(obj)
        perm = f"{self.opts.app_label}.{get_permission_codename(action, self.opts)}"
        return team_id is not None and can(request.user, perm, team_id=team_id)

    def has_view_permission(self, request, obj=None):
        return super().has_view_permission(request, obj) and (
            self._team_allows(request, obj, "view") or self._team_allows(request, obj, "change")
        )

    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) and self._team_allows(
            request, obj, "change"
        )

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and self._team_allows(
            request, obj, "delete"
        )

    # --- Actions ------------------------------------------------------------------------

    def get_actions(self, request):
        return {
            name: (self._scoped_action(func, name), name, description)
            for name, (func, name, description) in super().get_actions(request).items()
        }

    def _scoped_action(self, func, name: str):
        def run(modeladmin, request, queryset):
            queryset = queryset.filter(pk__in=modeladmin.get_queryset(request).values("pk"))
            if name == "delete_selected":  # its deletions are recorded by log_deletions
                return func(modeladmin, request, queryset)
            touched = modeladmin._objects_and_patients(queryset)
            response = func(modeladmin, request, queryset)
            modeladmin._record_each(request, touched, AuditAction.CHANGE, fields=[f"action:{name}"])
            return response

        run.__name__ = getattr(func, "__name__", name)
        return run

    # --- Audit --------------------------------------------------------------------------

    def patient_id_of(self, obj) -> int | None:
        if self.patient_path is None:
            return None
        if not self.patient_path:
            return obj.pk
        *hops, last = self.patient_path.split("__")
        for hop in hops:
            obj = getattr(obj, hop)
            if obj is None:
                return None
        return getattr(obj, f"{last}_id")

    def _objects_and_patients(self, objects) -> list[tuple[int, int | None]]:
        """(pk, patient id) of each object: a queryset in one query, rows already loaded
        from their own columns when the patient is one hop away."""
        if self.patient_path is None:
            return []
        if isinstance(objects, models.QuerySet):
            column = self.patient_path or "pk"
            return list(objects.order_by().values_list("pk", column))
        return [(obj.pk, self.patient_id_of(obj)) for obj in objects]

    def _record_each(self, request, touched, action, fields=()) -> None:
        for pk, patient_id in touched:
            record(
                user=request.user,
                patient=patient_id,
                action=action,
                what=self.model,
                object_id=pk,
                fields=fields,
                request=request,
            )

    def _record_object(self, request, obj, action, fields=()) -> None:
        if self.patient_path is not None:
            record(
                user=request.user,
                patient=self.patient_id_of(obj),
                action=action,
                what=obj,
                fields=fields,
                request=request,
            )

    def changelist_view(self, request, extra_context=None):
        response = super().changelist_view(request, extra_context)
        changelist = (getattr(response, "context_data", None) or {}).get("cl")
        if response.status_code == 200 and changelist is not None and self.patient_path is not None:
            shown = list(changelist.result_list)  # evaluated once; the template reuses it
            if "__" in (self.patient_path or ""):
                shown = self.model._default_manager.filter(pk__in=[obj.pk for obj in shown])
            touched = self._objects_and_patients(shown)
            record_for_patients(
                user=request.user,
                patient_ids=sorted({patient_id for _, patient_id in touched if patient_id}),
                action=AuditAction.VIEW,
                what=self.model,
                request=request,
            )
        return response

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        response = super().changeform_view(request, object_id, form_url, extra_context)
        if request.method == "GET" and object_id is not None and response.status_code == 200:
            shown = (getattr(response, "context_data", None) or {}).get("original")
            if shown is not None:
                self._record_object(request, shown, AuditAction.VIEW)
        return response

    def history_view(self, request, object_id, extra_context=None):
        response = super().history_view(request, object_id, extra_context)
        if response.status_code == 200:
            shown = (getattr(response, "context_data", None) or {}).get("object")
            if shown is not None:
                self._record_object(request, shown, AuditAction.VIEW, fields=["history"])
        return response

    def construct_change_message(self, request, form, formsets, add=False):
        # The log message names fields by their labels; the audit keeps their names.
        changed = list(form.changed_data)
        for formset in formsets or []:
            if formset.new_objects or formset.changed_objects or formset.deleted_objects:
                changed.append(formset.model._meta.model_name)
        request._audit_changed_fields = changed
        return super().construct_change_message(request, form, formsets, add)

    def log_addition(self, request, obj, message):
        entry = super().log_addition(request, obj, message)
        self._record_object(request, obj, AuditAction.CREATE)
        return entry

    def log_change(self, request, obj, message):
        entry = super().log_change(request, obj, message)
        fields = getattr(request, "_audit_changed_fields", ())
        self._record_object(request, obj, AuditAction.CHANGE, fields=fields)
        return entry

    def log_deletions(self, request, queryset):
        # Called before the deletion: the rows are still there to say whose they were.
        self._record_each(request, self._objects_and_patients(queryset), AuditAction.DELETE)
        return super().log_deletions(request, queryset)
