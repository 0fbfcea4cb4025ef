import datetime

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from cases.models import Case, Person, Relationship, Site
from offers.models import Offer


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ["username"]
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.django.Password("a-long-test-password")

    @factory.post_generation
    def role(self, create, extracted, **kwargs):
        if extracted:
            self.groups.add(Group.objects.get(name=extracted))


class SiteFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Site
        django_get_or_create = ["code"]

    name = factory.Sequence(lambda n: f"Camp {n}")
    code = factory.Sequence(lambda n: f"camp-{n}")


class CaseFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Case
        skip_postgeneration_save = True

    case_no = factory.Sequence(lambda n: f"T-{n:05d}")
    site = factory.SubFactory(SiteFactory)

    @factory.post_generation
    def size(self, create, extracted, **kwargs):
        """CaseFactory(size=3) adds a principal applicant and two children."""
        for index in range(extracted or 0):
            PersonFactory(
                case=self,
                site=self.site,
                relationship=Relationship.PRINCIPAL_APPLICANT if index == 0 else Relationship.CHILD,
                birth_year=1980 if index == 0 else 2015,
                birth_date=datetime.date(1980, 5, 17) if index == 0 else None,
            )


class PersonFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Person

    registration_no = factory.Sequence(lambda n: f"R-{n:07d}")
    case = factory.SubFactory(CaseFactory)
    relationship = Relationship.PRINCIPAL_APPLICANT
    family_name = "Hosseini"
    given_name = factory.Iterator(["Mohammad", "Zahra", "Ali", "Maryam"])
    native_name = "محمد حسینی"
    sex = "M"
    birth_year = 1985
    birth_date = None
    nationality = "IR"
    site = factory.SelfAttribute("case.site")


class OfferFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Offer

    country = "CA"
    reference = factory.Sequence(lambda n: f"OFFER-{n}")
    places = 10
