"""Sites, persons, cases, interviews and incidents: the roster side of the domain."""

import datetime
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django_countries.fields import CountryField
from simple_history.models import HistoricalRecords

from cases import names
from cases.storage import private_storage


class CaseStatus(models.TextChoices):
    REGISTERED = "registered", _("Registered")
    INTERVIEW_SCHEDULED = "interview_scheduled", _("Interview scheduled")
    INTERVIEWED = "interviewed", _("Interviewed")
    ELIGIBLE = "eligible", _("Eligible")
    NOT_ELIGIBLE = "not_eligible", _("Not eligible")
    NOMINATED = "nominated", _("Nominated")
    ACCEPTED = "accepted", _("Accepted")
    DEPARTURE_SCHEDULED = "departure_scheduled", _("Departure scheduled")
    DECLINED_PARTICIPATION = "declined_participation", _("Declined participation")
    ON_HOLD = "on_hold", _("On hold")
    RELOCATED = "relocated", _("Relocated")
    CLOSED = "closed", _("Closed")


class Determination(models.TextChoices):
    PENDING = "pending", _("Pending")
    CONFIRMED = "confirmed", _("Confirmed")
    NOT_CONFIRMED = "not_confirmed", _("Not confirmed")


class Sex(models.TextChoices):
    FEMALE = "F", _("Female")
    MALE = "M", _("Male")
    OTHER = "X", _("Other / unspecified")


class Relationship(models.TextChoices):
    PRINCIPAL_APPLICANT = "PA", _("Principal applicant")
    SPOUSE = "spouse", _("Spouse")
    CHILD = "child", _("Child")
    PARENT = "parent", _("Parent")
    SIBLING = "sibling", _("Sibling")
    OTHER_RELATIVE = "other_relative", _("Other relative")
    OTHER = "other", _("Other")


class ResidenceStatus(models.TextChoices):
    PRESENT = "present", _("Present")
    RELOCATED = "relocated", _("Relocated")
    DECEASED = "deceased", _("Deceased")
    MISSING = "missing", _("Missing")
    LEFT = "left", _("Left (other means)")


