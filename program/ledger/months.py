"""Calendar months: the ledger's management months and the months its lines belong to."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta


@dataclass(frozen=True, order=True)
class Month:
    """A calendar month; its days are local days of each patient's own zone."""

    year: int
    month: int

    @classmethod
    def of(cls, day: date) -> Month:
        return cls(day.year, day.month)

    @classmethod
    def parse(cls, text: str) -> Month:
        """'2026-03' -> Month(2026, 3); ValueError otherwise."""
        year, _, month = text.partition("-")
        if len(year) != 4 or len(month) != 2 or not (year + month).isdigit():
            raise ValueError(text)
        return cls(date(int(year), int(month), 1).year, int(month))

    @property
    def first(self) -> date:
        return date(self.year, self.month, 1)

    @property
    def last(self) -> date:
        return self.next().first - timedelta(days=1)

    def next(self) -> Month:
        return Month(self.year + self.month // 12, self.month % 12 + 1)

    def previous(self) -> Month:
        return Month.of(self.first - timedelta(days=1))

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"
