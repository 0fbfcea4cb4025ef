from django.urls import path

from offers import views

app_name = "offers"
urlpatterns = [
    path("", views.offer_list, name="list"),
    path("new/", views.offer_create, name="new"),
    path("<int:pk>/", views.offer_detail, name="detail"),
    path("<int:pk>/edit/", views.offer_edit, name="edit"),
    path("<int:pk>/nominate/", views.offer_nominate, name="nominate"),
    path("<int:pk>/allocation/", views.allocation, name="allocation"),
    path("<int:pk>/allocation/accept/", views.allocation_accept, name="allocation_accept"),
    path("<int:pk>/departures/new/", views.departure_plan, name="departure_plan"),
    path("nominations/<int:pk>/decision/", views.nomination_decision, name="nomination_decision"),
    path("nominations/<int:pk>/consent/", views.nomination_consent, name="nomination_consent"),
    path("nominations/<int:pk>/withdraw/", views.nomination_withdraw, name="nomination_withdraw"),
    path("departures/<int:pk>/", views.departure_detail, name="departure"),
    path("departures/<int:pk>/manifest/", views.departure_manifest_print, name="departure_manifest"),
    path("departures/<int:pk>/checklist/", views.departure_checklist, name="departure_checklist"),
    path("departures/<int:pk>/depart/", views.departure_depart, name="departure_depart"),
    path("departures/<int:pk>/cancel/", views.departure_cancel, name="departure_cancel"),
]
