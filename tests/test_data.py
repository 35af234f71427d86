"""The data layer on real and broken files: schemas, messages, loaders, the join report, build_interim and
`urbanlab validate`."""

import csv, gzip, io, json
from pathlib import Path

import pandas as pd
import pytest
from conftest import validate_cli

from urbanlab.core import UrbanlabError
from urbanlab.data.schemas import KINDS, DataValidationError, validate_file, validate_frame
from urbanlab.data.load import (
    build_interim,
    join_report,
    load_census,
    load_district_polygons,
    load_districts,
    load_migration,
    load_populated_places,
    load_wup_cities,
)

ROOT = Path(__file__).resolve().parents[1]
RAW = ROOT / "data" / "raw"


def real_rows(kind, n=10):
    "Header and the first `n` records of the real file of `kind`, as lists of strings."
    path = RAW / KINDS[kind].path
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", newline="") as f:
        r = csv.reader(f)
        return next(r), [next(r) for _ in range(n)]


def write_csv(path, header, rows):
    "Write `rows` under `header` as CSV (one line per record) and return the path."
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    path.write_text(buf.getvalue(), encoding="utf-8")
    return path


def corrupt(tmp_path, kind, col, changes, n=10, name=None):
    "A copy of the first `n` real rows of `kind` with `changes` {row index: value} in column `col`."
    header, rows = real_rows(kind, n)
    for i, v in changes.items():
        rows[i][header.index(col)] = v
    return write_csv(tmp_path / (name or f"{kind}.csv"), header, rows)


def error_of(path, kind):
    with pytest.raises(DataValidationError) as e:
        validate_file(path, kind)
    return str(e.value)


# --- the real files ---------------------------------------------------------------------------

SHIPPED = [k for k, v in KINDS.items() if v.path]  # `facilities` has no file in data/raw: users bring their own


@pytest.mark.parametrize("kind", SHIPPED)
def test_real_raw_files_validate(kind):
    df = validate_file(RAW / KINDS[kind].path, kind)
    assert len(df) > 0


def test_real_row_counts():
    counts = {k: len(validate_file(RAW / KINDS[k].path, k)) for k in SHIPPED}
    assert counts == dict(
        districts=1893,
        provinces=196,
        departments=25,
        census=1874,
        migration=255099,
        populated_places=94922,
        district_polygons=1834,
        wup_cities=1860,
        wup_annual=1860,
        series=7,
        place_population=94922,
        schools=54360,
        mobile_coverage=43578,
    )


def test_licences_and_readme_are_beside_the_data():
    for f in [
        "peru/LICENSE.innovar",
        "peru/LICENSE.peru-geojson",
        "peru/LICENSE.ubigeo-peru-aumentado",
        "peru/LICENSE.padron-ie",
        "osiptel_coverage/LICENSE.peru-mobile-signal-schools",
        "osiptel_coverage/SOURCE.md",
        "README.md",
    ]:
        assert (RAW / f).is_file(), f
    readme = (RAW / "README.md").read_text(encoding="utf-8")
    assert "CC BY 3.0 IGO" in readme and "ODC-By" in readme and "MINEDU - ESCALE" in readme


# --- error messages name the file, the column and the rows --------------------------------------


def test_missing_column(tmp_path):
    header, rows = real_rows("census", 3)
    i = header.index("pop_under5")
    p = write_csv(tmp_path / "census.csv", header[:i] + header[i + 1 :], [r[:i] + r[i + 1 :] for r in rows])
    msg = error_of(p, "census")
    assert "census.csv" in msg and "column 'pop_under5': missing" in msg


def test_unparsable_number_names_rows(tmp_path):
    p = corrupt(tmp_path, "census", "pop_total_2017", {2: "abc", 5: "1,2"})
    msg = error_of(p, "census")
    assert msg.startswith(str(p)) or "census.csv" in msg
    assert (
        "column 'pop_total_2017': expected int64 values; these do not parse; first offending rows: 4 ('abc'), 7 ('1,2')"
        in msg
    )


def test_negative_population(tmp_path):
    p = corrupt(tmp_path, "census", "pop_total_2017", {3: "-5", 7: "-1"})
    msg = error_of(p, "census")
    assert "census.csv: column 'pop_total_2017': expected >= 0; first offending rows: 5 (-5), 9 (-1)" in msg


def test_missing_coordinates(tmp_path):
    p = corrupt(tmp_path, "populated_places", "latitude", {1: ""}, name="ccpp.csv")
    assert "ccpp.csv: column 'latitude': expected no missing values; first offending rows: 3 (missing)" in error_of(
        p, "populated_places"
    )


