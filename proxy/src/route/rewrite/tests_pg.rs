//! PostgreSQL rewrite cases: client SQL → SQL sent to the target.

use super::tests::{api_map, check, check_keys, moved_map, reserved_map};
use super::*;

const PG: Dialect = Dialect::Postgres;

#[test]
fn renames_tables_and_columns() {
    check(PG, &api_map("public", false), Some("public"), &[
        ("SELECT id, path FROM api",
         "SELECT id, endpoint_path AS path FROM t_sys_api_endpoints AS api"),
        ("SELECT * FROM api",
         "SELECT id, endpoint_path AS path, http_method AS method, created_at FROM t_sys_api_endpoints AS api"),
        ("SELECT a.* FROM api a",
         "SELECT a.id, a.endpoint_path AS path, a.http_method AS method, a.created_at FROM t_sys_api_endpoints a"),
        ("SELECT path FROM public.api WHERE method = 'GET'",
         "SELECT endpoint_path AS path FROM public.t_sys_api_endpoints AS api WHERE http_method = 'GET'"),
        ("SELECT api.path FROM api",
         "SELECT api.endpoint_path AS path FROM t_sys_api_endpoints AS api"),
        ("SELECT public.api.path FROM public.api",
         "SELECT api.endpoint_path AS path FROM public.t_sys_api_endpoints AS api"),
        ("SELECT \"path\" FROM \"api\"",
         "SELECT endpoint_path AS path FROM t_sys_api_endpoints AS \"api\""),
        ("SELECT PATH, Id FROM API",
         "SELECT endpoint_path AS path, Id FROM t_sys_api_endpoints AS API"),
        ("SELECT path FROM \"Api\"", "untouched"),
        ("SELECT path FROM audit.api", "untouched"),
        ("SELECT p.path AS route FROM api p",
         "SELECT p.endpoint_path AS route FROM t_sys_api_endpoints p"),
        ("SELECT path AS id FROM api WHERE id = 5",
         "SELECT endpoint_path AS id FROM t_sys_api_endpoints AS api WHERE id = 5"),
        ("SELECT upper(path), lower(api.method) FROM api",
         "SELECT upper(endpoint_path), lower(api.http_method) FROM t_sys_api_endpoints AS api"),
        ("SELECT CASE WHEN method = 'GET' THEN path ELSE NULL END AS p FROM api",
         "SELECT CASE WHEN http_method = 'GET' THEN endpoint_path ELSE NULL END AS p FROM t_sys_api_endpoints AS api"),
        ("SELECT path FROM api WHERE id = $1 AND method = $2",
         "SELECT endpoint_path AS path FROM t_sys_api_endpoints AS api WHERE id = $1 AND http_method = $2"),
        ("/* switchyard:target */ SELECT path FROM api -- trailing",
         "SELECT endpoint_path AS path FROM t_sys_api_endpoints AS api"),
        ("SELECT path ->> 'v' FROM api WHERE method -> 'k' = '\"x\"'",
         "SELECT endpoint_path ->> 'v' FROM t_sys_api_endpoints AS api WHERE http_method -> 'k' = '\"x\"'"),
        ("SELECT path::varchar, CAST(method AS text) FROM api",
         "SELECT endpoint_path::VARCHAR, CAST(http_method AS TEXT) FROM t_sys_api_endpoints AS api"),
        ("SELECT id FROM api WHERE method IN ('GET', 'POST') AND created_at BETWEEN $1 AND $2",
         "SELECT id FROM t_sys_api_endpoints AS api WHERE http_method IN ('GET', 'POST') AND created_at BETWEEN $1 AND $2"),
        ("SELECT path FROM api WHERE path LIKE '/v1/%' AND method IS NOT NULL",
         "SELECT endpoint_path AS path FROM t_sys_api_endpoints AS api WHERE endpoint_path LIKE '/v1/%' AND http_method IS NOT NULL"),
        ("TABLE api",
         "SELECT id, endpoint_path AS path, http_method AS method, created_at FROM t_sys_api_endpoints AS api"),
        ("SELECT 1; SELECT path FROM api",
         "SELECT 1; SELECT endpoint_path AS path FROM t_sys_api_endpoints AS api"),
    ]);
}

