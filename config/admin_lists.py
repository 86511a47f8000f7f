"""Changelists over tables that grow with history (readings, nudges, slots, notifications,
the audit log): a page costs what it shows, never the whole table.

Django's changelist counts the filtered set (paginator.count) and, by default, the whole
table again (show_full_result_count); a date_hierarchy reads the distinct dates of every row.
Over 13 million readings those took 57–60 s, past gunicorn's timeout (issue 15). Here:

- BoundedPaginator counts at most the rows up to the next page (a COUNT over a LIMIT
  subquery, read from the index that serves the list's order), so the pagination offers
  the pages before this one and "next" only;
- BoundedChangeListMixin turns off the full count and "show all".
"""

from __future__ import annotations

from django.contrib.admin.views.main import PAGE_VAR, ChangeList
from django.core.paginator import Paginator
from django.utils.functional import cached_property


class BoundedPaginator(Paginator):
    """Counts no further than one row past the current page: `count` is exact when the list
    ends before then, else it says only that a next page exists."""

    def __init__(self, object_list, per_page, *, page_number: int = 1, **kwargs):
        super().__init__(object_list, per_page, **kwargs)
        self.page_number = max(page_number, 1)

    @cached_property
    def count(self) -> int:
        limit = self.page_number * self.per_page + 1
        return self.object_list[:limit].count()

    @property
    def has_more(self) -> bool:
        return self.count > self.page_number * self.per_page


class BoundedChangeList(ChangeList):
    """The links of the bounded pagination (admin/<app>/pagination.html)."""

    @property
    def bounded(self) -> bool:
        return isinstance(self.paginator, BoundedPaginator)

    @property
    def previous_page_query(self) -> str:
        return self.get_query_string({PAGE_VAR: self.page_num - 1}) if self.page_num > 1 else ""

    @property
    def next_page_query(self) -> str:
        if not self.paginator.has_more:
            return ""
        return self.get_query_string({PAGE_VAR: self.page_num + 1})


class BoundedChangeListMixin:
    """For a ModelAdmin of a growing table: no full count, no "show all", the bounded
    paginator. Its list must be ordered by an index (its get_ordering) and should open on a
    bounded window (its default filters)."""

    show_full_result_count = False
    list_max_show_all = 0  # "Show all" would read the whole filtered set
    date_hierarchy = None  # its date list is a DISTINCT over every row
    paginator = BoundedPaginator

    def get_changelist(self, request, **kwargs):
        return BoundedChangeList

    def get_paginator(self, request, queryset, per_page, orphans=0, allow_empty_first_page=True):
        try:
            page_number = int(request.GET.get(PAGE_VAR, 1))
        except ValueError:
            page_number = 1
        return self.paginator(
            queryset,
            per_page,
            page_number=page_number,
            orphans=0,
            allow_empty_first_page=allow_empty_first_page,
        )