class Site(models.Model):
    name = models.CharField(_("name"), max_length=100, unique=True)
    code = models.SlugField(_("code"), max_length=30, unique=True)
    location = models.CharField(_("location"), max_length=200, blank=True)
    is_active = models.BooleanField(_("active"), default=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["name"]
        verbose_name = _("site")
        verbose_name_plural = _("sites")

    def __str__(self) -> str:
        return self.name


class SiteAssignment(models.Model):
    """Limits a user to a site. A user with one or more assignments sees, searches, exports
    and changes only those sites' records (cases.scope); a user with none sees every site."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="site_assignments", verbose_name=_("user")
    )
    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="assignments", verbose_name=_("site"))

    history = HistoricalRecords()

    class Meta:
        ordering = ["user", "site"]
        verbose_name = _("site the user is limited to")
        verbose_name_plural = _("sites the user is limited to")
        constraints = [models.UniqueConstraint(fields=["user", "site"], name="site_assignment_once")]

    def __str__(self) -> str:
        return f"{self.user} → {self.site}"


class SpecificNeed(models.Model):
    """A vulnerability code (medical condition, disability, ...). Sensitive."""

    code = models.SlugField(_("code"), max_length=40, unique=True)
    label = models.CharField(_("label"), max_length=120)

    history = HistoricalRecords()

    class Meta:
        ordering = ["code"]
        verbose_name = _("specific need")
        verbose_name_plural = _("specific needs")

    def __str__(self) -> str:
        return self.label


class Case(models.Model):
    case_no = models.CharField(_("case number"), max_length=40, unique=True)
    # No index of its own: the (site, status) index serves lookups by site.
    site = models.ForeignKey(
        Site, on_delete=models.PROTECT, related_name="cases", verbose_name=_("site"), db_index=False
    )
    # Written only by cases.services.case_transition (see cases/workflow.py).
    status = models.CharField(_("status"), max_length=30, choices=CaseStatus.choices, default=CaseStatus.REGISTERED)
    status_changed_at = models.DateTimeField(_("in status since"), default=timezone.now)
    # The status a case was put on hold from: the only one it may return to.
    status_before_hold = models.CharField(max_length=30, choices=CaseStatus.choices, blank=True)
    determination = models.CharField(
        _("determination"), max_length=20, choices=Determination.choices, default=Determination.PENDING
    )
    assigned_officer = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="assigned_cases",
        verbose_name=_("assigned officer"),
    )
    needs_review = models.BooleanField(
        _("needs review"), default=False, help_text=_("Set when an incident affected a member.")
    )
    notes = models.TextField(_("notes"), blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)
    # Bumped by cases.services.case_update: an edit based on an older version is refused.
    version = models.PositiveIntegerField(_("version"), default=0, editable=False)

    # The history is read by record (its id) and by time; an index on each copied key and
    # foreign key would only slow every write (an import writes a history row per case).
    history = HistoricalRecords(excluded_fields=["updated_at"], no_db_index=["case_no", "site", "assigned_officer"])

    class Meta:
        ordering = ["case_no"]
        verbose_name = _("case")
        verbose_name_plural = _("cases")
        indexes = [
            models.Index(fields=["status", "status_changed_at"]),
            models.Index(fields=["site", "status"]),
            # The few cases flagged for review, for the worklist's count.
            models.Index(fields=["site"], condition=models.Q(needs_review=True), name="cases_case_to_review"),
        ]
        permissions = [
            ("transition_case", _("Can move a case through the workflow")),
            ("reopen_case", _("Can reopen a closed case")),
            # Moving one case to another site is an edit of its details (change_case);
            # moving many at once (a camp's residents) takes this permission.
            ("transfer_persons", _("Can move many cases' persons to another site at once")),
        ]

    def __str__(self) -> str:
        return self.case_no

    def get_absolute_url(self) -> str:
        return reverse("cases:detail", args=[self.pk])

    def get_status_display(self) -> str:  # type: ignore[no-redef]  # the stubs declare Django's
        # Django's own hashes (and so translates) every status label at each call: ~0.7 ms a
        # row, 18 ms a case list page. The enum finds the one label.
        return str(CaseStatus(self.status).label) if self.status in CaseStatus.values else self.status

    @property
    def principal_applicant(self) -> "Person | None":
        for member in self.members.all():
            if member.relationship == Relationship.PRINCIPAL_APPLICANT:
                return member
        return None


def full_name(family_name: str, given_name: str) -> str:
    """A person's name as every page and list shows it: FAMILY, Given."""
    return f"{family_name.upper()}, {given_name}"


class Person(models.Model):
    registration_no = models.CharField(_("registration number"), max_length=40, unique=True)
    case = models.ForeignKey(Case, on_delete=models.PROTECT, related_name="members", verbose_name=_("case"))
    relationship = models.CharField(_("relationship to PA"), max_length=20, choices=Relationship.choices)
    family_name = models.CharField(_("family name"), max_length=100)
    given_name = models.CharField(_("given name"), max_length=100)
    native_name = models.CharField(_("name in native script"), max_length=200, blank=True)
    # The names' spelling-blind keys (cases.names.name_key), for search. Set by save();
    # bulk writers set it themselves (cases.names.stored_keys, with the two below).
    name_key = models.CharField(_("name key"), max_length=names.NAME_KEY_LENGTH, blank=True, default="", editable=False)
    # The keys probable duplicates share (cases.names.match_keys), for the roster
    # import's search among the persons on record. Set with name_key.
    # Text, not a bounded string: a key can be longer than its name (q is written gh, ß
    # ss, an Arabic ligature several letters). Empty by default in the database too,
    # for rows written by SQL (the benches).
    match_latin = models.TextField(_("Latin match key"), blank=True, default="", db_default="", editable=False)
    match_native = models.TextField(_("native match key"), blank=True, default="", db_default="", editable=False)
    sex = models.CharField(_("sex"), max_length=1, choices=Sex.choices)
    # A birth date is either a full date or a year alone; the year is always known.
    # year-only births keep birth_date empty rather than inventing 1 January.
    birth_year = models.PositiveSmallIntegerField(_("year of birth"))
    birth_date = models.DateField(_("date of birth"), null=True, blank=True)
    nationality = CountryField(_("nationality"))
    # No index of its own: the (site, residence_status) index serves lookups by site.
    site = models.ForeignKey(
        Site, on_delete=models.PROTECT, related_name="persons", verbose_name=_("site"), db_index=False
    )
    residence_status = models.CharField(
        _("residence status"),
        max_length=20,
        choices=ResidenceStatus.choices,
        default=ResidenceStatus.PRESENT,
    )
    specific_needs = models.ManyToManyField(
        SpecificNeed, blank=True, related_name="persons", verbose_name=_("specific needs")
    )
    phone = models.CharField(_("phone"), max_length=40, blank=True)
    notes = models.TextField(_("notes"), blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)
    # Bumped by cases.services.person_update: an edit based on an older version is refused.
    version = models.PositiveIntegerField(_("version"), default=0, editable=False)

    # As the case's history: indexed by record and time only (an import writes a row per person).
    history = HistoricalRecords(
        excluded_fields=["updated_at", *names.STORED_KEYS],
        m2m_fields=[specific_needs],
        no_db_index=["registration_no", "case", "site"],
    )

    class Meta:
        ordering = ["family_name", "given_name"]
        verbose_name = _("person")
        verbose_name_plural = _("persons")
        constraints = [
            models.UniqueConstraint(
                fields=["case"],
                condition=Q(relationship="PA"),
                name="one_principal_applicant_per_case",
                violation_error_message=_("A case has exactly one principal applicant."),
            ),
            models.CheckConstraint(
                condition=Q(birth_year__gte=1900, birth_year__lte=2200),
                name="person_birth_year_plausible",
            ),
        ]
        indexes = [
            models.Index(fields=["family_name", "given_name"]),
            models.Index(fields=["site", "residence_status"]),
            models.Index(fields=["birth_year"]),
            models.Index(fields=["nationality"]),
            # The roster import's probable-duplicate search: a key and a year of birth.
            models.Index(fields=["match_latin", "birth_year"], name="person_match_latin", condition=~Q(match_latin="")),
            models.Index(
                fields=["match_native", "birth_year"], name="person_match_native", condition=~Q(match_native="")
            ),
        ]
        permissions = [
            ("view_specific_needs", _("Can see persons' specific needs")),
            ("import_person", _("Can import rosters")),
        ]

    def __str__(self) -> str:
        return f"{self.full_name} ({self.registration_no})"

    def save(self, *args: Any, **kwargs: Any) -> None:
        for name, key in names.stored_keys(self.family_name, self.given_name, self.native_name).items():
            setattr(self, name, key)
        update_fields = kwargs.get("update_fields")
        if update_fields is not None and {"family_name", "given_name", "native_name"} & set(update_fields):
            kwargs["update_fields"] = {*update_fields, *names.STORED_KEYS}
        super().save(*args, **kwargs)

    def clean(self) -> None:
        if self.birth_date and self.birth_year and self.birth_date.year != self.birth_year:
            raise ValidationError({"birth_date": _("The date of birth must fall in the year of birth.")})
        if self.birth_date and self.birth_date > timezone.localdate():
            raise ValidationError({"birth_date": _("The date of birth cannot be in the future.")})

    @property
    def full_name(self) -> str:
        return full_name(self.family_name, self.given_name)

    @property
    def date_of_birth_display(self) -> str:
        if self.birth_date:
            return self.birth_date.isoformat()
        return str(self.birth_year)

    def age_on(self, day: datetime.date) -> int:
        """Age in whole years; a year-only birth counts as mid-year (1 July)."""
        born = self.birth_date or datetime.date(self.birth_year, 7, 1)
        return day.year - born.year - ((day.month, day.day) < (born.month, born.day))

    @property
    def age(self) -> int:
        return self.age_on(timezone.localdate())


class CaseStatusChange(models.Model):
    """One row per status change: who, when, from, to and why. Never edited."""

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="status_changes")
    from_status = models.CharField(_("from"), max_length=30, choices=CaseStatus.choices)
    to_status = models.CharField(_("to"), max_length=30, choices=CaseStatus.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", verbose_name=_("by")
    )
    reason = models.TextField(_("reason"))
    changed_at = models.DateTimeField(_("when"), default=timezone.now)

    class Meta:
        ordering = ["-changed_at", "-pk"]
        verbose_name = _("case status change")
        verbose_name_plural = _("case status changes")
        indexes = [models.Index(fields=["case", "-changed_at"])]

    def __str__(self) -> str:
        return f"{self.case}: {self.from_status} → {self.to_status}"


