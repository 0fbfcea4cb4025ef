from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class OffersConfig(AppConfig):
    name = "offers"
    verbose_name = _("Offers and departures")

    def ready(self) -> None:
        from offers import services  # noqa: F401  (connects the case-closed receiver)
