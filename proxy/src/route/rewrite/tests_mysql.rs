//! MySQL / MariaDB rewrite cases: client SQL → SQL sent to the target.

use super::tests::{api_map, check, check_keys, moved_map, reserved_map};
use super::*;

const MY: Dialect = Dialect::Mysql;

#[test]
fn renames_tables_and_columns() {
    check(MY, &api_map("app", true), Some("app"), &[
        ("SELECT id, path FROM api",
         "SELECT id, endpoint_path AS path FROM t_sys_api_endpoints AS api"),
        ("SELECT * FROM api",
         "SELECT id, endpoint_path AS path, http_method AS method, created_at FROM t_sys_api_endpoints AS api"),
        ("SELECT a.* FROM api AS a",
         "SELECT a.id, a.endpoint_path AS path, a.http_method AS method, a.created_at FROM t_sys_api_endpoints AS a"),
        ("SELECT path FROM app.api WHERE method = 'GET'",
         "SELECT endpoint_path AS path FROM app.t_sys_api_endpoints AS api WHERE http_method = 'GET'"),
        ("SELECT app.api.path FROM app.api",
         "SELECT api.endpoint_path AS path FROM app.t_sys_api_endpoints AS api"),
        ("SELECT `path` FROM `api`",
         "SELECT endpoint_path AS `path` FROM t_sys_api_endpoints AS `api`"),
        ("SELECT PATH, Method AS m FROM api",
         "SELECT endpoint_path AS PATH, http_method AS m FROM t_sys_api_endpoints AS api"),
        ("SELECT api.PATH FROM api",
         "SELECT api.endpoint_path AS PATH FROM t_sys_api_endpoints AS api"),
        ("SELECT path FROM API", "untouched"),
        ("SELECT path FROM other.api", "untouched"),
        ("SELECT p.path AS route FROM api p",
         "SELECT p.endpoint_path AS route FROM t_sys_api_endpoints p"),
        ("SELECT path AS id FROM api WHERE id = 5",
         "SELECT endpoint_path AS id FROM t_sys_api_endpoints AS api WHERE id = 5"),
        ("SELECT JSON_EXTRACT(path, '$.a'), path->>'$.b' FROM api",
         "SELECT JSON_EXTRACT(endpoint_path, '$.a'), endpoint_path ->> '$.b' FROM t_sys_api_endpoints AS api"),
        ("SELECT CAST(id AS CHAR), CONCAT(method, ' ', path) FROM api",
         "SELECT CAST(id AS CHAR), CONCAT(http_method, ' ', endpoint_path) FROM t_sys_api_endpoints AS api"),
        ("SELECT path FROM api WHERE id = ? AND method = ?",
         "SELECT endpoint_path AS path FROM t_sys_api_endpoints AS api WHERE id = ? AND http_method = ?"),
        ("/* switchyard:target */ SELECT path FROM api # trailing",
         "SELECT endpoint_path AS path FROM t_sys_api_endpoints AS api"),
        ("SELECT path FROM api WHERE method = \"GET\"",
         "SELECT endpoint_path AS path FROM t_sys_api_endpoints AS api WHERE http_method = \"GET\""),
        ("SELECT id FROM api WHERE method IN ('GET', 'POST') AND created_at BETWEEN ? AND ?",
         "SELECT id FROM t_sys_api_endpoints AS api WHERE http_method IN ('GET', 'POST') AND created_at BETWEEN ? AND ?"),
        ("SELECT CASE method WHEN 'GET' THEN 1 ELSE 0 END FROM api",
         "SELECT CASE http_method WHEN 'GET' THEN 1 ELSE 0 END FROM t_sys_api_endpoints AS api"),
        ("SELECT path FROM api USE INDEX (idx_path) WHERE path = 'x'",
         "SELECT endpoint_path AS path FROM t_sys_api_endpoints AS api WHERE endpoint_path = 'x'"),
        ("SELECT 1; SELECT path FROM api",
         "SELECT 1; SELECT endpoint_path AS path FROM t_sys_api_endpoints AS api"),
    ]);
}