class InterviewKind(models.TextChoices):
    PROTECTION = "protection", _("Protection needs")
    RESETTLEMENT = "resettlement", _("Resettlement")
    FOLLOW_UP = "follow_up", _("Follow-up")


class InterviewOutcome(models.TextChoices):
    PENDING = "pending", _("Pending")
    ATTENDED = "attended", _("Attended")
    NO_SHOW = "no_show", _("No-show")
    REFUSED = "refused", _("Refused")
    RESCHEDULED = "rescheduled", _("Rescheduled")
    CANCELLED = "cancelled", _("Cancelled")


class Interview(models.Model):
    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="interviews", verbose_name=_("case"))
    kind = models.CharField(_("kind"), max_length=20, choices=InterviewKind.choices, default=InterviewKind.PROTECTION)
    scheduled_at = models.DateTimeField(_("scheduled for"))
    place = models.CharField(_("place"), max_length=120)
    interviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="interviews",
        verbose_name=_("interviewer"),
    )
    outcome = models.CharField(
        _("outcome"), max_length=20, choices=InterviewOutcome.choices, default=InterviewOutcome.PENDING
    )
    outcome_recorded_at = models.DateTimeField(_("outcome recorded"), null=True, blank=True)
    notes = models.TextField(_("notes"), blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["-scheduled_at"]
        verbose_name = _("interview")
        verbose_name_plural = _("interviews")
        indexes = [
            models.Index(fields=["outcome", "scheduled_at"]),
            # A case's interviews in time order: whether a no-show is its latest interview
            # (the worklist, the case list's no-show filter) is one probe.
            models.Index(fields=["case", "scheduled_at"], name="cases_interview_case_time"),
        ]

    def __str__(self) -> str:
        return f"{self.case} — {self.get_kind_display()} {self.scheduled_at:%Y-%m-%d %H:%M}"


class IncidentKind(models.TextChoices):
    ATTACK = "attack", _("Attack")
    MEDICAL = "medical", _("Medical emergency")
    FIRE = "fire", _("Fire")
    PROTEST = "protest", _("Protest or unrest")
    OTHER = "other", _("Other")


class IncidentEffect(models.TextChoices):
    AFFECTED = "affected", _("Affected")
    INJURED = "injured", _("Injured")
    KILLED = "killed", _("Killed")
    MISSING = "missing", _("Missing")


class Incident(models.Model):
    site = models.ForeignKey(Site, on_delete=models.PROTECT, related_name="incidents", verbose_name=_("site"))
    kind = models.CharField(_("kind"), max_length=20, choices=IncidentKind.choices)
    occurred_at = models.DateTimeField(_("occurred at"))
    summary = models.CharField(_("summary"), max_length=200)
    description = models.TextField(_("description"), blank=True)
    reported_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("reported by"),
    )
    persons = models.ManyToManyField(
        Person, through="IncidentPerson", related_name="incidents", verbose_name=_("persons affected")
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["-occurred_at"]
        verbose_name = _("incident")
        verbose_name_plural = _("incidents")

    def __str__(self) -> str:
        return f"{self.occurred_at:%Y-%m-%d} {self.get_kind_display()}: {self.summary}"


class IncidentPerson(models.Model):
    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="affected")
    person = models.ForeignKey(Person, on_delete=models.PROTECT, related_name="+", verbose_name=_("person"))
    effect = models.CharField(_("effect"), max_length=20, choices=IncidentEffect.choices)

    history = HistoricalRecords()

    class Meta:
        verbose_name = _("person affected")
        verbose_name_plural = _("persons affected")
        constraints = [
            models.UniqueConstraint(fields=["incident", "person"], name="incident_person_once"),
        ]

    def __str__(self) -> str:
        return f"{self.person} — {self.get_effect_display()}"


