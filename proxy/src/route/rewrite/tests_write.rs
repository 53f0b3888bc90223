//! Write-switch rewrite cases: a client's write of the source → the same
//! write of the target, per dialect.

use super::tests::{api_map, check_writes};
use super::*;

const PG: Dialect = Dialect::Postgres;
const MY: Dialect = Dialect::Mysql;

#[test]
fn postgres_writes() {
    check_writes(PG, &api_map("public", true), Some("public"), &[
        ("INSERT INTO api (id, path, method) VALUES ($1, $2, 'GET')",
         "INSERT INTO t_sys_api_endpoints AS api (id, endpoint_path, http_method) VALUES ($1, $2, 'GET')"),
        ("INSERT INTO api VALUES (1, '/a', 'GET')",
         "INSERT INTO t_sys_api_endpoints AS api (id, endpoint_path, http_method) VALUES (1, '/a', 'GET')"),
        ("INSERT INTO api (path) VALUES ('/a') RETURNING *",
         "INSERT INTO t_sys_api_endpoints AS api (endpoint_path) VALUES ('/a') RETURNING CAST(id AS INTEGER) AS id, endpoint_path AS path, http_method AS method, created_at"),
        ("INSERT INTO api (path) VALUES ('/a') RETURNING id, path AS p",
         "INSERT INTO t_sys_api_endpoints AS api (endpoint_path) VALUES ('/a') RETURNING CAST(id AS INTEGER) AS id, endpoint_path AS p"),
        ("INSERT INTO api (id, path) VALUES (1, '/a') ON CONFLICT (id) DO UPDATE SET path = EXCLUDED.path, method = api.method WHERE api.path <> EXCLUDED.path",
         "INSERT INTO t_sys_api_endpoints AS api (id, endpoint_path) VALUES (1, '/a') ON CONFLICT(id) DO UPDATE SET endpoint_path = EXCLUDED.endpoint_path, http_method = api.http_method WHERE api.endpoint_path <> EXCLUDED.endpoint_path"),
        ("INSERT INTO api (id, path) VALUES (1, '/a') ON CONFLICT DO NOTHING",
         "INSERT INTO t_sys_api_endpoints AS api (id, endpoint_path) VALUES (1, '/a') ON CONFLICT DO NOTHING"),
        ("INSERT INTO api (id, path) SELECT id, path FROM api WHERE method = 'GET'",
         "INSERT INTO t_sys_api_endpoints AS api (id, endpoint_path) SELECT id, endpoint_path AS path FROM t_sys_api_endpoints AS api WHERE http_method = 'GET'"),
        ("UPDATE api SET path = $1 WHERE id = $2",
         "UPDATE t_sys_api_endpoints AS api SET endpoint_path = $1 WHERE id = $2"),
        ("UPDATE api a SET method = upper(a.method) FROM other o WHERE o.id = a.id RETURNING a.path",
         "UPDATE t_sys_api_endpoints a SET http_method = upper(a.http_method) FROM other o WHERE o.id = a.id RETURNING a.endpoint_path AS path"),
        ("DELETE FROM api WHERE path LIKE '/old/%' RETURNING id",
         "DELETE FROM t_sys_api_endpoints AS api WHERE endpoint_path LIKE '/old/%' RETURNING CAST(id AS INTEGER) AS id"),
        ("DELETE FROM public.api USING other WHERE other.id = api.id",
         "DELETE FROM public.t_sys_api_endpoints AS api USING other WHERE other.id = api.id"),
        ("INSERT INTO other (x) SELECT path FROM api", "error:writes"),
        ("INSERT INTO other (x) VALUES (1)", "untouched"),
        ("UPDATE audit.api SET path = 'x'", "untouched"),
        ("INSERT INTO api (id) VALUES (1) ON CONFLICT ON CONSTRAINT api_pkey DO NOTHING",
         "error:expression"),
        ("INSERT INTO api SELECT * FROM other", "error:expression"),
        ("WITH x AS (DELETE FROM api RETURNING id) SELECT * FROM x", "error:writes"),
        ("BEGIN; INSERT INTO api (id) VALUES (1); DELETE FROM api; COMMIT",
         "BEGIN; INSERT INTO t_sys_api_endpoints AS api (id) VALUES (1); DELETE FROM t_sys_api_endpoints AS api; COMMIT"),
    ]);
}

#[test]
fn postgres_write_needs_a_known_schema() {
    check_writes(
        PG,
        &api_map("public", false),
        None,
        &[
            ("UPDATE api SET path = 'x'", "error:unknown_schema"),
            ("INSERT INTO api (id) VALUES (1)", "error:unknown_schema"),
        ],
    );
}

#[test]
fn mysql_writes() {
    check_writes(MY, &api_map("app", false), Some("app"), &[
        ("INSERT INTO api (id, path, method) VALUES (?, ?, 'GET')",
         "INSERT INTO t_sys_api_endpoints (id, endpoint_path, http_method) VALUES (?, ?, 'GET')"),
        ("INSERT INTO api VALUES (1, '/a', 'GET', NOW()), (2, '/b', 'PUT', NOW())",
         "INSERT INTO t_sys_api_endpoints (id, endpoint_path, http_method, created_at) VALUES (1, '/a', 'GET', NOW()), (2, '/b', 'PUT', NOW())"),
        ("INSERT INTO api (id, path) VALUES (1, '/a') ON DUPLICATE KEY UPDATE path = VALUES(path), method = 'X'",
         "INSERT INTO t_sys_api_endpoints (id, endpoint_path) VALUES (1, '/a') ON DUPLICATE KEY UPDATE endpoint_path = VALUES(endpoint_path), http_method = 'X'"),
        ("INSERT INTO api SET id = 1, path = '/a'",
         "INSERT INTO t_sys_api_endpoints SET id = 1, endpoint_path = '/a'"),
        ("REPLACE INTO app.api (id, path) VALUES (1, '/a')",
         "REPLACE INTO app.t_sys_api_endpoints (id, endpoint_path) VALUES (1, '/a')"),
        ("UPDATE api SET path = CONCAT(path, '/') WHERE method = 'GET' ORDER BY id LIMIT 10",
         "UPDATE t_sys_api_endpoints AS api SET endpoint_path = CONCAT(endpoint_path, '/') WHERE http_method = 'GET' ORDER BY id LIMIT 10"),
        ("DELETE FROM api WHERE id = ?",
         "DELETE FROM t_sys_api_endpoints WHERE id = ?"),
        ("DELETE FROM api WHERE api.id = ?", "error:expression"),
        ("DELETE FROM api AS a WHERE a.path = ?",
         "DELETE FROM t_sys_api_endpoints AS a WHERE a.endpoint_path = ?"),
        ("INSERT INTO api (id) VALUES (1) ON DUPLICATE KEY UPDATE api.path = 'x'",
         "error:expression"),
        ("UPDATE api JOIN other o ON o.id = api.id SET api.path = o.x", "error:expression"),
        ("DELETE a FROM api a JOIN other o ON o.id = a.id", "error:expression"),
        ("UPDATE other SET x = 1", "untouched"),
    ]);
}
