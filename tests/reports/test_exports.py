import csv
import datetime
import io
import os
import tempfile

import openpyxl
import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone

from cases.models import Case, CaseStatus, Person, SpecificNeed
from reports.exports import EXPORTS, neutralise
from reports.models import ExportLog
from tests.factories import CaseFactory, OfferFactory, SiteFactory, UserFactory
from tests.reports.helpers import days_ago, departed, incident, interview

LISTS = sorted(EXPORTS)
DANGEROUS = ["=1+1", "+SUM(A1)", "-2+3", "@cmd", "\tTAB", "\rCR", '   =HYPERLINK("x")', " \t@x"]


def url(name: str, fmt: str) -> str:
    return reverse("reports:export", kwargs={"list_name": name, "fmt": fmt})


def read_csv(response) -> list[list[str]]:
    body = b"".join(response.streaming_content)
    assert body.startswith(b"\xef\xbb\xbf"), "CSV starts with a UTF-8 byte order mark"
    return list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))


def read_xlsx(response) -> list[list[object]]:
    book = openpyxl.load_workbook(io.BytesIO(b"".join(response.streaming_content)), read_only=True)
    return [list(row) for row in book.worksheets[0].iter_rows(values_only=True)]


def as_dicts(rows: list[list]) -> list[dict]:
    header, *body = rows
    return [dict(zip(header, row, strict=True)) for row in body]


def _everything() -> Case:
    """One row in every list."""
    case = CaseFactory(size=2, notes="case notes")
    pa = case.members.order_by("pk").first()
    interview(case, "attended", notes="interview notes")
    incident(pa)
    departed([pa], offer=OfferFactory())
    from offers.models import Nomination

    Nomination.objects.create(offer=OfferFactory(), case=case, persons=2, nominated_by=UserFactory())
    return case


@pytest.mark.django_db
@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
@pytest.mark.parametrize(
    ("role", "status"), [("anonymous", 302), ("Staff", 403), ("Supervisor", 200), ("Administrator", 200)]
)
def test_only_supervisors_and_administrators_may_export(client_for, role, status, fmt):
    response = client_for(role).get(url("persons", fmt))
    assert response.status_code == status
    assert ExportLog.objects.count() == (1 if status == 200 else 0)


@pytest.mark.django_db
@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
@pytest.mark.parametrize("name", LISTS)
def test_every_list_downloads_in_both_formats_with_its_rows(client_for, name, fmt):
    _everything()
    response = client_for("Supervisor").get(url(name, fmt))
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    assert f'filename="{name}-' in response["Content-Disposition"]
    rows = read_csv(response) if fmt == "csv" else read_xlsx(response)
    assert rows[0] == [c.header for c in EXPORTS[name].columns_for(sensitive=False)]
    assert len(rows) > 1
    assert ExportLog.objects.get().row_count == len(rows) - 1


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "fmt"), [("people", "csv"), ("persons", "pdf"), ("persons", "xls")])
def test_an_unknown_list_or_format_is_not_found(client_for, name, fmt):
    assert client_for("Supervisor").get(url(name, fmt)).status_code == 404


@pytest.mark.parametrize("value", DANGEROUS)
def test_formula_like_text_is_made_inert(value):
    assert neutralise(value) == "'" + value


@pytest.mark.parametrize("value", ["", "Ali-Reza", "a=b", "محمد", "1+1", "O'Brien"])
def test_ordinary_text_is_left_alone(value):
    assert neutralise(value) == value


def _dangerous_persons() -> None:
    case = CaseFactory(size=0)
    for index, value in enumerate(DANGEROUS):
        Person.objects.create(
            registration_no=f"X-{index}",
            case=case,
            relationship="PA" if index == 0 else "child",
            family_name=value,
            given_name="Safe",
            native_name="زهرا",
            sex="F",
            birth_year=1990,
            nationality="IR",
            site=case.site,
            phone=value,
        )


@pytest.mark.django_db
def test_formulas_are_inert_in_the_csv(client_for):
    _dangerous_persons()
    rows = as_dicts(read_csv(client_for("Supervisor").get(url("persons", "csv"), {"sensitive": "1"})))
    assert sorted(r["family_name"] for r in rows) == sorted("'" + v for v in DANGEROUS)
    assert all(r["phone"].startswith("'") for r in rows)
    assert {r["given_name"] for r in rows} == {"Safe"}