class DistinctPersons(models.Model):
    """Two persons whose records look alike (a probable duplicate of the roster import)
    that an Administrator decided are not the same person: the import lists them no
    more. By registration number, in order (first < second), so that a pair is one row
    whichever of the two is in a file, and either may not be on record yet."""

    first = models.CharField(_("registration number"), max_length=40)
    second = models.CharField(_("is another person than"), max_length=40)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", verbose_name=_("decided by")
    )
    decided_at = models.DateTimeField(_("decided"), default=timezone.now)

    class Meta:
        ordering = ["-decided_at", "-pk"]
        verbose_name = _("different persons")
        verbose_name_plural = _("different persons")
        constraints = [
            models.UniqueConstraint(fields=["first", "second"], name="distinct_persons_once"),
            models.CheckConstraint(condition=Q(first__lt=models.F("second")), name="distinct_persons_in_order"),
        ]
        # A file's numbers are looked up on either side.
        indexes = [models.Index(fields=["second"], name="distinct_persons_second")]

    def __str__(self) -> str:
        return f"{self.first} ≠ {self.second}"

    @staticmethod
    def pair(one: str, other: str) -> tuple[str, str]:
        """Two registration numbers in the order a pair is kept (first < second)."""
        return (one, other) if one < other else (other, one)