#[test]
fn clauses() {
    check(PG, &api_map("public", false), Some("public"), &[
        ("SELECT path AS method FROM api ORDER BY method",
         "SELECT endpoint_path AS method FROM t_sys_api_endpoints AS api ORDER BY method"),
        ("SELECT path FROM api ORDER BY method DESC, path",
         "SELECT endpoint_path AS path FROM t_sys_api_endpoints AS api ORDER BY http_method DESC, path"),
        ("SELECT method, count(*) FROM api GROUP BY method HAVING count(*) > 1 AND method <> 'X'",
         "SELECT http_method AS method, count(*) FROM t_sys_api_endpoints AS api GROUP BY http_method HAVING count(*) > 1 AND http_method <> 'X'"),
        ("SELECT upper(path) AS method FROM api GROUP BY method",
         "SELECT upper(endpoint_path) AS method FROM t_sys_api_endpoints AS api GROUP BY http_method"),
        ("SELECT path FROM api ORDER BY id LIMIT 10 OFFSET 20",
         "SELECT endpoint_path AS path FROM t_sys_api_endpoints AS api ORDER BY id LIMIT 10 OFFSET 20"),
        ("SELECT path FROM api ORDER BY created_at FETCH FIRST 5 ROWS ONLY",
         "SELECT endpoint_path AS path FROM t_sys_api_endpoints AS api ORDER BY created_at FETCH FIRST 5 ROWS ONLY"),
        ("SELECT path, row_number() OVER (PARTITION BY method ORDER BY created_at DESC) FROM api",
         "SELECT endpoint_path AS path, row_number() OVER (PARTITION BY http_method ORDER BY created_at DESC) FROM t_sys_api_endpoints AS api"),
        ("SELECT path, rank() OVER w FROM api WINDOW w AS (PARTITION BY method ORDER BY id)",
         "SELECT endpoint_path AS path, rank() OVER w FROM t_sys_api_endpoints AS api WINDOW w AS (PARTITION BY http_method ORDER BY id)"),
        ("SELECT DISTINCT method FROM api",
         "SELECT DISTINCT http_method AS method FROM t_sys_api_endpoints AS api"),
        ("SELECT DISTINCT ON (method) method, path FROM api ORDER BY method, created_at DESC",
         "SELECT DISTINCT ON (method) http_method AS method, endpoint_path AS path FROM t_sys_api_endpoints AS api ORDER BY method, created_at DESC"),
        ("SELECT path FROM api WHERE id = 1 FOR UPDATE",
         "SELECT endpoint_path AS path FROM t_sys_api_endpoints AS api WHERE id = 1 FOR UPDATE"),
        ("SELECT path FROM api a WHERE id = 1 FOR SHARE OF a NOWAIT",
         "SELECT endpoint_path AS path FROM t_sys_api_endpoints a WHERE id = 1 FOR SHARE OF a NOWAIT"),
        ("SELECT path FROM api WHERE NOT EXISTS (SELECT 1 FROM calls c WHERE c.api_id = api.id)",
         "SELECT endpoint_path AS path FROM t_sys_api_endpoints AS api WHERE NOT EXISTS (SELECT 1 FROM calls c WHERE c.api_id = api.id)"),
    ]);
}