@pytest.mark.django_db
def test_formulas_are_inert_in_the_xlsx(client_for):
    _dangerous_persons()
    response = client_for("Supervisor").get(url("persons", "xlsx"), {"sensitive": "1"})
    body = b"".join(response.streaming_content)
    book = openpyxl.load_workbook(io.BytesIO(body))  # not read-only: cell types are visible
    sheet = book.worksheets[0]
    header = [c.value for c in sheet[1]]
    column = header.index("family_name")
    cells = [row[column] for row in sheet.iter_rows(min_row=2)]
    # OOXML escapes a carriage return as _x000D_; openpyxl leaves it so, spreadsheet programs do not.
    assert sorted(c.value.replace("_x000D_", "\r") for c in cells) == sorted("'" + v for v in DANGEROUS)
    assert {c.data_type for c in cells} == {"s"}  # text, never a formula ("f")


@pytest.mark.django_db
def test_the_csv_keeps_persian_text_and_the_xlsx_native_types(client_for):
    case = CaseFactory(size=2)
    pa, child = case.members.order_by("pk")
    Person.objects.filter(pk=pa.pk).update(native_name="محمد حسینی", birth_date=datetime.date(1980, 5, 17))
    Person.objects.filter(pk=child.pk).update(native_name="عَلي", birth_year=2015, birth_date=None)
    client = client_for("Supervisor")
    csv_rows = {r["registration_no"]: r for r in as_dicts(read_csv(client.get(url("persons", "csv"))))}
    assert csv_rows[pa.registration_no]["native_name"] == "محمد حسینی"
    assert csv_rows[pa.registration_no]["date_of_birth"] == "1980-05-17"
    assert csv_rows[child.registration_no]["date_of_birth"] == "2015"
    xlsx_rows = {r["registration_no"]: r for r in as_dicts(read_xlsx(client.get(url("persons", "xlsx"))))}
    assert xlsx_rows[child.registration_no]["native_name"] == "عَلي"
    assert xlsx_rows[pa.registration_no]["date_of_birth"] == datetime.datetime(1980, 5, 17)
    assert xlsx_rows[child.registration_no]["date_of_birth"] == 2015  # year only: a number, not 1 January


@pytest.mark.django_db
def test_numbers_dates_and_booleans_are_native_in_the_xlsx(client_for):
    case = CaseFactory(size=3)
    Case.objects.filter(pk=case.pk).update(needs_review=True)
    OfferFactory(places=25, deadline=datetime.date(2027, 3, 1))
    client = client_for("Supervisor")
    cases = as_dicts(read_xlsx(client.get(url("cases", "xlsx"))))
    assert cases[0]["persons"] == 3
    assert cases[0]["needs_review"] is True
    assert isinstance(cases[0]["in_status_since"], datetime.datetime)
    offers = as_dicts(read_xlsx(client.get(url("offers", "xlsx"))))
    assert offers[0]["places"] == 25
    assert offers[0]["deadline"] == datetime.datetime(2027, 3, 1)


@pytest.mark.django_db
def test_datetimes_are_written_in_local_time(client_for, settings):
    settings.TIME_ZONE = "Asia/Tehran"
    case = CaseFactory(size=1)
    interview(case, "attended", when=datetime.datetime(2026, 6, 1, 6, 0, tzinfo=datetime.UTC))
    client = client_for("Supervisor")
    rows = as_dicts(read_csv(client.get(url("interviews", "csv"))))
    assert rows[0]["scheduled_at"] == "2026-06-01 09:30"
    rows = as_dicts(read_xlsx(client.get(url("interviews", "xlsx"))))
    assert rows[0]["scheduled_at"] == datetime.datetime(2026, 6, 1, 9, 30)


@pytest.mark.django_db
def test_the_case_lists_filters_apply_to_cases_and_their_persons(client_for):
    here, there = SiteFactory(), SiteFactory()
    mine = CaseFactory(size=2, site=here)
    CaseFactory(size=3, site=there)
    Case.objects.filter(pk=mine.pk).update(status=CaseStatus.ELIGIBLE)
    client = client_for("Supervisor")
    cases = as_dicts(read_csv(client.get(url("cases", "csv"), {"status": "eligible"})))
    assert [r["case_no"] for r in cases] == [mine.case_no]
    persons = as_dicts(read_csv(client.get(url("persons", "csv"), {"site": here.pk})))
    assert {r["case_no"] for r in persons} == {mine.case_no}
    assert len(persons) == 2
    searched = as_dicts(read_csv(client.get(url("persons", "csv"), {"q": mine.case_no})))
    assert len(searched) == 2


@pytest.mark.django_db
def test_the_dashboards_filters_apply_to_the_lists_over_time(client_for):
    case = CaseFactory(size=1)
    interview(case, "attended", when=days_ago(3))
    interview(case, "no_show", when=days_ago(300))
    week_ago = (timezone.localdate() - datetime.timedelta(days=7)).isoformat()
    rows = as_dicts(read_csv(client_for("Supervisor").get(url("interviews", "csv"), {"date_from": week_ago})))
    assert [r["outcome"] for r in rows] == ["attended"]


