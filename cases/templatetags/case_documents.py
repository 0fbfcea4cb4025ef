"""The case page's document upload form, without a change to the case page's view."""

from django import template

from cases.forms import DocumentUploadForm

register = template.Library()


@register.simple_tag
def document_upload_form() -> DocumentUploadForm:
    """An empty upload form: {% document_upload_form as form %}."""
    return DocumentUploadForm()
