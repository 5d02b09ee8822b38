"""GET /api/vocabulary: every code the system shows, with its Chinese label, colour and order
(gis/core/vocabulary.py). Public; a strong ETag (304 on If-None-Match) and a day's caching."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from gis.core import vocabulary as vocab

router = APIRouter(prefix="/api", tags=["vocabulary"])


@router.get(
    "/vocabulary",
    summary="Codes, Chinese labels and colours of every status, class and kind",
    responses={200: {"content": {"application/json": {}}}, 304: {"description": "not modified"}},
)
def get_vocabulary(request: Request) -> Response:
    """Vocabularies by name (``idle_status``, ``eval_class``, ``platform_kind`` ...), each with
    its title, the label and colour of a missing or unknown code (``other``) and its terms in
    order: ``code`` (what the data and the API hold), ``label``, ``colour``, ``english``,
    ``order``, ``flagged`` (a status that is a finding)."""
    body, etag = vocab.serialised()
    headers = {"ETag": etag, "Cache-Control": "public, max-age=86400"}
    inm = request.headers.get("if-none-match")
    if inm and etag in [t.strip() for t in inm.split(",")]:
        return Response(status_code=304, headers=headers)
    return Response(body, media_type="application/json", headers=headers)
