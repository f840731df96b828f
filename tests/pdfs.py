"""Reading the links of a rendered PDF back, for the tests that check them."""

from __future__ import annotations

from typing import Any

from pypdf import PdfReader


def link_actions(reader: PdfReader) -> list[Any]:
    """The action of every annotation that has one (URI, GoTo, or anything a PDF should not
    carry), page by page."""
    actions = []
    for page in reader.pages:
        for ref in page.get("/Annots") or []:
            action = ref.get_object().get("/A")
            if action is not None:
                actions.append(action.get_object())
    return actions


def link_uris(reader: PdfReader) -> list[str]:
    """The targets of the PDF's web links, in page order."""
    return [str(a["/URI"]) for a in link_actions(reader) if "/URI" in a]
