from django.urls import path

from cases import views, views_documents, views_incidents, views_sites

app_name = "cases"
urlpatterns = [
    path("", views.case_list, name="list"),
    path("<int:pk>/", views.case_detail, name="detail"),
    path("<int:pk>/transition/", views.case_transition, name="transition"),
    path("<int:pk>/interviews/", views.interview_create, name="interview_schedule"),
    path("<int:pk>/edit/", views.case_edit, name="edit"),
    path("interviews/<int:pk>/outcome/", views.interview_outcome, name="interview_outcome"),
    path("persons/<int:pk>/", views.person_detail, name="person"),
    path("persons/<int:pk>/edit/", views.person_edit, name="person_edit"),
    path("incidents/", views_incidents.incident_list, name="incident_list"),
    path("incidents/new/", views_incidents.incident_new, name="incident_new"),
    path("incidents/<int:pk>/", views_incidents.incident_detail, name="incident_detail"),
    path("<int:pk>/site/", views_sites.case_site_transfer, name="site_transfer"),
    path("transfers/", views_sites.transfer_list, name="transfer_list"),
    path("transfers/new/", views_sites.transfer_new, name="transfer_new"),
    path("<int:pk>/documents/", views_documents.document_upload, name="document_upload"),
    path("documents/<int:pk>/", views_documents.document_download, name="document_download"),
    path("documents/<int:pk>/delete/", views_documents.document_delete, name="document_delete"),
]