#[test]
fn joins_and_subqueries() {
    check(PG, &api_map("public", false), Some("public"), &[
        ("SELECT a.path, c.n FROM api a JOIN calls c ON c.api_id = a.id WHERE a.method = $1",
         "SELECT a.endpoint_path AS path, c.n FROM t_sys_api_endpoints a JOIN calls c ON c.api_id = a.id WHERE a.http_method = $1"),
        ("SELECT path FROM api a JOIN calls c ON c.api_id = a.id", "error:ambiguous_column"),
        ("SELECT a.path, total FROM api a JOIN calls c ON c.api_id = a.id",
         "SELECT a.endpoint_path AS path, total FROM t_sys_api_endpoints a JOIN calls c ON c.api_id = a.id"),
        ("SELECT * FROM api a JOIN calls c ON c.api_id = a.id",
         "SELECT a.id, a.endpoint_path AS path, a.http_method AS method, a.created_at, c.* FROM t_sys_api_endpoints a JOIN calls c ON c.api_id = a.id"),
        ("SELECT * FROM calls, api",
         "SELECT calls.*, api.id, api.endpoint_path AS path, api.http_method AS method, api.created_at FROM calls, t_sys_api_endpoints AS api"),
        ("SELECT a.path FROM api a JOIN calls c USING (id)",
         "SELECT a.endpoint_path AS path FROM t_sys_api_endpoints a JOIN calls c USING(id)"),
        ("SELECT a.id FROM api a JOIN routes r USING (path)", "error:expression"),
        ("SELECT * FROM api a JOIN calls c USING (id)", "error:expression"),
        ("SELECT * FROM api NATURAL JOIN routes", "error:expression"),
        ("SELECT a.path, b.path FROM api a JOIN api b ON a.id = b.id",
         "SELECT a.endpoint_path AS path, b.endpoint_path AS path FROM t_sys_api_endpoints a JOIN t_sys_api_endpoints b ON a.id = b.id"),
        ("SELECT path FROM api WHERE id IN (SELECT api_id FROM calls WHERE n > 10)",
         "SELECT endpoint_path AS path FROM t_sys_api_endpoints AS api WHERE id IN (SELECT api_id FROM calls WHERE n > 10)"),
        ("SELECT name FROM calls WHERE api_id IN (SELECT id FROM api WHERE method = 'GET')",
         "SELECT name FROM calls WHERE api_id IN (SELECT id FROM t_sys_api_endpoints AS api WHERE http_method = 'GET')"),
        ("SELECT s.path FROM (SELECT path FROM api WHERE method = 'GET') s",
         "SELECT s.path FROM (SELECT endpoint_path AS path FROM t_sys_api_endpoints AS api WHERE http_method = 'GET') s"),
        ("SELECT * FROM (SELECT * FROM api) s",
         "SELECT * FROM (SELECT id, endpoint_path AS path, http_method AS method, created_at FROM t_sys_api_endpoints AS api) s"),
        ("SELECT c.n, (SELECT a.path FROM api a WHERE a.id = c.api_id) FROM calls c",
         "SELECT c.n, (SELECT a.endpoint_path AS path FROM t_sys_api_endpoints a WHERE a.id = c.api_id) FROM calls c"),
        ("SELECT path FROM api a WHERE EXISTS (SELECT 1 FROM calls c WHERE c.api_id = a.id AND c.verb = a.method)",
         "SELECT endpoint_path AS path FROM t_sys_api_endpoints a WHERE EXISTS (SELECT 1 FROM calls c WHERE c.api_id = a.id AND c.verb = a.http_method)"),
        ("SELECT path FROM api WHERE EXISTS (SELECT 1 FROM calls WHERE api_id = id)",
         "error:ambiguous_column"),
        ("SELECT path FROM api WHERE id = (SELECT max(id))",
         "SELECT endpoint_path AS path FROM t_sys_api_endpoints AS api WHERE id = (SELECT max(id))"),
        ("SELECT a.path, l.n FROM api a, LATERAL (SELECT count(*) AS n FROM calls c WHERE c.api_id = a.id AND c.verb = a.method) l",
         "SELECT a.endpoint_path AS path, l.n FROM t_sys_api_endpoints a, LATERAL (SELECT count(*) AS n FROM calls c WHERE c.api_id = a.id AND c.verb = a.http_method) l"),
        ("SELECT v.x, api.path FROM (VALUES (1), (2)) v(x) JOIN api ON api.id = v.x",
         "SELECT v.x, api.endpoint_path AS path FROM (VALUES (1), (2)) v (x) JOIN t_sys_api_endpoints AS api ON api.id = v.x"),
    ]);
}