def test_out_of_range_coordinates(tmp_path):
    p = corrupt(tmp_path, "populated_places", "longitude", {0: "-277.9"}, name="ccpp.csv")
    assert "column 'longitude': expected between -180 and 180; first offending rows: 2 (-277.9)" in error_of(
        p, "populated_places"
    )
    p = corrupt(tmp_path, "wup_cities", "Latitude", {4: "91"}, name="wup.csv")
    assert "wup.csv: column 'Latitude': expected between -90 and 90; first offending rows: 6 (91.0)" in error_of(
        p, "wup_cities"
    )


def test_district_coordinates_missing_only_in_empty_rows(tmp_path):
    p = corrupt(tmp_path, "districts", "longitude", {2: "NA"}, name="districts.csv")
    msg = error_of(p, "districts")
    assert (
        "districts.csv: rows: expected latitude and longitude present wherever a capital is; first offending rows: 4"
        in msg
    )


def test_duplicate_keys(tmp_path):
    header, rows = real_rows("census", 5)
    p = write_csv(tmp_path / "census.csv", header, rows + [rows[1]])
    assert (
        "column 'ubigeo': expected unique values; duplicated; first offending rows: 3 ('010102'), 7 ('010102')"
        in error_of(p, "census")
    )
    header, rows = real_rows("migration", 5)
    p = write_csv(tmp_path / "mig.csv", header, rows + [rows[0]])
    msg = error_of(p, "migration")
    assert (
        "mig.csv: columns 'dest_ubigeo', 'origin_label': expected unique values; duplicated; first offending rows: 2 ("
        in msg
    )
    assert " 7 (" in msg
    p = corrupt(tmp_path, "wup_cities", "City Code", {3: "20001"}, name="wup.csv")
    assert (
        "column 'City Code': expected unique values; duplicated; first offending rows: 2 (20001), 5 (20001)"
        in error_of(p, "wup_cities")
    )


def test_bad_code(tmp_path):
    p = corrupt(tmp_path, "census", "ubigeo", {0: "10101"})
    assert "column 'ubigeo': expected a 6-digit code string; first offending rows: 2 ('10101')" in error_of(p, "census")


def test_many_offending_rows_are_counted(tmp_path):
    p = corrupt(tmp_path, "census", "pop_5plus", {i: "-1" for i in range(8)})
    assert "first offending rows: 2 (-1), 3 (-1), 4 (-1), 5 (-1), 6 (-1) and 3 more" in error_of(p, "census")


def test_row_numbers_follow_multiline_fields(tmp_path):
    lines = (RAW / KINDS["districts"].path).read_text(encoding="utf-8").splitlines(keepends=True)
    lines[79] = lines[79].replace(",-", ",-9", 1)  # line 80, after two quoted capitals that span two lines
    p = tmp_path / "districts.csv"
    p.write_text("".join(lines[:100]), encoding="utf-8")
    assert "column 'latitude': expected between -90 and 90; first offending rows: 80 (-9" in error_of(p, "districts")


def test_empty_and_header_only_files(tmp_path):
    (tmp_path / "empty.csv").write_text("")
    assert "empty.csv: file is empty (0 bytes)" in error_of(tmp_path / "empty.csv", "census")
    header, _ = real_rows("census", 1)
    p = write_csv(tmp_path / "header.csv", header, [])
    assert "header.csv: no data rows" in error_of(p, "census")


def test_unknown_kind_and_missing_file(tmp_path):
    msg = error_of(RAW / KINDS["census"].path, "censos")
    assert "Unknown data kind 'censos'" in msg and all(k in msg for k in KINDS)
    assert "nope.csv: file not found" in error_of(tmp_path / "nope.csv", "census")


def test_unreadable_geojson(tmp_path):
    (tmp_path / "bad.geojson").write_text("{not json")
    assert "bad.geojson: could not be read as district_polygons" in error_of(
        tmp_path / "bad.geojson", "district_polygons"
    )


def test_geojson_duplicate_code_names_feature(tmp_path):
    feat = lambda code: {
        "type": "Feature",
        "properties": {"IDDIST": code},
        "geometry": {"type": "Point", "coordinates": [-77.0, -12.0]},
    }
    p = tmp_path / "d.geojson"
    p.write_text(
        json.dumps({"type": "FeatureCollection", "features": [feat("010101"), feat("010102"), feat("010101")]})
    )
    assert (
        "d.geojson: column 'IDDIST': expected unique values; duplicated; "
        "first offending rows: 1 ('010101'), 3 ('010101')" in error_of(p, "district_polygons")
    )