@pytest.mark.django_db
def test_nationality_filters_persons_and_cases_by_principal_applicant(client_for):
    CaseFactory(size=2)
    iraqi = CaseFactory(size=1)
    iraqi.members.update(nationality="IQ")
    client = client_for("Supervisor")
    assert len(as_dicts(read_csv(client.get(url("persons", "csv"), {"nationality": "IQ"})))) == 1
    cases = as_dicts(read_csv(client.get(url("cases", "csv"), {"nationality": "IQ"})))
    assert [r["case_no"] for r in cases] == [iraqi.case_no]


@pytest.mark.django_db
@pytest.mark.parametrize("params", [{"site": "999999"}, {"status": "nonsense"}, {"date_from": "yesterday"}])
def test_a_bad_filter_is_refused_rather_than_ignored(client_for, params):
    response = client_for("Supervisor").get(url("interviews" if "date_from" in params else "cases", "csv"), params)
    assert response.status_code == 400
    assert not ExportLog.objects.exists()


@pytest.mark.django_db
def test_sensitive_columns_are_left_out_unless_asked_for(client_for):
    case = CaseFactory(size=1)
    need = SpecificNeed.objects.create(code="zz-test-need", label="Test need")
    person = case.members.get()
    person.specific_needs.add(need)
    Person.objects.filter(pk=person.pk).update(phone="0912 000 0000", notes="private")
    client = client_for("Supervisor")
    plain = as_dicts(read_csv(client.get(url("persons", "csv"))))[0]
    assert not {"specific_needs", "phone", "notes"} & plain.keys()
    full = as_dicts(read_csv(client.get(url("persons", "csv"), {"sensitive": "1"})))[0]
    assert full["specific_needs"] == "zz-test-need"
    assert full["phone"] == "0912 000 0000"
    assert full["notes"] == "private"
    assert list(ExportLog.objects.order_by("pk").values_list("sensitive", flat=True)) == [False, True]


@pytest.mark.django_db
def test_sensitive_columns_stay_out_for_a_user_who_may_not_see_specific_needs(client):
    CaseFactory(size=1, notes="private")
    user = UserFactory(username="exporter-only")
    user.user_permissions.add(Permission.objects.get(codename="export_data"))
    client.force_login(user)
    rows = as_dicts(read_csv(client.get(url("cases", "csv"), {"sensitive": "1"})))
    assert "notes" not in rows[0]
    assert ExportLog.objects.get().sensitive is False


@pytest.mark.django_db
def test_every_export_is_logged_with_who_what_filters_and_rows(client_for, supervisor):
    site = SiteFactory()
    CaseFactory(size=2, site=site)
    CaseFactory(size=1)
    response = client_for("Supervisor").get(url("persons", "xlsx"), {"site": site.pk, "nationality": "IR"})
    b"".join(response.streaming_content)
    log = ExportLog.objects.get()
    assert log.actor == supervisor
    assert (log.list_name, log.format, log.row_count, log.sensitive) == ("persons", "xlsx", 2, False)
    assert log.filters == {"site": str(site.pk), "nationality": "IR"}


@pytest.mark.django_db
def test_the_xlsx_temp_file_is_gone_once_served(client_for, tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    CaseFactory(size=2)
    response = client_for("Supervisor").get(url("persons", "xlsx"))
    assert os.listdir(tmp_path) == []
    assert b"".join(response.streaming_content).startswith(b"PK")
    response.close()


@pytest.mark.django_db
@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
@pytest.mark.parametrize("rows", [1, 30])
def test_an_export_costs_the_same_queries_whatever_the_rows(client_for, django_assert_num_queries, rows, fmt):
    client = client_for("Supervisor")
    for _ in range(rows):
        CaseFactory(size=2)
    # session, user, permissions with groups and sites (cases.scope; export, then
    # sensitive): 3; the export log row, the access log row
    # (accounts.middleware), the rows (one query: chunked by a server-side cursor on
    # PostgreSQL), the export log's row count.
    with django_assert_num_queries(7):
        response = client.get(url("persons", fmt), {"sensitive": "1"})
        b"".join(response.streaming_content)


def test_a_long_or_odd_title_still_makes_a_valid_sheet_name(tmp_path):
    from reports.exports import Column, write_xlsx

    path = tmp_path / "odd.xlsx"
    count = write_xlsx(str(path), "Personnes: liste [complète] / export*?", iter([("a",)]), [Column("x", "x")])
    assert count == 1
    assert openpyxl.load_workbook(path).sheetnames == ["Personnes  liste  complèt"]


@pytest.mark.django_db
def test_a_head_request_writes_no_export(client_for):
    assert client_for("Supervisor").head(url("persons", "csv")).status_code == 405
    assert not ExportLog.objects.exists()
