import datetime

import pytest

from cases.models import CaseStatus, Sex
from cases.selectors import StatusCount
from reports import charts
from reports.selectors import (
    AgingRow,
    InterviewFigures,
    MonthIncidents,
    NeedCount,
    SexRow,
    WeekDepartures,
    WeekInterviews,
)

MONDAY = datetime.date(2026, 6, 1)
WEEKS = [
    WeekDepartures(week=MONDAY + datetime.timedelta(weeks=n), departures=1, persons=n, cumulative=n * (n + 1) // 2)
    for n in range(12)
]


def _every_chart() -> dict[str, str]:
    interviews = InterviewFigures(
        weeks=[WeekInterviews(week=MONDAY, by_outcome={"attended": 3, "no_show": 1})],
        totals={"attended": 3, "no_show": 1},
    )
    return {
        "pipeline": charts.pipeline([StatusCount(status=s, cases=2, persons=5) for s in CaseStatus]),
        "departures": charts.departures(WEEKS),
        "relocated": charts.relocated_cumulative(WEEKS),
        "interviews": charts.interviews(interviews),
        "aging": charts.aging([AgingRow(status=CaseStatus.ELIGIBLE, buckets=[1, 2, 3, 4, 5])]),
        "population": charts.sex_and_age([SexRow(sex=Sex.FEMALE, bands=[1, 2, 3, 4, 5])]),
        "needs": charts.needs([NeedCount("disability", "Disability", 4)]),
        "incidents": charts.incidents([MonthIncidents(month=MONDAY, by_kind={"attack": 2}, by_effect={"injured": 3})]),
    }


@pytest.mark.parametrize("name", list(_every_chart()))
def test_each_chart_is_an_svg_without_script_or_outside_resources(name):
    svg = _every_chart()[name]
    assert svg.startswith("<svg")
    assert svg.rstrip().endswith("</svg>")
    assert "<script" not in svg
    assert "<?xml" not in svg  # inlined in HTML
    for url in ("http://", "https://"):
        assert all(part.startswith(("www.w3.org", "pygal.org", "github.com/Kozea")) for part in svg.split(url)[1:])


def test_labels_are_escaped():
    svg = charts.needs([NeedCount("x", "<img src=x onerror=alert(1)>", 1)])
    assert "<img" not in svg
    assert "&lt;img" in svg


def test_a_chart_without_data_says_so():
    assert "No data for these filters" in charts.needs([])


def test_charts_show_their_labels():
    svg = _every_chart()["pipeline"]
    assert "Interview scheduled" in svg
    assert "Departure scheduled" in svg


@pytest.mark.parametrize(
    ("highest", "labels"),
    [
        (2, [0, 1, 2]),
        (5, [0, 1, 2, 3, 4, 5]),
        (9, [0, 2, 4, 6, 8, 10]),
        (1256, [0, 500, 1000, 1500]),
    ],
)
def test_count_axes_have_a_few_whole_numbers_up_to_the_highest_bar(highest, labels):
    assert charts._counts(highest) == {"y_labels": labels, "range": (0, labels[-1])}


def test_a_few_incidents_are_counted_in_whole_numbers():
    svg = charts.incidents([MonthIncidents(month=MONDAY, by_kind={"attack": 1}, by_effect={})])
    assert ">0<" in svg and ">1<" in svg
    assert ">0.5<" not in svg