#[test]
fn ctes_and_set_operations() {
    check(PG, &api_map("public", false), Some("public"), &[
        ("WITH g AS (SELECT id, path FROM api WHERE method = 'GET') SELECT path FROM g",
         "WITH g AS (SELECT id, endpoint_path AS path FROM t_sys_api_endpoints AS api WHERE http_method = 'GET') SELECT path FROM g"),
        ("WITH api AS (SELECT 1 AS path) SELECT path FROM api", "untouched"),
        ("WITH path AS (SELECT path FROM api) SELECT * FROM path",
         "WITH path AS (SELECT endpoint_path AS path FROM t_sys_api_endpoints AS api) SELECT * FROM path"),
        ("WITH api AS (SELECT 1 AS x) SELECT path FROM public.api",
         "WITH api AS (SELECT 1 AS x) SELECT endpoint_path AS path FROM public.t_sys_api_endpoints AS api"),
        ("WITH RECURSIVE r AS (SELECT id, path FROM api WHERE id = 1 UNION ALL SELECT a.id, a.path FROM api a JOIN r ON a.id = r.id + 1) SELECT * FROM r",
         "WITH RECURSIVE r AS (SELECT id, endpoint_path AS path FROM t_sys_api_endpoints AS api WHERE id = 1 UNION ALL SELECT a.id, a.endpoint_path AS path FROM t_sys_api_endpoints a JOIN r ON a.id = r.id + 1) SELECT * FROM r"),
        ("SELECT path FROM api UNION SELECT path FROM routes",
         "SELECT endpoint_path AS path FROM t_sys_api_endpoints AS api UNION SELECT path FROM routes"),
        ("SELECT id FROM api INTERSECT SELECT api_id FROM calls EXCEPT SELECT id FROM api WHERE method = 'DELETE'",
         "SELECT id FROM t_sys_api_endpoints AS api INTERSECT SELECT api_id FROM calls EXCEPT SELECT id FROM t_sys_api_endpoints AS api WHERE http_method = 'DELETE'"),
        ("(SELECT path FROM api) UNION ALL (SELECT path FROM api) ORDER BY path LIMIT 3",
         "(SELECT endpoint_path AS path FROM t_sys_api_endpoints AS api) UNION ALL (SELECT endpoint_path AS path FROM t_sys_api_endpoints AS api) ORDER BY path LIMIT 3"),
    ]);
}

#[test]
fn casts_back_to_the_source_types() {
    check(PG, &api_map("public", true), Some("public"), &[
        ("SELECT id, path FROM api WHERE id = $1",
         "SELECT CAST(id AS INTEGER) AS id, endpoint_path AS path FROM t_sys_api_endpoints AS api WHERE id = $1"),
        ("SELECT * FROM api ORDER BY id LIMIT 10",
         "SELECT CAST(id AS INTEGER) AS id, endpoint_path AS path, http_method AS method, created_at FROM t_sys_api_endpoints AS api ORDER BY api.id LIMIT 10"),
        ("SELECT a.id AS ident FROM api a ORDER BY ident",
         "SELECT CAST(a.id AS INTEGER) AS ident FROM t_sys_api_endpoints a ORDER BY a.id"),
        ("SELECT count(id) FROM api",
         "SELECT count(id) FROM t_sys_api_endpoints AS api"),
        ("SELECT s.id FROM (SELECT id FROM api) s",
         "SELECT s.id FROM (SELECT id FROM t_sys_api_endpoints AS api) s"),
        ("SELECT id FROM api UNION ALL SELECT id FROM api WHERE method = 'GET'",
         "SELECT CAST(id AS INTEGER) AS id FROM t_sys_api_endpoints AS api UNION ALL SELECT CAST(id AS INTEGER) AS id FROM t_sys_api_endpoints AS api WHERE http_method = 'GET'"),
        ("SELECT DISTINCT id FROM api ORDER BY id",
         "SELECT DISTINCT CAST(id AS INTEGER) AS id FROM t_sys_api_endpoints AS api ORDER BY id"),
        ("SELECT id FROM api WHERE id IN (SELECT id FROM api WHERE path = '/x')",
         "SELECT CAST(id AS INTEGER) AS id FROM t_sys_api_endpoints AS api WHERE id IN (SELECT id FROM t_sys_api_endpoints AS api WHERE endpoint_path = '/x')"),
        ("WITH w AS (SELECT id FROM api) SELECT id FROM w",
         "WITH w AS (SELECT id FROM t_sys_api_endpoints AS api) SELECT id FROM w"),
    ]);
}