#[test]
fn clauses() {
    check(MY, &api_map("app", false), Some("app"), &[
        ("SELECT path AS method FROM api ORDER BY method",
         "SELECT endpoint_path AS method FROM t_sys_api_endpoints AS api ORDER BY method"),
        ("SELECT path FROM api ORDER BY method DESC, path",
         "SELECT endpoint_path AS path FROM t_sys_api_endpoints AS api ORDER BY http_method DESC, path"),
        ("SELECT method, COUNT(*) AS n FROM api GROUP BY method HAVING n > 1",
         "SELECT http_method AS method, COUNT(*) AS n FROM t_sys_api_endpoints AS api GROUP BY http_method HAVING n > 1"),
        ("SELECT upper(path) AS method FROM api GROUP BY method", "error:ambiguous_column"),
        ("SELECT method AS path, COUNT(*) FROM api GROUP BY method HAVING path <> ''",
         "error:ambiguous_column"),
        ("SELECT path FROM api ORDER BY id LIMIT 10 OFFSET 20",
         "SELECT endpoint_path AS path FROM t_sys_api_endpoints AS api ORDER BY id LIMIT 10 OFFSET 20"),
        ("SELECT path FROM api LIMIT 20, 10",
         "SELECT endpoint_path AS path FROM t_sys_api_endpoints AS api LIMIT 20, 10"),
        ("SELECT path FROM api LIMIT ?, ?",
         "SELECT endpoint_path AS path FROM t_sys_api_endpoints AS api LIMIT ?, ?"),
        ("SELECT path, ROW_NUMBER() OVER (PARTITION BY method ORDER BY created_at DESC) AS rn FROM api",
         "SELECT endpoint_path AS path, ROW_NUMBER() OVER (PARTITION BY http_method ORDER BY created_at DESC) AS rn FROM t_sys_api_endpoints AS api"),
        ("SELECT path, RANK() OVER w FROM api WINDOW w AS (PARTITION BY method ORDER BY id)",
         "SELECT endpoint_path AS path, RANK() OVER w FROM t_sys_api_endpoints AS api WINDOW w AS (PARTITION BY http_method ORDER BY id)"),
        ("SELECT DISTINCT method FROM api",
         "SELECT DISTINCT http_method AS method FROM t_sys_api_endpoints AS api"),
        ("SELECT path FROM api WHERE id = 1 FOR UPDATE",
         "SELECT endpoint_path AS path FROM t_sys_api_endpoints AS api WHERE id = 1 FOR UPDATE"),
        ("SELECT path FROM api WHERE id = 1 LOCK IN SHARE MODE",
         "SELECT endpoint_path AS path FROM t_sys_api_endpoints AS api WHERE id = 1 LOCK IN SHARE MODE"),
        ("SELECT path FROM api WHERE id = 1 FOR SHARE",
         "SELECT endpoint_path AS path FROM t_sys_api_endpoints AS api WHERE id = 1 LOCK IN SHARE MODE"),
        ("SELECT path FROM api WHERE EXISTS (SELECT 1 FROM calls c WHERE c.api_id = api.id)",
         "SELECT endpoint_path AS path FROM t_sys_api_endpoints AS api WHERE EXISTS (SELECT 1 FROM calls c WHERE c.api_id = api.id)"),
        ("SELECT SQL_NO_CACHE path FROM api",
         "SELECT SQL_NO_CACHE endpoint_path AS path FROM t_sys_api_endpoints AS api"),
    ]);
}