class RosterImportOutcome(models.TextChoices):
    IMPORTED = "imported", _("Imported")
    CHECKED = "checked", _("Checked (dry run)")
    REFUSED = "refused", _("Refused")
    # The worker failed or stopped, or no worker took the job: nothing written.
    FAILED = "failed", _("Failed")


class RosterImport(models.Model):
    """One row per roster import or dry run, written by cases.importing.roster_import."""

    # Empty for imports run from the command line without --user.
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("by"),
    )
    created_at = models.DateTimeField(_("when"), default=timezone.now)
    filename = models.CharField(_("file name"), max_length=255)
    dry_run = models.BooleanField(_("dry run"), default=False)
    outcome = models.CharField(_("outcome"), max_length=20, choices=RosterImportOutcome.choices)
    rows = models.PositiveIntegerField(_("rows"), default=0)
    new = models.PositiveIntegerField(_("new"), default=0)
    updated = models.PositiveIntegerField(_("updated"), default=0)
    unchanged = models.PositiveIntegerField(_("unchanged"), default=0)
    cases_new = models.PositiveIntegerField(_("new cases"), default=0)
    error_count = models.PositiveIntegerField(_("errors"), default=0)
    duplicate_count = models.PositiveIntegerField(_("probable duplicates"), default=0)
    # The first errors, as text, so a refusal can be read later without the file.
    errors = models.JSONField(_("first errors"), default=list, blank=True)
    duration_ms = models.PositiveIntegerField(_("duration (ms)"), default=0)

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name = _("roster import")
        verbose_name_plural = _("roster imports")

    def __str__(self) -> str:
        return f"{self.filename} ({self.created_at:%Y-%m-%d %H:%M}, {self.get_outcome_display()})"


class RosterImportJobStatus(models.TextChoices):
    QUEUED = "queued", _("Waiting for the worker")
    RUNNING = "running", _("Running")
    CHECKED = "checked", _("Checked: waiting for confirmation")
    DONE = "done", _("Finished")
    FAILED = "failed", _("Failed")
    CANCELLED = "cancelled", _("Cancelled")


