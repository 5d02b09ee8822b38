"""Admission review (项目准入, DOMAIN_RULES §5) over HTTP: ``POST /api/admission/check``.

Analysts only: the answer quotes the project's expected tax and the platforms' kinds and the
review is an internal step before land is supplied. Nothing is written.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field
from sqlalchemy import Engine

from app.deps import Caller, engine_dep, require
from app.errors import ApiError
from app.params import AsOf, Wan
from gis.platforms.admission import AdmissionInputError, AdmissionRequest, check

router = APIRouter(tags=["admission (项目准入)"])


class AdmissionBody(BaseModel):
    location: dict | None = Field(
        None,
        description="GeoJSON Polygon / MultiPolygon geometry (or a Feature holding one)",
    )
    crs: str = Field("EPSG:4326", description="CRS of the location: EPSG:4326, 4490 or 4549")
    parcel_no: str | None = Field(None, description="an existing parcel (DKBH) instead")
    industry_code: str = Field(description="GB/T 4754-2017 industry code, 2-4 digits")
    investment_total: Wan = Field(description="投资总额, 万元")
    expected_output: Wan = Field(description="expected annual output (产值), 万元")
    expected_tax: Wan = Field(description="expected annual tax (税收), 万元")
    as_of: AsOf | None = None


@router.post("/api/admission/check")
def admission_check(
    body: AdmissionBody,
    who: Caller = Depends(require("analyst")),
    engine: Engine = Depends(engine_dep),
) -> dict:
    """Each check (platform found, negative list, platform kind, 投资总额, 亩均投资强度, 亩均产值,
    亩均税收) with pass / fail, the figure and the threshold."""
    loc = body.location
    if isinstance(loc, dict) and loc.get("type") == "Feature":
        loc = loc.get("geometry")
    req = AdmissionRequest(
        industry_code=body.industry_code,
        investment_total=body.investment_total,
        expected_output=body.expected_output,
        expected_tax=body.expected_tax,
        location=loc,
        crs=body.crs,
        parcel_no=body.parcel_no,
        as_of=body.as_of,
    )
    try:
        with engine.connect() as conn:
            return check(conn, req)
    except AdmissionInputError as e:
        raise ApiError(422, str(e)) from None