#[test]
fn no_renames_and_other_schemas() {
    check(
        PG,
        &moved_map("public", "v2"),
        Some("public"),
        &[
            (
                "SELECT * FROM api",
                "SELECT id, path, method, created_at FROM v2.t_sys_api_endpoints AS api",
            ),
            (
                "SELECT path FROM public.api WHERE id = 3",
                "SELECT path FROM v2.t_sys_api_endpoints AS api WHERE id = 3",
            ),
            (
                "SELECT Path FROM api a",
                "SELECT Path FROM v2.t_sys_api_endpoints a",
            ),
        ],
    );
    check(
        PG,
        &api_map("public", false),
        None,
        &[
            ("SELECT path FROM api", "error:unknown_schema"),
            (
                "SELECT path FROM public.api",
                "SELECT endpoint_path AS path FROM public.t_sys_api_endpoints AS api",
            ),
        ],
    );
    check(
        PG,
        &api_map("public", false),
        Some("audit"),
        &[("SELECT path FROM api", "untouched")],
    );
}

#[test]
fn reserved_words_as_columns() {
    check(PG, &reserved_map("public"), Some("public"), &[
        ("SELECT \"order\", \"user\" FROM api",
         "SELECT sort_order AS \"order\", \"user\" FROM t_sys_api_endpoints AS api"),
        ("SELECT * FROM api ORDER BY \"order\"",
         "SELECT id, sort_order AS \"order\", \"user\" FROM t_sys_api_endpoints AS api ORDER BY \"order\""),
        ("SELECT user, id FROM api WHERE \"order\" > 2",
         "SELECT user, id FROM t_sys_api_endpoints AS api WHERE sort_order > 2"),
    ]);
}

#[test]
fn unroutable_reads() {
    check(
        PG,
        &api_map("public", false),
        Some("public"),
        &[
            ("SELECT api FROM api", "error:expression"),
            ("SELECT to_json(api.*) FROM api", "error:expression"),
            ("SELECT a::text FROM api a", "error:expression"),
            ("SELECT pg_relation_size('api')", "error:expression"),
            ("SELECT 'public.api'::regclass", "error:expression"),
            ("SELECT ctid, path FROM api", "error:expression"),
            ("SELECT * FROM api AS a(x, y)", "error:expression"),
            (
                "WITH d AS (DELETE FROM api WHERE id = 1 RETURNING *) SELECT * FROM d",
                "error:writes",
            ),
            ("INSERT INTO archive SELECT * FROM api", "error:writes"),
            ("SELECT * INTO backup FROM api", "error:writes"),
            ("UPDATE api SET path = 'x'", "error:writes"),
            (
                "DELETE FROM calls WHERE api_id IN (SELECT id FROM api)",
                "error:writes",
            ),
            (
                "SELECT * FROM generate_series(1, (SELECT max(id) FROM api))",
                "error:view",
            ),
            (
                "SELECT * FROM jsonb_to_recordset(pg_catalog.api(1)) AS x(a int)",
                "untouched",
            ),
            ("SET x = 1; SELECT path FROM api", "error:expression"),
            ("EXPLAIN SELECT path FROM api", "error:expression"),
            ("SELECT FROM api WHERE (", "error:expression"),
        ],
    );
}