#[test]
fn joins_subqueries_ctes_and_unions() {
    check(MY, &api_map("app", false), Some("app"), &[
        ("SELECT a.path, c.n FROM api a JOIN calls c ON c.api_id = a.id WHERE a.method = ?",
         "SELECT a.endpoint_path AS path, c.n FROM t_sys_api_endpoints a JOIN calls c ON c.api_id = a.id WHERE a.http_method = ?"),
        ("SELECT path FROM api a JOIN calls c ON c.api_id = a.id", "error:ambiguous_column"),
        ("SELECT * FROM api a LEFT JOIN calls c ON c.api_id = a.id",
         "SELECT a.id, a.endpoint_path AS path, a.http_method AS method, a.created_at, c.* FROM t_sys_api_endpoints a LEFT JOIN calls c ON c.api_id = a.id"),
        ("SELECT a.path FROM api a JOIN calls c USING (id)",
         "SELECT a.endpoint_path AS path FROM t_sys_api_endpoints a JOIN calls c USING(id)"),
        ("SELECT a.id FROM api a JOIN routes r USING (method)", "error:expression"),
        ("SELECT a.path, b.path FROM api a JOIN api b ON a.id = b.id",
         "SELECT a.endpoint_path AS path, b.endpoint_path AS path FROM t_sys_api_endpoints a JOIN t_sys_api_endpoints b ON a.id = b.id"),
        ("SELECT name FROM calls WHERE api_id IN (SELECT id FROM api WHERE method = 'GET')",
         "SELECT name FROM calls WHERE api_id IN (SELECT id FROM t_sys_api_endpoints AS api WHERE http_method = 'GET')"),
        ("SELECT s.path FROM (SELECT path FROM api WHERE method = 'GET') AS s",
         "SELECT s.path FROM (SELECT endpoint_path AS path FROM t_sys_api_endpoints AS api WHERE http_method = 'GET') AS s"),
        ("SELECT c.n, (SELECT a.path FROM api a WHERE a.id = c.api_id) AS p FROM calls c",
         "SELECT c.n, (SELECT a.endpoint_path AS path FROM t_sys_api_endpoints a WHERE a.id = c.api_id) AS p FROM calls c"),
        ("SELECT path FROM api WHERE EXISTS (SELECT 1 FROM calls WHERE api_id = id)",
         "error:ambiguous_column"),
        ("WITH g AS (SELECT id, path FROM api WHERE method = 'GET') SELECT path FROM g",
         "WITH g AS (SELECT id, endpoint_path AS path FROM t_sys_api_endpoints AS api WHERE http_method = 'GET') SELECT path FROM g"),
        ("WITH api AS (SELECT 1 AS path) SELECT path FROM api", "untouched"),
        ("WITH method AS (SELECT method FROM api) SELECT * FROM method",
         "WITH method AS (SELECT http_method AS method FROM t_sys_api_endpoints AS api) SELECT * FROM method"),
        ("SELECT a.path, l.n FROM api a, LATERAL (SELECT COUNT(*) AS n FROM calls c WHERE c.api_id = a.id) AS l",
         "SELECT a.endpoint_path AS path, l.n FROM t_sys_api_endpoints a, LATERAL (SELECT COUNT(*) AS n FROM calls c WHERE c.api_id = a.id) AS l"),
        ("SELECT path FROM api UNION SELECT path FROM routes",
         "SELECT endpoint_path AS path FROM t_sys_api_endpoints AS api UNION SELECT path FROM routes"),
        ("SELECT id FROM api EXCEPT SELECT api_id FROM calls",
         "SELECT id FROM t_sys_api_endpoints AS api EXCEPT SELECT api_id FROM calls"),
        ("SELECT id FROM api INTERSECT SELECT api_id FROM calls",
         "SELECT id FROM t_sys_api_endpoints AS api INTERSECT SELECT api_id FROM calls"),
    ]);
}

#[test]
fn no_renames_reserved_words_and_databases() {
    check(
        MY,
        &moved_map("app", "app2"),
        Some("app"),
        &[
            (
                "SELECT * FROM api",
                "SELECT id, path, method, created_at FROM app2.t_sys_api_endpoints AS api",
            ),
            (
                "SELECT path FROM app.api WHERE id = 3",
                "SELECT path FROM app2.t_sys_api_endpoints AS api WHERE id = 3",
            ),
        ],
    );
    check(MY, &reserved_map("app"), Some("app"), &[
        ("SELECT `order`, `user` FROM api",
         "SELECT sort_order AS `order`, `user` FROM t_sys_api_endpoints AS api"),
        ("SELECT * FROM api ORDER BY `order`",
         "SELECT id, sort_order AS `order`, user FROM t_sys_api_endpoints AS api ORDER BY `order`"),
        ("SELECT user FROM api WHERE `order` > 2",
         "SELECT user FROM t_sys_api_endpoints AS api WHERE sort_order > 2"),
    ]);
    check(
        MY,
        &api_map("app", false),
        None,
        &[
            ("SELECT path FROM api", "untouched"),
            (
                "SELECT path FROM app.api",
                "SELECT endpoint_path AS path FROM app.t_sys_api_endpoints AS api",
            ),
        ],
    );
}

