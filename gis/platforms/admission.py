"""Admission review (项目准入), DOMAIN_RULES §5: check a proposed project before land is supplied.

The project's land is a location (GeoJSON polygon, EPSG:4326 by default, or 4490 / 4549) or an
existing parcel (DKBH). Checks, each with pass / fail / not_checked, the figure and the threshold:

- ``platform_found``: the location overlaps a platform; the platform is the one holding the largest
  share of the location's area (§1), and the share is reported.
- ``negative_list``: the industry code (GB/T 4754, 2-4 digits) does not start with any code of
  the platform's negative list (FMQD).
- ``platform_kind``: the platform is not 逐步退出型 (phase_out takes no new industrial land, §4);
  the kind in force is the one ``gis.platforms.platform_kinds.classify`` gives (overrides included).
- ``investment_total`` (投资总额, 万元), ``investment_per_mu`` (亩均投资强度),
  ``output_per_mu`` (亩均产值), ``tax_per_mu`` (亩均税收), 万元/亩 of the location's area:
  at or above the thresholds of 杭政〔2014〕12号 configured for the district
  (``[admission.districts]``, else ``default``).

The district is the one holding the largest share of the location. The answer also says when the
location lies outside every platform or overlaps supplied land (GD records; overlaps under
``supplied_overlap_min_m2`` are ignored). Nothing is written. Areas m² (EPSG:4549),
亩 = m² × 0.0015.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import date

import shapely.geometry
from sqlalchemy import Connection, text

from gis.core.layers import M2_PER_MU
from gis.core.rules import Rules, get_rules
from gis.platforms.platform_kinds import classify

SOURCE_STANDARDS = "杭政〔2014〕12号 (figures per district in rules.toml [admission])"
INDUSTRY_RE = re.compile(r"^[0-9]{2,4}$")
ALLOWED_CRS = {"EPSG:4326": 4326, "EPSG:4490": 4490, "EPSG:4549": 4549}


class AdmissionInputError(ValueError):
    """The request cannot be checked (bad geometry, unknown parcel, bad code)."""


@dataclass(frozen=True)
class AdmissionRequest:
    industry_code: str
    investment_total: float  # 投资总额, 万元
    expected_output: float  # expected annual output (产值), 万元
    expected_tax: float  # expected annual tax (税收), 万元
    location: dict | None = None  # GeoJSON geometry (Polygon / MultiPolygon)
    crs: str = "EPSG:4326"
    parcel_no: str | None = None
    as_of: date | None = None


def _geometry_sql(req: AdmissionRequest) -> tuple[str, dict]:
    if (req.location is None) == (req.parcel_no is None):
        raise AdmissionInputError("give either a location (GeoJSON polygon) or a parcel_no")
    if req.parcel_no is not None:
        return "SELECT geom FROM parcels WHERE parcel_no = :parcel_no", {"parcel_no": req.parcel_no}
    srid = ALLOWED_CRS.get(req.crs.upper())
    if srid is None:
        raise AdmissionInputError(f"crs {req.crs!r}: use one of {', '.join(ALLOWED_CRS)}")
    gtype = req.location.get("type") if isinstance(req.location, dict) else None
    if gtype not in ("Polygon", "MultiPolygon"):
        raise AdmissionInputError(
            f"location must be a GeoJSON Polygon or MultiPolygon geometry, not {gtype!r}"
        )
    try:
        shp = shapely.geometry.shape(req.location)
    except Exception as e:
        raise AdmissionInputError(f"location is not valid GeoJSON geometry: {e}") from None
    if shp.is_empty:
        raise AdmissionInputError("location is an empty polygon")
    lim_x, lim_y = (180, 90) if srid in (4326, 4490) else (1e8, 1e8)  # degrees or metres
    x0, y0, x1, y1 = shp.bounds
    if not (-lim_x <= x0 <= x1 <= lim_x and -lim_y <= y0 <= y1 <= lim_y):  # NaN fails too
        raise AdmissionInputError(
            f"location coordinates out of range for {req.crs} (x within ±{lim_x:g}, "
            f"y within ±{lim_y:g})"
        )
    return (
        "SELECT ST_Multi(ST_CollectionExtract(ST_MakeValid(ST_Transform(ST_SetSRID("
        "ST_GeomFromGeoJSON(:gj), :srid), 4549)), 3)) AS geom",
        {"gj": json.dumps(req.location), "srid": srid},
    )


def _check(name: str, label: str, status: str, figure, threshold, unit: str = "", **kw) -> dict:
    return {
        "check": name,
        "label": label,
        "status": status,
        "figure": figure,
        "threshold": threshold,
        "unit": unit,
        **kw,
    }


def _at_least(name: str, label: str, figure: float, threshold: float, unit: str) -> dict:
    return _check(
        name,
        label,
        "pass" if figure >= threshold else "fail",
        round(figure, 4),
        threshold,
        unit,
        rule=f"{label} >= {threshold} {unit} ({SOURCE_STANDARDS})",
    )


def check(conn: Connection, req: AdmissionRequest, rules: Rules | None = None) -> dict:
    """Run every admission check; returns {"admitted", "location", "checks", "notes"}."""
    rules = rules or get_rules()
    ar = rules.admission
    if not INDUSTRY_RE.match(req.industry_code or ""):
        raise AdmissionInputError(
            f"industry_code {req.industry_code!r}: a GB/T 4754-2017 code of 2 to 4 digits"
        )
    for field in ("investment_total", "expected_output", "expected_tax"):
        v = getattr(req, field)
        if v is None or v < 0:
            raise AdmissionInputError(f"{field} must be a number >= 0 (万元)")
    geom_sql, params = _geometry_sql(req)
    loc = conn.execute(
        text(
            f"""
            WITH g AS ({geom_sql})
            SELECT ST_Area(g.geom) AS area_m2, ST_IsEmpty(g.geom) AS empty,
                   ST_AsEWKB(g.geom) AS wkb,
                   (SELECT json_build_object('code', p.code, 'name', p.name,
                        'share', ST_Area(ST_Intersection(p.geom, g.geom)) / ST_Area(g.geom),
                        'negative_list', p.negative_list, 'district_code', p.district_code)
                    FROM platforms p WHERE p.geom && g.geom AND ST_Intersects(p.geom, g.geom)
                      AND ST_Area(ST_Intersection(p.geom, g.geom)) > 0
                    ORDER BY ST_Area(ST_Intersection(p.geom, g.geom)) DESC, p.code LIMIT 1)
                       AS platform,
                   (SELECT json_build_object('code', d.code, 'name', d.name)
                    FROM districts d WHERE d.geom && g.geom AND ST_Intersects(d.geom, g.geom)
                    ORDER BY ST_Area(ST_Intersection(d.geom, g.geom)) DESC, d.code LIMIT 1)
                       AS district,
                   (SELECT coalesce(json_agg(json_build_object('supply_no', s.supply_no,
                        'overlap_m2', round(ST_Area(ST_Intersection(s.geom, g.geom))::numeric, 1))
                        ORDER BY s.supply_no), '[]'::json)
                    FROM supplies s WHERE s.geom && g.geom AND ST_Intersects(s.geom, g.geom)
                      AND ST_Area(ST_Intersection(s.geom, g.geom)) >= :min_ov) AS supplied
            FROM g
            """
        ),
        {**params, "min_ov": ar.supplied_overlap_min_m2},
    ).first()
    if loc is None:
        raise AdmissionInputError(f"no parcel with DKBH {req.parcel_no!r}")
    if loc.empty or not loc.area_m2:
        raise AdmissionInputError("the location has no area once made valid")
    area_mu = loc.area_m2 / M2_PER_MU
    platform = loc.platform
    district = loc.district
    notes: list[str] = []
    checks: list[dict] = []
    if platform:
        checks.append(
            _check(
                "platform_found",
                "平台",
                "pass",
                platform["code"],
                "inside a platform",
                share=round(min(platform["share"], 1.0), 4),
                platform_name=platform["name"],
            )
        )
        if platform["share"] < 0.999:
            notes.append(
                f"{(1 - platform['share']) * 100:.1f} % of the location lies outside "
                f"{platform['name']} ({platform['code']})"
            )
        neg = [c for c in (platform["negative_list"] or []) if req.industry_code.startswith(c)]
        checks.append(
            _check(
                "negative_list",
                "负面清单",
                "fail" if neg else "pass",
                req.industry_code,
                platform["negative_list"] or [],
                matched=neg,
                rule="industry code must not start with a code of the platform's FMQD (§5)",
            )
        )
        kinds = {it["platform_id"]: it for it in classify(conn, req.as_of, rules)["items"]}
        kind = kinds[platform["code"]]["kind"]
        checks.append(
            _check(
                "platform_kind",
                "平台类型",
                "fail" if kind == "phase_out" else "pass",
                kind,
                "not phase_out",
                rule="逐步退出型 platforms take no new industrial land (§4, §5)",
            )
        )
        if kind == "to_innovation":
            notes.append(
                "the platform is 转为创新型: land there should be supplied as 创新型产业用地 (M0)"
            )
    else:
        notes.append("the location lies outside every platform")
        checks.append(_check("platform_found", "平台", "fail", None, "inside a platform"))
        for name, label in (("negative_list", "负面清单"), ("platform_kind", "平台类型")):
            checks.append(_check(name, label, "not_checked", None, None, reason="no platform"))
    dcode = (district or {}).get("code") or (platform or {}).get("district_code")
    std = ar.districts.get(dcode or "", ar.default)
    std_from = f"district {dcode}" if dcode in ar.districts else "default"
    checks += [
        _at_least(
            "investment_total", "投资总额", req.investment_total, std.investment_total_min, "万元"
        ),
        _at_least(
            "investment_per_mu",
            "亩均投资强度",
            req.investment_total / area_mu,
            std.investment_per_mu_min,
            "万元/亩",
        ),
        _at_least(
            "output_per_mu",
            "亩均产值",
            req.expected_output / area_mu,
            std.output_per_mu_min,
            "万元/亩",
        ),
        _at_least(
            "tax_per_mu", "亩均税收", req.expected_tax / area_mu, std.tax_per_mu_min, "万元/亩"
        ),
    ]
    supplied = loc.supplied or []
    if supplied:
        notes.append(
            "the location overlaps supplied land: "
            + ", ".join(f"{s['supply_no']} ({s['overlap_m2']} m²)" for s in supplied)
        )
    return {
        "admitted": all(c["status"] == "pass" for c in checks),
        "location": {
            "area_m2": round(loc.area_m2, 2),
            "area_mu": round(area_mu, 4),
            "parcel_no": req.parcel_no,
            "platform": platform and {k: platform[k] for k in ("code", "name", "share")},
            "district": district,
            "outside_platforms": platform is None,
            "overlaps_supplied": supplied,
            "thresholds_from": std_from,
        },
        "checks": checks,
        "notes": notes,
        "as_of": (req.as_of or date.today()).isoformat(),
        "source": "DOMAIN_RULES §5",
    }
