"""Fence drafts: every field checked, the bad one named; shapes the geo core refuses never stored."""

import pytest

from crm.fences import FenceDraft, FenceError, draft_from_json
from tests.crm.fences_contract import U_SHAPE

CIRCLE = {"name": "Depot", "kind": "circle", "lat": 31.2, "lon": 121.5, "radius_m": 300}


def field_of(body) -> str | None:
    with pytest.raises(FenceError) as err:
        draft_from_json(body)
    return err.value.field


def test_good_drafts_are_normalised():
    draft = draft_from_json(dict(CIRCLE, name="  Depot  ", owner_id=3))
    assert (draft.name, draft.kind, draft.owner_id) == ("Depot", "circle", 3)
    assert draft.geometry == {"lat": 31.2, "lon": 121.5, "radius_m": 300.0}
    polygon = draft_from_json({"name": "U", "kind": "polygon", "points": U_SHAPE})
    assert polygon.geometry == {"points": U_SHAPE}
    corridor = draft_from_json({"name": "G60", "kind": "corridor", "path": [[31, 121], [31.1, 121.1]], "width_m": 50})
    assert corridor.geometry == {"path": [[31.0, 121.0], [31.1, 121.1]], "width_m": 50.0}
    # A body read back from GET may be sent back as it is: the read-only fields are ignored.
    assert draft_from_json(dict(CIRCLE, id=9, revision=2, created_at="x", updated_at="y")) == draft_from_json(CIRCLE)


@pytest.mark.parametrize(("body", "field"), [
    ([], None),
    (dict(CIRCLE, name=""), "name"),
    (dict(CIRCLE, name="x" * 101), "name"),
    (dict(CIRCLE, name=7), "name"),
    (dict(CIRCLE, kind="square"), "kind"),
    ({k: v for k, v in CIRCLE.items() if k != "kind"}, "kind"),
    (dict(CIRCLE, radius="300"), "radius"),  # unknown field: a typo is not silently ignored
    (dict(CIRCLE, points=U_SHAPE), "points"),  # belongs to another kind
    ({k: v for k, v in CIRCLE.items() if k != "radius_m"}, "radius_m"),
    (dict(CIRCLE, radius_m=0), "radius_m"),
    (dict(CIRCLE, radius_m=-5), "radius_m"),
    (dict(CIRCLE, radius_m=2_000_000), "radius_m"),
    (dict(CIRCLE, radius_m=True), "radius_m"),
    (dict(CIRCLE, lat=91), "lat"),
    (dict(CIRCLE, lon=400), "lon"),
    (dict(CIRCLE, lat="31.2"), "lat"),
    (dict(CIRCLE, owner_id="5"), "owner_id"),
    (dict(CIRCLE, owner_id=0), "owner_id"),
    (dict(CIRCLE, owner_id=2**63), "owner_id"),
    (dict(CIRCLE, lat=10**400), "lat"),
    (dict(CIRCLE, radius_m=float("nan")), "radius_m"),
    ({"name": "P", "kind": "polygon", "points": [[31, 121], [31.1, 121]]}, "points"),
    ({"name": "P", "kind": "polygon", "points": [[31, 121], [31.1, 121], [31, 121.1, 5]]}, "points[2]"),
    ({"name": "P", "kind": "polygon", "points": [[31, 121], [95, 121], [31, 121.1]]}, "points[1]"),
    ({"name": "P", "kind": "polygon", "points": "31,121"}, "points"),
    # A bow tie: the core refuses a self-intersecting ring, and the field is named.
    ({"name": "P", "kind": "polygon", "points": [[31, 121], [31.1, 121.1], [31.1, 121], [31, 121.1]]}, "points"),
    ({"name": "R", "kind": "corridor", "path": [[31, 121]], "width_m": 50}, "path"),
    ({"name": "R", "kind": "corridor", "path": [[31, 121], [31.1, 121]]}, "width_m"),
    ({"name": "R", "kind": "corridor", "path": [[31, 121], [31.1, 121]], "width_m": 500_000}, "width_m"),
])
def test_bad_fields_are_named(body, field):
    assert field_of(body) == field


def test_self_intersection_reason_is_readable():
    with pytest.raises(FenceError, match="not a simple polygon"):
        FenceDraft("P", "polygon", {"points": [[31, 121], [31.1, 121.1], [31.1, 121], [31, 121.1]]})