#[test]
fn unroutable_reads() {
    check(MY, &api_map("app", false), Some("app"), &[
        ("SELECT api FROM api", "error:expression"),
        ("SELECT * FROM api NATURAL JOIN routes", "error:expression"),
        ("SELECT path FROM api WHERE MATCH (path) AGAINST ('x')", "error:expression"),
        ("SELECT path INTO @p FROM api LIMIT 1", "error:writes"),
        ("INSERT INTO archive SELECT * FROM api", "error:writes"),
        ("REPLACE INTO archive SELECT * FROM api", "error:writes"),
        ("UPDATE api SET path = 'x' WHERE id = 1", "error:writes"),
        ("DELETE FROM api WHERE id = 1", "error:writes"),
        ("SELECT * FROM api PARTITION (p0)", "error:expression"),
        ("SET @x = 1; SELECT path FROM api", "error:expression"),
        ("SELECT * FROM JSON_TABLE((SELECT path FROM api LIMIT 1), '$[*]' COLUMNS (x INT PATH '$')) AS j", "error:view"),
        ("SELECT FROM api WHERE (", "error:expression"),
    ]);
}

#[test]
fn more_shapes() {
    check(
        MY,
        &api_map("app", false),
        Some("app"),
        &[
            // sqlparser 0.63 does not parse MySQL's TABLE statement: it is
            // unparsed text that names the source.
            ("TABLE api", "error:expression"),
            // An ORM's quoted, fully qualified style.
            ("SELECT `api`.`id`, `api`.`path` FROM `api` WHERE `api`.`id` = 1",
             "SELECT `api`.`id`, `api`.endpoint_path AS `path` FROM t_sys_api_endpoints AS `api` WHERE `api`.`id` = 1"),
            ("SELECT path FROM api ORDER BY path",
             "SELECT endpoint_path AS path FROM t_sys_api_endpoints AS api ORDER BY path"),
            ("SELECT path, COUNT(*) FROM api GROUP BY path HAVING path LIKE '/v1%'",
             "SELECT endpoint_path AS path, COUNT(*) FROM t_sys_api_endpoints AS api GROUP BY endpoint_path HAVING endpoint_path LIKE '/v1%'"),
        ],
    );
}

#[test]
fn sticky_keys() {
    use KeyValue::{Literal, Param};
    check_keys(
        MY,
        "id",
        &[
            (
                "SELECT path FROM api WHERE id = 42",
                Some(Literal("42".into())),
            ),
            (
                "SELECT path FROM api WHERE method = ? AND id = ?",
                Some(Param(2)),
            ),
            ("SELECT path FROM api WHERE id = ? LIMIT ?", Some(Param(1))),
            (
                "SELECT ? AS x, path FROM api WHERE path = ? AND id = ?",
                Some(Param(3)),
            ),
            (
                "SELECT path FROM api WHERE 42 = id",
                Some(Literal("42".into())),
            ),
            ("SELECT path FROM api WHERE id = 1 OR id = 2", None),
            (
                "SELECT a.path FROM api a WHERE a.id = 7 AND a.method = 'GET'",
                Some(Literal("7".into())),
            ),
            ("SELECT path FROM api WHERE id IN (?)", Some(Param(1))),
        ],
    );
    check_keys(
        MY,
        "method",
        &[
            (
                "SELECT path FROM api WHERE method = 'acme'",
                Some(Literal("acme".into())),
            ),
            (
                "SELECT path FROM api WHERE METHOD = \"acme\"",
                Some(Literal("acme".into())),
            ),
        ],
    );
}