def test_errors_are_urbanlab_errors():
    assert issubclass(DataValidationError, UrbanlabError)
    with pytest.raises(DataValidationError, match="<frame>: column 'persons': missing"):
        validate_frame(
            pd.DataFrame(dict(dest_ubigeo=["010101"], origin_ubigeo=[None], origin_label=["x"])), "migration"
        )


# --- loaders ------------------------------------------------------------------------------------


def test_census_sums_to_official_total():
    census = load_census(root=ROOT)
    assert int(census.population.sum()) == 29_381_884
    assert census.ubigeo.dtype == "string" and census.population.dtype == "int64"


def test_loader_dtypes():
    d = load_districts(root=ROOT)
    assert d.ubigeo.dtype == "string" and d.hdi_2019.dtype == "float64" and d.latitude.dtype == "float64"
    assert int(d.hdi_2019.isna().sum()) == 19
    m = load_migration(root=ROOT)
    assert list(m.columns) == ["dest_ubigeo", "origin_ubigeo", "origin_label", "persons"] and m.persons.dtype == "int64"
    pp = load_populated_places(root=ROOT)
    assert pp.is_urban.dtype == bool and int(pp.is_urban.sum()) == 3747 and pp.ccpp_code.str.len().eq(10).all()
    g = load_district_polygons(root=ROOT)
    assert type(g).__name__ == "GeoDataFrame" and g.crs.to_epsg() == 4326 and "ubigeo" in g.columns
    assert g.geometry.dropna().is_valid.all()
    w = load_wup_cities(root=ROOT)
    assert dict(w.dtypes.astype(str)) == dict(
        city_code="int64",
        country_code="int64",
        country="string",
        city="string",
        latitude="float64",
        longitude="float64",
        year="int64",
        population="int64",
        is_projection="bool",
    )
    lima = w[(w.city == "Lima") & (w.country == "Peru")].set_index("year")
    assert lima.population[2015] == 9_812_737 and not lima.is_projection[2015] and lima.is_projection[2020]
    assert len(load_wup_cities(root=ROOT, annual=True)) == 1860 * 86


def test_loader_reads_a_users_file(tmp_path):
    header, rows = real_rows("census", 4)
    census = load_census(path=write_csv(tmp_path / "mine.csv", header, rows))
    assert census.ubigeo.tolist() == ["010101", "010102", "010103", "010104"]
    with pytest.raises(DataValidationError, match="mine.csv: column 'pop_5plus'"):
        load_census(path=corrupt(tmp_path, "census", "pop_5plus", {0: "-2"}, name="mine.csv"))


def test_join_report_on_real_data():
    r = join_report(load_census(root=ROOT), load_districts(root=ROOT), load_district_polygons(root=ROOT))
    assert r.sizes == dict(census=1874, districts=1892, polygons=1834)
    assert r.in_all == 1832
    groups = {" + ".join(g["found_in"]): g for g in r.groups}
    assert {k: g["count"] for k, g in groups.items()} == {
        "census + districts": 42,
        "districts": 16,
        "districts + polygons": 2,
    }
    assert groups["districts + polygons"]["codes"] == ["160109", "160114"]
    assert r.notes == dict(
        census_rows_without_code=0,
        districts_rows_without_code=1,
        polygons_rows_without_code=0,
        polygons_without_geometry=8,
    )
    # every code is accounted for: in all three or in exactly one group
    assert r.in_all + sum(g["count"] for g in r.groups) == 1892
    assert "in all 3: 1,832" in str(r)


def test_build_interim_sample(tmp_path):
    paths = build_interim(tmp_path / "interim", max_rows=50, root=ROOT)
    assert set(paths) == {
        "districts",
        "provinces",
        "census",
        "migration",
        "populated_places",
        "district_polygons",
        "wup_cities",
        "schools",
        "mobile_coverage",
        "join_report",
        "places_report",
    }
    assert all(p.is_file() and p.parent == tmp_path / "interim" for p in paths.values())
    assert len(pd.read_parquet(paths["migration"])) == 50 and len(pd.read_parquet(paths["census"])) == 1874
    cities = pd.read_parquet(paths["wup_cities"])  # the first 50 rows, plus every row of Peru's 10 cities
    assert len(cities) == 50 + 10 * 18 and cities[cities.country == "Peru"].city_code.nunique() == 10
    import geopandas as gpd

    assert gpd.read_parquet(paths["district_polygons"]).crs.to_epsg() == 4326
    assert json.loads(paths["join_report"].read_text())["in_all"] == 1832
    assert not [p for p in (tmp_path / "interim").iterdir() if p.name.startswith(".")]  # no temporaries left


# --- the command line ---------------------------------------------------------------------------


cli = validate_cli  # `urbanlab validate ARGS...` in a subprocess (conftest)


