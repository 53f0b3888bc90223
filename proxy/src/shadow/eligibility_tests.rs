//! Which reads may be shadowed, per dialect: SQL → `in_order`,
//! `multiset`, or the skip label.

use super::*;

const PG: Dialect = Dialect::Postgres;
const MY: Dialect = Dialect::Mysql;

fn verdict(dialect: Dialect, sql: &str, keys: &[&str]) -> &'static str {
    let keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
    match shadowable(dialect, sql, &keys) {
        Ok(RowOrder::InOrder) => "in_order",
        Ok(RowOrder::Multiset) => "multiset",
        Err(skip) => skip.label(),
    }
}

fn check(dialect: Dialect, keys: &[&str], cases: &[(&str, &str)]) {
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|(sql, want)| {
            let got = verdict(dialect, sql, keys);
            (got != *want).then(|| format!("{sql}\n  want {want}, got {got}"))
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
#[rustfmt::skip]
fn postgres() {
    check(PG, &["id"], &[
        ("SELECT * FROM api", "multiset"),
        ("SELECT id, path FROM api WHERE method = $1", "multiset"),
        ("SELECT * FROM api ORDER BY id", "in_order"),
        ("SELECT * FROM api ORDER BY path, api.id DESC", "in_order"),
        ("SELECT * FROM api ORDER BY path", "multiset"),
        ("SELECT * FROM api LIMIT 10", "unordered_limit"),
        ("SELECT * FROM api OFFSET 5", "unordered_limit"),
        ("SELECT * FROM api FETCH FIRST 3 ROWS ONLY", "unordered_limit"),
        ("SELECT * FROM api ORDER BY path LIMIT 10", "unordered_limit"),
        ("SELECT * FROM api ORDER BY id LIMIT 10 OFFSET 20", "in_order"),
        ("SELECT * FROM api WHERE id = $1 LIMIT 21", "multiset"),
        ("SELECT * FROM api WHERE id = 7 AND method = 'GET' LIMIT 1", "multiset"),
        ("SELECT * FROM api WHERE id > 7 LIMIT 1", "unordered_limit"),
        ("SELECT DISTINCT ON (method) method, path FROM api", "unordered_limit"),
        ("SELECT DISTINCT ON (method) method, path FROM api ORDER BY method, id", "in_order"),
        ("SELECT now(), id FROM api", "volatile"),
        ("SELECT id FROM api WHERE created_at > current_timestamp", "volatile"),
        ("SELECT id FROM api WHERE created_at > CURRENT_DATE", "volatile"),
        ("SELECT id FROM api WHERE created_at > clock_timestamp()", "volatile"),
        ("SELECT id FROM api WHERE created_at > 'now'::timestamptz", "volatile"),
        ("SELECT random(), id FROM api", "volatile"),
        ("SELECT nextval('api_id_seq')", "volatile"),
        ("SELECT currval('s'), id FROM api", "volatile"),
        ("SELECT pg_advisory_lock(1)", "volatile"),
        ("SELECT pg_sleep(1)", "volatile"),
        ("SELECT gen_random_uuid(), id FROM api", "volatile"),
        ("SELECT current_user, id FROM api", "volatile"),
        ("SELECT my_schema.slugify(path) FROM api", "volatile"),
        ("SELECT pg_catalog.lower(path) FROM api", "multiset"),
        ("SELECT row_number() OVER (ORDER BY path), id FROM api", "volatile"),
        ("SELECT lower(path), coalesce(method, 'GET'), length(path) FROM api", "multiset"),
        ("SELECT count(*), max(id), min(path) FROM api GROUP BY method", "multiset"),
        ("SELECT avg(id) FROM api", "float_aggregate"),
        ("SELECT sum(id) FROM api", "float_aggregate"),
        ("SELECT stddev(id) FROM api", "float_aggregate"),
        ("SELECT * FROM api FOR UPDATE", "locking"),
        ("SELECT * FROM api WHERE id = 1 FOR SHARE", "locking"),
        ("SELECT * FROM api FOR UPDATE SKIP LOCKED", "locking"),
        ("SELECT a.id, u.name FROM api a JOIN users u ON u.id = a.owner", "multiset"),
        ("SELECT a.id FROM api a LEFT JOIN users u ON u.id = a.owner ORDER BY a.id", "in_order"),
        ("SELECT id FROM api WHERE owner IN (SELECT id FROM users WHERE active)", "multiset"),
        ("SELECT id FROM api WHERE owner IN (SELECT id FROM users LIMIT 5)", "unordered_limit"),
        ("SELECT (SELECT max(id) FROM users), id FROM api", "multiset"),
        ("SELECT id FROM api WHERE created_at < (SELECT now())", "volatile"),
        ("WITH recent AS (SELECT * FROM api WHERE id > 10) SELECT * FROM recent ORDER BY id", "in_order"),
        ("WITH r AS (SELECT id FROM api ORDER BY id LIMIT 5) SELECT * FROM r", "multiset"),
        ("WITH r AS (SELECT id FROM api LIMIT 5) SELECT * FROM r ORDER BY id", "unordered_limit"),
        ("WITH d AS (DELETE FROM api RETURNING *) SELECT * FROM d", "not_a_read"),
        ("SELECT id FROM api UNION SELECT id FROM users", "multiset"),
        ("SELECT * INTO copy FROM api", "not_a_read"),
        ("INSERT INTO api (id) VALUES (1)", "not_a_read"),
        ("UPDATE api SET path = 'x'", "not_a_read"),
        ("SELECT 1; SELECT 2", "not_a_read"),
        ("EXPLAIN SELECT * FROM api", "not_a_read"),
        ("SELEC * FROM api", "unparsed"),
    ]);
}

#[test]
#[rustfmt::skip]
fn mysql() {
    check(MY, &["id"], &[
        ("SELECT * FROM api", "multiset"),
        ("SELECT * FROM api WHERE id = ?", "multiset"),
        ("SELECT * FROM api ORDER BY `id`", "in_order"),
        ("SELECT * FROM api LIMIT 10", "unordered_limit"),
        ("SELECT * FROM api LIMIT 20, 10", "unordered_limit"),
        ("SELECT * FROM api ORDER BY id LIMIT 20, 10", "in_order"),
        ("SELECT * FROM api ORDER BY path LIMIT 10", "unordered_limit"),
        ("SELECT * FROM api WHERE id = ? LIMIT 1", "multiset"),
        ("SELECT NOW(), id FROM api", "volatile"),
        ("SELECT SYSDATE(), id FROM api", "volatile"),
        ("SELECT id FROM api WHERE created_at > CURRENT_TIMESTAMP", "volatile"),
        ("SELECT RAND(), id FROM api", "volatile"),
        ("SELECT UUID()", "volatile"),
        ("SELECT GET_LOCK('x', 1)", "volatile"),
        ("SELECT SLEEP(1)", "volatile"),
        ("SELECT LAST_INSERT_ID()", "volatile"),
        ("SELECT @n := @n + 1, id FROM api", "volatile"),
        ("SELECT IFNULL(path, ''), UPPER(method), CONCAT(id, ':', path) FROM api", "multiset"),
        ("SELECT COUNT(*) FROM api GROUP BY method", "multiset"),
        ("SELECT AVG(id) FROM api", "float_aggregate"),
        ("SELECT SUM(id) FROM api", "float_aggregate"),
        ("SELECT * FROM api FOR UPDATE", "locking"),
        ("SELECT * FROM api LOCK IN SHARE MODE", "locking"),
        ("SELECT a.id FROM api a JOIN users u ON u.id = a.owner ORDER BY a.id", "in_order"),
        ("SELECT id FROM api WHERE owner IN (SELECT id FROM users)", "multiset"),
        ("WITH r AS (SELECT id FROM api) SELECT * FROM r", "multiset"),
        ("SELECT id INTO @x FROM api", "not_a_read"),
        // Parsed or not, it is skipped.
        ("SELECT * FROM api INTO OUTFILE '/tmp/x'", "unparsed"),
        ("DELETE FROM api WHERE id = 1", "not_a_read"),
    ]);
}

#[test]
fn a_composite_key_orders_only_when_whole() {
    let keys = ["tenant", "id"];
    check(
        PG,
        &keys,
        &[
            ("SELECT * FROM t ORDER BY tenant, id", "in_order"),
            ("SELECT * FROM t ORDER BY id", "multiset"),
            ("SELECT * FROM t ORDER BY id LIMIT 5", "unordered_limit"),
            (
                "SELECT * FROM t WHERE tenant = 1 AND id = 2 LIMIT 1",
                "multiset",
            ),
            ("SELECT * FROM t WHERE id = 2 LIMIT 1", "unordered_limit"),
        ],
    );
    // Without a known key no order is total.
    check(PG, &[], &[("SELECT * FROM t ORDER BY id", "multiset")]);
}
