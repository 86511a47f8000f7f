"""The patient-facing catalogues (config/locale): every language of settings.LANGUAGES has a
.po and its compiled .mo, committed; the .mo says what the .po says; German is complete.

The comparison reads the .po here and the .mo with Python's own gettext, so it needs no gettext
tools (a checkout has none); where msgfmt is installed it also compiles each .po with its
checks (placeholders kept, header well formed) and compares the result.
"""

from __future__ import annotations

import ast
import gettext
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import translation

from monitoring.models import Metric
from monitoring.nudges import placeholders_of
from monitoring.nudges.texts import DOSE_WHAT, MEASUREMENT_WHAT, SOMETHING

LOCALE = Path(settings.BASE_DIR) / "config" / "locale"
LANGUAGES = [code for code, _ in settings.LANGUAGES]


@dataclass
class Entry:
    flags: set[str] = field(default_factory=set)
    context: str | None = None
    msgid: str = ""
    msgid_plural: str | None = None
    msgstr: dict[int, str] = field(default_factory=dict)


def read_po(path: Path) -> list[Entry]:
    """The entries of a .po file (the subset of the format makemessages writes: flags,
    msgctxt, msgid, msgid_plural, msgstr and msgstr[n], strings continued on following
    lines). Obsolete (#~) entries are left out, as msgfmt leaves them out."""
    entries: list[Entry] = []
    entry, target = Entry(), None
    for line in [*path.read_text(encoding="utf-8").splitlines(), ""]:
        line = line.strip()
        if not line:
            if target is not None:
                entries.append(entry)
            entry, target = Entry(), None
        elif line.startswith("#,"):
            entry.flags |= {flag.strip() for flag in line[2:].split(",")}
        elif line.startswith("#"):
            continue
        elif line.startswith('"'):
            _append(entry, target, ast.literal_eval(line))
        else:
            keyword, _, literal = line.partition(" ")
            target = keyword
            _append(entry, target, ast.literal_eval(literal), start=True)
    return entries


def _append(entry: Entry, target: str, text: str, start: bool = False) -> None:
    if target == "msgctxt":
        entry.context = text if start else entry.context + text
    elif target == "msgid":
        entry.msgid = text if start else entry.msgid + text
    elif target == "msgid_plural":
        entry.msgid_plural = text if start else entry.msgid_plural + text
    else:  # msgstr or msgstr[n]
        index = int(target[7:-1]) if target.startswith("msgstr[") else 0
        entry.msgstr[index] = text if start else entry.msgstr[index] + text


def catalogue_of(entries: list[Entry]) -> dict:
    """What msgfmt compiles the entries into, keyed as Python's gettext keys its catalogue:
    the translated, non-fuzzy entries ("context\\x04msgid"; (msgid, n) for plural forms)."""
    catalogue = {}
    for entry in entries:
        if "fuzzy" in entry.flags or not any(entry.msgstr.values()):
            continue
        msgid = entry.msgid if entry.context is None else f"{entry.context}\x04{entry.msgid}"
        if entry.msgid_plural is None:
            catalogue[msgid] = entry.msgstr[0]
        else:
            catalogue |= {(msgid, n): text for n, text in entry.msgstr.items()}
    return catalogue


def compiled(mo: Path) -> dict:
    with mo.open("rb") as file:
        return dict(gettext.GNUTranslations(file)._catalog)


def po_and_mo(language: str) -> tuple[Path, Path]:
    folder = LOCALE / language / "LC_MESSAGES"
    return folder / "django.po", folder / "django.mo"


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_committed_mo_says_what_the_po_says(language):
    po, mo = po_and_mo(language)
    assert po.is_file() and mo.is_file(), f"{language}: compile with manage.py compilemessages"

    assert compiled(mo) == catalogue_of(read_po(po)), (
        f"{mo} is not the compiled {po}: run `python manage.py compilemessages` and commit it"
    )


@pytest.mark.parametrize("language", LANGUAGES)
def test_msgfmt_compiles_each_po_with_its_checks_into_the_committed_catalogue(language, tmp_path):
    msgfmt = shutil.which("msgfmt")
    if msgfmt is None:
        pytest.skip("msgfmt (GNU gettext) is not installed: the pure-Python check above holds")
    po, mo = po_and_mo(language)

    result = subprocess.run(
        [msgfmt, "--check", "-o", str(tmp_path / "django.mo"), str(po)],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    assert compiled(tmp_path / "django.mo") == compiled(mo)


def test_every_german_entry_is_translated_with_its_placeholders():
    po, _ = po_and_mo("de")
    entries = [entry for entry in read_po(po) if entry.msgid]

    assert entries
    for entry in entries:
        assert "fuzzy" not in entry.flags, entry.msgid
        assert entry.msgstr[0], f"not translated: {entry.msgid!r}"
        assert placeholders_of(entry.msgstr[0]) == placeholders_of(entry.msgid), entry.msgid


def test_the_patient_facing_phrases_are_german_in_german_and_english_in_english():
    phrases = [*MEASUREMENT_WHAT.values(), DOSE_WHAT, SOMETHING]

    with translation.override("de"):
        german = [str(phrase) for phrase in phrases]
    with translation.override("en"):
        english = [str(phrase) for phrase in phrases]

    assert german == [
        "Ihre Blutzuckermessung",
        "Ihre Blutdruckmessung",
        "Ihre Gewichtsmessung",
        "Ihre INR-Messung",
        "Ihre Pulsmessung",
        "Ihre Messung der Sauerstoffsättigung",
        "Ihre Temperaturmessung",
        "Ihre Dosis {name}",
        "Ihre Messung",
    ]
    assert english == [
        "your blood glucose check",
        "your blood pressure check",
        "your weight check",
        "your INR check",
        "your heart rate check",
        "your oxygen saturation check",
        "your temperature check",
        "your {name} dose",
        "your check",
    ]
    # Every metric measured on a schedule has its own phrase (dose has a plan's name).
    assert set(MEASUREMENT_WHAT) == set(Metric.values) - {Metric.DOSE}


def test_the_staff_admin_stays_english():
    # No LocaleMiddleware: a browser asking for German gets the English admin.
    assert "django.middleware.locale.LocaleMiddleware" not in settings.MIDDLEWARE
    assert translation.get_language() == settings.LANGUAGE_CODE == "en-us"
