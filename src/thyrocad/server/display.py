"""How the pages show values: local times, human labels of calls, verdicts and flags, dates.

Times are stored in UTC and shown in the server's local time zone (the department's; set
`TZ` in the service environment if the host uses another), to the minute, with the zone.
"""

from __future__ import annotations

import datetime as dt

from fastapi.templating import Jinja2Templates

from thyrocad.diagnosis.figures import format_date, identity_line
from thyrocad.diagnosis.reading import CALL_TEXT, VERDICT_LABELS, band_text, flag_label


def local_time(utc_iso: str | None) -> str:
    """An ISO UTC time as local 'YYYY-MM-DD HH:MM ZONE' ('' for None or unparsable)."""
    if not utc_iso:
        return ""
    try:
        moment = dt.datetime.fromisoformat(utc_iso)
    except ValueError:
        return utc_iso
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone().strftime("%Y-%m-%d %H:%M %Z")


def call_label(call: str) -> str:
    return CALL_TEXT.get(call, call)


def register_filters(templates: Jinja2Templates) -> Jinja2Templates:
    """Add the display filters to `templates`' environment."""
    templates.env.filters.update(
        localtime=local_time,
        call_label=call_label,
        verdict_label=lambda v: VERDICT_LABELS.get(v, v),
        flag_label=flag_label,
        dicom_date=format_date,
        band_text=band_text,
        identity_line=identity_line,
    )
    return templates
