"""What every scan goes through on its way in: reading, the neck field of a whole-body
sweep, and the input-domain checks (`load_study`), plus beds set by a person (`field_beds`).

Above `io` (it reads with `thyrocad.io.read`) and below `data` (cohorts load through it),
so that the diagnosis service, cohorts and the CLI all read scans the same way.
"""

from thyrocad.intake.domain import MEANINGS, OUTSIDE_DOMAIN, check_domain, flag_name, outside_domain
from thyrocad.intake.load import (
    ALL_VIEWS,
    Beds,
    beds_in_views,
    field_beds,
    load_study,
    parse_bed,
)
from thyrocad.intake.neck_field import FROM_WHOLE_BODY, find_neck_field, is_whole_body

MEANINGS[FROM_WHOLE_BODY] = (
    "a whole-body sweep: diagnosed on its neck field, found from the head top and the shoulders"
)

__all__ = [
    "ALL_VIEWS",
    "FROM_WHOLE_BODY",
    "MEANINGS",
    "OUTSIDE_DOMAIN",
    "Beds",
    "beds_in_views",
    "check_domain",
    "field_beds",
    "find_neck_field",
    "flag_name",
    "is_whole_body",
    "load_study",
    "outside_domain",
    "parse_bed",
]