class RosterImportJob(models.Model):
    """A roster check or import run by the background worker (cases.import_jobs).

    The uploaded file's bytes are kept here, and nowhere on disk, only while the job
    needs them: until the import has run, or the check was refused, cancelled or left
    unconfirmed for ROSTER_IMPORT_CONFIRM_MINUTES.
    """

    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", verbose_name=_("by")
    )
    created_at = models.DateTimeField(_("started"), default=timezone.now)
    updated_at = models.DateTimeField(_("last change"), default=timezone.now)
    filename = models.CharField(_("file name"), max_length=255)
    size = models.PositiveBigIntegerField(_("size (bytes)"), default=0)
    content = models.BinaryField(_("file content"), default=b"", editable=False)
    # The step the job is at: a check (dry run) first, then the import once confirmed.
    dry_run = models.BooleanField(_("check only"), default=True)
    status = models.CharField(
        _("status"), max_length=20, choices=RosterImportJobStatus.choices, default=RosterImportJobStatus.QUEUED
    )
    stage = models.CharField(_("stage"), max_length=20, blank=True)
    done = models.PositiveIntegerField(_("rows done"), default=0)
    total = models.PositiveIntegerField(_("rows in all"), default=0)
    # What the check or import found: counts, summary, the first errors and duplicates.
    result = models.JSONField(_("result"), default=dict, blank=True)
    # Every error and probable duplicate, as a gzipped CSV for the admin to download;
    # deleted after ROSTER_IMPORT_REPORT_DAYS with the result's lists (cases.import_jobs).
    report = models.BinaryField(_("full report"), default=b"", editable=False)
    record = models.ForeignKey(
        RosterImport, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", verbose_name=_("record")
    )
    failure = models.TextField(_("failure"), blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name = _("roster import job")
        verbose_name_plural = _("roster import jobs")
        indexes = [models.Index(fields=["actor", "-created_at"]), models.Index(fields=["status", "updated_at"])]

    def __str__(self) -> str:
        return f"{self.filename} ({self.get_status_display()})"

    @property
    def is_working(self) -> bool:
        return self.status in (RosterImportJobStatus.QUEUED, RosterImportJobStatus.RUNNING)

    @property
    def percent(self) -> int:
        return min(100, 100 * self.done // self.total) if self.total else 0

    @property
    def status_display(self) -> str:
        """The status; for a finished job, whether its file was imported or refused."""
        if self.status == RosterImportJobStatus.DONE and self.record_id is not None:
            return self.record.get_outcome_display()  # type: ignore[union-attr]
        return self.get_status_display()


class SiteTransfer(models.Model):
    """Cases and their present persons moved from one site to another on a date.

    Written by cases.services.site_transfer only; never edited.
    """

    from_site = models.ForeignKey(Site, on_delete=models.PROTECT, related_name="+", verbose_name=_("from site"))
    to_site = models.ForeignKey(Site, on_delete=models.PROTECT, related_name="+", verbose_name=_("to site"))
    date = models.DateField(_("date of the move"))
    reason = models.TextField(_("reason"))
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", verbose_name=_("by")
    )
    created_at = models.DateTimeField(_("recorded"), default=timezone.now)
    cases = models.ManyToManyField(Case, related_name="site_transfers", verbose_name=_("cases"))
    # Counted when the transfer is made, so that lists need no aggregate.
    case_count = models.PositiveIntegerField(_("cases moved"))
    person_count = models.PositiveIntegerField(_("persons moved"))

    class Meta:
        ordering = ["-date", "-created_at", "-pk"]
        verbose_name = _("site transfer")
        verbose_name_plural = _("site transfers")

    def __str__(self) -> str:
        return f"{self.date:%Y-%m-%d} {self.from_site} → {self.to_site}"


class SiteHistory(models.Model):
    """One person moved from one site to another by a site transfer. Never edited.

    A person with no row has lived at their site since they were registered.
    """

    person = models.ForeignKey(Person, on_delete=models.PROTECT, related_name="site_history", verbose_name=_("person"))
    transfer = models.ForeignKey(SiteTransfer, on_delete=models.PROTECT, related_name="moves")
    from_site = models.ForeignKey(Site, on_delete=models.PROTECT, related_name="+", verbose_name=_("from site"))
    to_site = models.ForeignKey(Site, on_delete=models.PROTECT, related_name="+", verbose_name=_("to site"))
    date = models.DateField(_("date of the move"))

    class Meta:
        ordering = ["-date", "-pk"]
        verbose_name = _("site history entry")
        verbose_name_plural = _("site history")
        indexes = [models.Index(fields=["person", "-date"])]
        constraints = [models.UniqueConstraint(fields=["transfer", "person"], name="site_history_person_once")]

    def __str__(self) -> str:
        return f"{self.person_id}: {self.from_site} → {self.to_site} ({self.date:%Y-%m-%d})"


class DocumentKind(models.TextChoices):
    IDENTITY = "identity", _("Identity document")
    MEDICAL = "medical", _("Medical report")
    CONSENT = "consent", _("Consent form")
    OTHER = "other", _("Other")


def case_document_path(instance: "CaseDocument", filename: str) -> str:
    # cases.services.case_document_add names the file (random); the name the user
    # gave is kept in original_name and never reaches the disk.
    return f"case-{instance.case_id}/{filename}"


class CaseDocument(models.Model):
    """A file attached to a case, in the private storage (cases.storage).

    Written by cases.services.case_document_add and case_document_delete. A deleted
    document keeps its row (who, when, why); its file is erased.
    """

    case = models.ForeignKey(Case, on_delete=models.PROTECT, related_name="documents", verbose_name=_("case"))
    kind = models.CharField(_("kind"), max_length=20, choices=DocumentKind.choices)
    file = models.FileField(_("file"), storage=private_storage, upload_to=case_document_path, max_length=255)
    original_name = models.CharField(_("file name"), max_length=255)
    size = models.PositiveBigIntegerField(_("size (bytes)"))
    # Found from the file's first bytes, not from what the browser said.
    content_type = models.CharField(_("content type"), max_length=100)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", verbose_name=_("uploaded by")
    )
    uploaded_at = models.DateTimeField(_("uploaded"), default=timezone.now)
    deleted_at = models.DateTimeField(_("deleted"), null=True, blank=True)
    deleted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("deleted by"),
    )
    deletion_reason = models.TextField(_("reason for deleting"), blank=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["-uploaded_at", "-pk"]
        verbose_name = _("case document")
        verbose_name_plural = _("case documents")
        indexes = [models.Index(fields=["case", "-uploaded_at"])]

    def __str__(self) -> str:
        return f"{self.case_id}: {self.original_name}"