def test_cli_validate_ok():
    r = cli(RAW / KINDS["census"].path, "--kind", "census")
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.strip().splitlines()) == 1 and "OK" in r.stdout


def test_cli_validate_error_without_traceback(tmp_path):
    p = corrupt(tmp_path, "census", "pop_total_2017", {3: "-5"})
    r = cli(p, "--kind", "census")
    out = r.stdout + r.stderr
    assert r.returncode == 1
    assert "Traceback" not in out
    assert "census.csv: column 'pop_total_2017': expected >= 0; first offending rows: 5 (-5)" in out


def test_cli_validate_series(tmp_path):
    "A growth series is a kind too: Peru's census totals pass; a unit with two years is refused, its rows named."
    r = cli(RAW / KINDS["series"].path, "--kind", "series")
    assert r.returncode == 0 and "OK" in r.stdout, r.stderr
    p = tmp_path / "s.csv"
    p.write_text("unit_id,year,population\np,1990,10\np,2000,11\nq,1990,5\nq,2000,6\nq,2010,7\n")
    r = cli(p, "--kind", "series")
    assert r.returncode == 1 and "Traceback" not in r.stdout + r.stderr
    assert (
        "s.csv: column 'unit_id': expected at least 3 years of each unit (a forecast needs them); "
        "first offending rows: 2 ('p'), 3 ('p')" in r.stdout + r.stderr
    )


def test_cli_validate_unknown_kind(tmp_path):
    r = cli(RAW / KINDS["census"].path, "--kind", "censos")
    assert r.returncode == 1 and "Traceback" not in r.stdout + r.stderr and "expected one of" in r.stderr + r.stdout


# --- populated places, schools and mobile coverage ------------------------------------------------


def test_places_join_and_sum_to_the_census():
    "The join counts of ingest's places report, against pandas on the raw CSVs and OSIPTEL's own district counts."
    from urbanlab.data.load import (
        add_place_population,
        load_census,
        load_mobile_coverage,
        load_place_population,
        load_schools,
        places_report,
    )

    people, census = load_place_population(), load_census()
    places = add_place_population(load_populated_places(), people)
    assert places.population.notna().all() and places.population.sum() == census.population.sum() == 29_381_884
    r = places_report(load_populated_places(), people, census, load_schools(), load_mobile_coverage())
    codes = {"ubigeo": str, "codcp_inei": str, "codlocal": str}
    raw = pd.read_csv(RAW / "peru/minedu_padron_primaria_secundaria.csv.gz", dtype=codes)
    outside = raw[~raw.ubigeo.isin(census.ubigeo)]
    assert r["schools"]["districts_not_in_census"]["services"] == len(outside) == 174
    assert r["schools"]["districts_not_in_census"]["count"] == outside.ubigeo.nunique() == 16
    assert r["schools"]["without_place_code"] == raw.codcp_inei.isna().sum() == 4915
    assert r["schools"]["buildings"] == raw.codlocal.nunique() == 44072
    assert r["places"]["inhabited"] == 77916 and r["places"]["without_coordinates"]["count"] == 0
    osiptel = pd.read_csv(RAW / "osiptel_coverage/osiptel_mobile_internet_district_2023.csv", dtype={"ubigeo": str})
    ours = places[places.population > 0].groupby("ubigeo").size()
    assert (ours.reindex(osiptel.ubigeo).fillna(0).to_numpy() == osiptel.n_ccpp_inhabited.to_numpy()).all()


@pytest.mark.parametrize(
    "kind, col, changes, expected",
    [
        ("schools", "lat", {2: "12.5"}, "column 'lat': expected between -18.5 and 0.1; first offending rows: 4 (12.5)"),
        (
            "schools",
            "codlocal",
            {0: "14"},
            "column 'codlocal': expected a 6-digit code string; first offending rows: 2",
        ),
        ("place_population", "pob_total", {1: "many"}, "column 'pob_total': expected int64 values; these do not parse"),
        (
            "place_population",
            "pob_mujer",
            {3: "1"},
            "rows: expected pob_hombre + pob_mujer = pob_total; first offending rows: 5",
        ),
        ("mobile_coverage", "has_4g", {5: "2"}, "column 'has_4g': expected 0 or 1; first offending rows: 7 (2)"),
    ],
)
def test_bad_places_schools_and_coverage_rows_are_named(tmp_path, kind, col, changes, expected):
    p = corrupt(tmp_path, kind, col, changes)
    r = validate_cli(p, "--kind", kind)
    assert r.returncode == 1 and f"{kind}.csv: {expected}" in r.stderr + r.stdout, r.stderr