#[test]
fn more_shapes() {
    check(
        PG,
        &api_map("public", true),
        Some("public"),
        &[
            ("SELECT id, count(*) FROM api GROUP BY id",
             "SELECT CAST(id AS INTEGER) AS id, count(*) FROM t_sys_api_endpoints AS api GROUP BY id"),
            ("SELECT (a).path FROM api a", "error:expression"),
            // An ORM's quoted, fully qualified style.
            ("SELECT \"api\".\"id\", \"api\".\"path\" FROM \"api\" WHERE \"api\".\"id\" = $1 LIMIT $2",
             "SELECT CAST(\"api\".\"id\" AS INTEGER) AS id, \"api\".endpoint_path AS path FROM t_sys_api_endpoints AS \"api\" WHERE \"api\".\"id\" = $1 LIMIT $2"),
            ("SELECT DISTINCT ON (id) id, path FROM api ORDER BY id, created_at",
             "SELECT DISTINCT ON (id) CAST(id AS INTEGER) AS id, endpoint_path AS path FROM t_sys_api_endpoints AS api ORDER BY id, created_at"),
            ("SELECT DISTINCT ON (method) path AS method FROM api ORDER BY method, id",
             "SELECT DISTINCT ON (method) endpoint_path AS method FROM t_sys_api_endpoints AS api ORDER BY method, id"),
            ("SELECT a.path, t FROM api a, unnest(string_to_array(a.path, '/')) t",
             "SELECT a.endpoint_path AS path, t FROM t_sys_api_endpoints a, UNNEST(string_to_array(a.endpoint_path, '/')) t"),
            ("SELECT 1 AS id UNION TABLE api", "error:view"),
            ("SELECT path FROM api WHERE id = ANY($1) AND method <> ALL(ARRAY['X'])",
             "SELECT endpoint_path AS path FROM t_sys_api_endpoints AS api WHERE id = ANY($1) AND http_method <> ALL(ARRAY['X'])"),
        ],
    );
}

#[test]
fn sticky_keys() {
    use KeyValue::{Literal, Param};
    check_keys(PG, "id", &[
        ("SELECT path FROM api WHERE id = 42", Some(Literal("42".into()))),
        ("SELECT path FROM api WHERE path = $1 AND id = $2", Some(Param(2))),
        ("SELECT path FROM api WHERE 42 = id", Some(Literal("42".into()))),
        ("SELECT path FROM api WHERE id = 1 OR id = 2", None),
        ("SELECT path FROM api WHERE NOT (id = 3)", None),
        ("SELECT a.path FROM api a JOIN calls c ON c.api_id = a.id WHERE a.id = 7", Some(Literal("7".into()))),
        ("SELECT path FROM api WHERE id IN (9)", Some(Literal("9".into()))),
        ("SELECT path FROM api WHERE id IN (9, 10)", None),
        ("SELECT path FROM api WHERE (id = $1) AND method = 'x'", Some(Param(1))),
        ("SELECT path FROM api WHERE id = -5", Some(Literal("-5".into()))),
        ("SELECT path FROM api WHERE id = $3::int", Some(Param(3))),
        ("SELECT path FROM api WHERE id > 5", None),
        ("SELECT c.n FROM calls c WHERE c.id = 4 AND c.api_id IN (SELECT id FROM api WHERE id = 8)", Some(Literal("8".into()))),
    ]);
    check_keys(
        PG,
        "method",
        &[
            (
                "SELECT path FROM api WHERE method = 'GET'",
                Some(Literal("GET".into())),
            ),
            (
                "SELECT path FROM api AS x WHERE x.method = 'acme' AND x.id = 1",
                Some(Literal("acme".into())),
            ),
        ],
    );
}
