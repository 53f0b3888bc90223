//! Table-driven tests of loading and validation: good files, defaults,
//! `${VAR}` expansion, and the exact message of every rejection.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use super::*;

fn env(name: &str) -> Option<String> {
    match name {
        "PG_PORT" => Some("5433".into()),
        "APP_PASSWORD" => Some("s3cret: #not a comment".into()),
        "RAMP_APPROVAL" => Some("true".into()),
        "SHARE" => Some("12.5".into()),
        "RATE" => Some("0.05".into()),
        "EMPTY" => Some(String::new()),
        _ => None,
    }
}

fn load(text: &str) -> Result<Config, ConfigError> {
    Config::from_yaml(text, Path::new("/nonexistent"), &env)
}

/// A minimal valid file that each case below extends or breaks.
const BASE: &str = "
listen: { postgres: 127.0.0.1:6432, mysql: 127.0.0.1:6033 }
users: [{ name: app, password: app }]
backends:
  pg: { kind: postgres, host: 127.0.0.1, port: 5432, user: postgres }
  my: { kind: mysql, host: 127.0.0.1, port: 3306, user: root }
routes: { postgres: pg, mysql: my }
";

/// BASE plus one migration, with `extra` lines indented into it.
fn with_migration(extra: &str) -> String {
    let mut text = format!(
        "{BASE}migrations:\n  - id: m1\n    backend: pg\n    source: {{ schema: public, table: api, primary_key: [id] }}\n    target: {{ table: endpoints }}\n"
    );
    for line in extra.lines().filter(|l| !l.trim().is_empty()) {
        text.push_str("    ");
        text.push_str(line);
        text.push('\n');
    }
    text
}

#[test]
fn empty_file_is_all_defaults() {
    let config = load("").unwrap();
    assert_eq!(config, Config::default());
    assert_eq!(config.limits.max_connections, 10_000);
    assert_eq!(config.limits.max_frame_bytes, 256 * 1024 * 1024);
    assert_eq!(config.limits.connect_timeout, Duration::from_secs(5));
    assert_eq!(config.limits.drain_timeout, Duration::from_secs(30));
    assert_eq!(config.limits.classify_cache_entries, 10_000);
    assert!(!config.mysql.allow_local_infile);
    assert!(config.tls.is_none());
    // Empty section headers mean defaults too.
    assert_eq!(
        load("listen:\nadmin:\nlimits:\nmysql:\nmigrations:\n").unwrap(),
        Config::default()
    );
}

#[test]
fn design_example_loads() {
    let text = with_migration(
        "
columns: { path: endpoint_path, method: http_method }
phase: dual_write
on_mirror_error: fail_write
reads:
  strategy: percentage
  percent: 25
  path: target
  sticky_by: column:tenant_id
  canary: { users: [alice], applications: [web], clients: [10.0.0.0/8], comment_tag: 'switchyard:target', keys: [42, abc] }
  arms: [{ name: control, path: source, weight: 50 }, { name: candidate, path: target, weight: 50 }]
  shadow: { percent: 5, max_rows: 200, max_bytes: 64KiB }
rollback: { window: 1m30s, min_samples: 10, warn_error_rate: 0.02, max_error_rate: 0.05, max_mismatch_rate: 0.002, max_latency_ratio: 2.5, read_timeout: 1500ms, max_timeouts: 5 }
alerts: { webhooks: ['http://127.0.0.1:9099/hook'], repeat_window: 10m }
ramp: { steps: [0.5, 5, 25, 100], bake: 10m, approval: true }
switch: { budget: 500ms, max_transaction_age: 1m }
",
    );
    let config = load(&text).unwrap();
    let m = config.migration("m1").unwrap();
    assert_eq!(m.phase, Phase::DualWrite);
    assert_eq!(m.on_mirror_error, OnMirrorError::FailWrite);
    assert_eq!(m.target_column("path"), "endpoint_path");
    assert_eq!(m.target_column("id"), "id");
    assert!(!m.is_cross_server());
    // The target's schema defaults to the source's.
    assert_eq!(m.target.schema.as_deref(), Some("public"));
    assert_eq!(m.reads.strategy, Strategy::Percentage);
    assert_eq!(m.reads.percent.basis_points(), 2_500);
    assert_eq!(m.reads.path, ReadPath::Target);
    assert_eq!(m.reads.sticky_by, StickyBy::Column("tenant_id".into()));
    assert_eq!(m.reads.canary.keys, vec!["42", "abc"]);
    assert_eq!(m.reads.canary.clients[0].to_string(), "10.0.0.0/8");
    assert_eq!(
        m.reads.canary.comment_tag.as_deref(),
        Some("switchyard:target")
    );
    assert_eq!(m.reads.arms[1].path, ReadPath::Target);
    let shadow = m.reads.shadow.as_ref().unwrap();
    assert_eq!(
        (
            shadow.percent.basis_points(),
            shadow.max_rows,
            shadow.max_bytes
        ),
        (500, 200, 64 << 10)
    );
    assert_eq!(m.rollback.window, Duration::from_secs(90));
    assert_eq!(m.rollback.warn_error_rate, 0.02);
    assert_eq!(m.rollback.max_latency_ratio, 2.5);
    assert_eq!(m.rollback.read_timeout, Some(Duration::from_millis(1_500)));
    assert_eq!(m.rollback.max_timeouts, 5);
    assert_eq!(m.alerts.repeat_window, Duration::from_secs(600));
    let steps: Vec<u32> = m.ramp.steps.iter().map(|s| s.basis_points()).collect();
    assert_eq!(steps, [50, 500, 2_500, 10_000]);
    assert_eq!(m.ramp.bake, Duration::from_secs(600));
    assert!(m.ramp.approval);
    assert_eq!(m.switch.budget, Duration::from_millis(500));
    assert_eq!(m.switch.max_transaction_age, Duration::from_secs(60));
}

#[test]
fn migration_defaults() {
    let config = load(&with_migration("")).unwrap();
    let m = &config.migrations[0];
    assert_eq!(m.phase, Phase::Planned);
    assert_eq!(m.on_mirror_error, OnMirrorError::Repair);
    assert_eq!(m.reads, Reads::default());
    assert_eq!(m.reads.strategy, Strategy::Immediate);
    assert_eq!(m.reads.path, ReadPath::Source);
    assert_eq!(m.reads.sticky_by, StickyBy::Session);
    assert_eq!(m.reads.shadow, None);
    assert_eq!(m.rollback.window, Duration::from_secs(30));
    assert_eq!(m.rollback.min_samples, 200);
    assert_eq!(m.rollback.warn_error_rate, 0.01);
    assert_eq!(m.rollback.max_error_rate, 0.05);
    assert_eq!(m.rollback.max_mismatch_rate, 0.001);
    assert_eq!(m.rollback.max_latency_ratio, 3.0);
    assert_eq!(m.rollback.read_timeout, Some(Duration::from_secs(2)));
    assert_eq!(m.rollback.max_timeouts, 3);
    assert_eq!(m.rollback, Rollback::default());
    let steps: Vec<u32> = m.ramp.steps.iter().map(|s| s.basis_points()).collect();
    assert_eq!(steps, [100, 500, 2_500, 5_000, 10_000]);
    assert_eq!(m.ramp.bake, Duration::from_secs(300));
    assert!(!m.ramp.approval);
    assert!(m.alerts.webhooks.is_empty());
    assert_eq!(m.alerts.repeat_window, Duration::from_secs(300));
    assert_eq!(m.switch.budget, Duration::from_secs(2));
    assert_eq!(m.switch.max_transaction_age, Duration::from_secs(30));
    assert_eq!(m.switch, Switch::default());
    assert_eq!(config.backends["pg"].shadow_pool, 4);
}

#[test]
fn switch_settings_take_any_unit_and_keep_the_other_default() {
    let switch = |yaml: &str| {
        load(&with_migration(yaml)).unwrap().migrations[0]
            .switch
            .clone()
    };
    assert_eq!(
        switch("switch: { budget: 1m }"),
        Switch {
            budget: MAX_BUDGET,
            ..Switch::default()
        }
    );
    assert_eq!(
        switch("switch: { max_transaction_age: 2m30s }"),
        Switch {
            max_transaction_age: Duration::from_secs(150),
            ..Switch::default()
        }
    );
    assert_eq!(switch("switch:"), Switch::default());
    // PostgreSQL's proxies hear of a hold by NOTIFY: a short budget works.
    assert_eq!(
        switch("switch: { budget: 200ms }").budget,
        Duration::from_millis(200)
    );
}

#[test]
fn shadow_caps_default_when_only_the_share_is_given() {
    let config = load(&with_migration("reads: { shadow: { percent: 5 } }")).unwrap();
    let shadow = config.migrations[0].reads.shadow.clone().unwrap();
    assert_eq!(shadow.percent.basis_points(), 500);
    assert_eq!(shadow.max_rows, 1_000);
    assert_eq!(shadow.max_bytes, 1 << 20);
    // The admin API reads a rule as JSON, with the same defaults.
    let reads: Reads = serde_json::from_str(r#"{"shadow": {"percent": 5}}"#).unwrap();
    assert_eq!(reads.shadow, Some(shadow));
}

#[test]
fn read_timeout_turns_off_by_name_only() {
    let timeout = |value: &str| {
        load(&with_migration(&format!(
            "rollback: {{ read_timeout: {value} }}"
        )))
        .map(|c| c.migrations[0].rollback.read_timeout)
        .map_err(|e| e.to_string())
    };
    assert_eq!(timeout("off"), Ok(None));
    assert_eq!(timeout("'off'"), Ok(None));
    assert_eq!(timeout("500ms"), Ok(Some(Duration::from_millis(500))));
    assert_eq!(
        timeout("0"),
        Err("`migrations[0].rollback.read_timeout`: migration `m1`: a timeout of 0 would fail every target read; use a duration such as `2s`, or `off` to let reads take as long as the server needs".into())
    );
    assert_eq!(
        timeout("2"),
        Err("`migrations[0].rollback.read_timeout`: `2` has no unit; write a number with a unit, e.g. `500ms`, `5s`, `1m` or `1m30s`, or `off` for none".into())
    );
    assert_eq!(
        timeout("never"),
        Err("`migrations[0].rollback.read_timeout`: `never` is not a duration; write a number with a unit, e.g. `500ms`, `5s`, `1m` or `1m30s`, or `off` for none".into())
    );
}

#[test]
fn lookups_and_auth_defaults() {
    let text = BASE.replace(
        "users: [{ name: app, password: app }]",
        "users: [{ name: app, password: app }, { name: old, password: x, auth: md5 }, { name: my, password: y, auth: mysql_native_password }]",
    );
    let config = load(&text).unwrap();
    let (name, backend) = config.route(Protocol::Postgres).unwrap();
    assert_eq!(
        (name, backend.kind, backend.port),
        ("pg", BackendKind::Postgres, 5432)
    );
    assert_eq!(config.route(Protocol::Mysql).unwrap().0, "my");
    assert_eq!(config.backends["pg"].password, "");
    let app = config.user("app").unwrap();
    assert_eq!(app.auth, None);
    assert_eq!(app.auth_for(Protocol::Postgres), AuthMethod::ScramSha256);
    assert_eq!(
        app.auth_for(Protocol::Mysql),
        AuthMethod::CachingSha2Password
    );
    let old = config.user("old").unwrap();
    assert_eq!(old.auth_for(Protocol::Postgres), AuthMethod::Md5);
    assert_eq!(
        old.auth_for(Protocol::Mysql),
        AuthMethod::CachingSha2Password
    );
    let my = config.user("my").unwrap();
    assert_eq!(
        my.auth_for(Protocol::Mysql),
        AuthMethod::MysqlNativePassword
    );
    assert_eq!(my.auth_for(Protocol::Postgres), AuthMethod::ScramSha256);
    assert!(config.user("nobody").is_none());
}

#[test]
fn good_variants() {
    let cases: &[(&str, &str)] = &[
        ("mariadb alias", "backends: { my: { kind: mariadb, host: h, port: 1, user: u } }"),
        ("controller-only file", "backends: { pg: { kind: postgres, host: h, port: 1, user: u } }"),
        ("admin only", "admin: { listen: 'localhost:9187', token: '' }"),
        ("limits as text", "limits: { max_connections: '50', max_frame_bytes: 64KiB, connect_timeout: 500ms, drain_timeout: 0, classify_cache_entries: 0 }"),
        ("listener off by empty expansion", "listen: { postgres: '${EMPTY}' }"),
    ];
    for (name, text) in cases {
        assert_eq!(load(text).err().map(|e| e.to_string()), None, "case {name}");
    }
    // Anchors and merge keys (`<<`) let backends share settings.
    let merged = load("backends:\n  a: &b { kind: postgres, host: h, port: 1, user: u }\n  c: { <<: *b, port: 2 }\n").unwrap();
    assert_eq!(merged.backends["c"].port, 2);
    assert_eq!(merged.backends["c"].host, "h");
}

#[test]
fn env_expansion_feeds_every_type() {
    let text = "
listen: { postgres: '127.0.0.1:${PG_LISTEN_PORT:-6432}' }
users: [{ name: app, password: '${APP_PASSWORD}' }]
backends: { pg: { kind: postgres, host: '${PG_HOST:-127.0.0.1}', port: '${PG_PORT:-5432}', user: postgres, password: '$$ecret' } }
routes: { postgres: pg }
limits: { max_connections: '${MAX_CONN:-64}', connect_timeout: '${TIMEOUT:-2s}' }
mysql: { allow_local_infile: '${LOCAL_INFILE:-false}' }
migrations:
  - id: m1
    backend: pg
    source: { table: a, primary_key: [id] }
    target: { table: b }
    reads: { percent: '${SHARE}' }
    rollback: { max_error_rate: '${RATE}' }
    ramp: { approval: '${RAMP_APPROVAL}' }
";
    let config = load(text).unwrap();
    assert_eq!(
        config.listen.postgres,
        Some("127.0.0.1:6432".parse::<SocketAddr>().unwrap())
    );
    assert_eq!(config.users[0].password, "s3cret: #not a comment");
    assert_eq!(config.backends["pg"].host, "127.0.0.1");
    assert_eq!(config.backends["pg"].port, 5433);
    assert_eq!(config.backends["pg"].password, "$ecret");
    assert_eq!(config.limits.max_connections, 64);
    assert_eq!(config.limits.connect_timeout, Duration::from_secs(2));
    assert!(!config.mysql.allow_local_infile);
    let m = &config.migrations[0];
    assert_eq!(m.reads.percent.basis_points(), 1_250);
    assert_eq!(m.rollback.max_error_rate, 0.05);
    assert!(m.ramp.approval);
}

#[test]
fn admin_token_empty_means_none() {
    let config =
        load("admin: { listen: 127.0.0.1:9187, token: '${SWITCHYARD_ADMIN_TOKEN:-}' }").unwrap();
    assert_eq!(config.admin.token, None);
    let config = load("admin: { token: abc }").unwrap();
    assert_eq!(config.admin.token.as_deref(), Some("abc"));
}

#[test]
fn tls_paths_resolve_against_the_config_directory() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("server.crt"), "x").unwrap();
    std::fs::write(dir.path().join("server.key"), "x").unwrap();
    let config = Config::from_yaml(
        "tls: { cert: server.crt, key: server.key }",
        dir.path(),
        &env,
    )
    .unwrap();
    let tls = config.tls.unwrap();
    assert_eq!(tls.cert, dir.path().join("server.crt"));
    assert_eq!(tls.key, dir.path().join("server.key"));

    let err = Config::from_yaml(
        "tls: { cert: server.crt, key: missing.key }",
        dir.path(),
        &env,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "`tls.key`: the file `{}` does not exist; create it or correct the path (a relative path is read from the config file's directory)",
            dir.path().join("missing.key").display()
        )
    );
}

#[test]
fn load_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    std::fs::write(&path, "limits: { max_conections: 1 }").unwrap();
    let err = Config::load(&path).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}: `limits.max_conections` is not a known setting; did you mean `max_connections`? (known here: `max_connections`, `max_frame_bytes`, `connect_timeout`, `drain_timeout`, `classify_cache_entries`, `worker_threads`)",
            path.display()
        )
    );
    let missing = dir.path().join("nope.yaml");
    let err = Config::load(&missing).unwrap_err().to_string();
    assert!(
        err.starts_with(&format!(
            "cannot read the config file `{}`: ",
            missing.display()
        )),
        "{err}"
    );
    assert!(
        err.ends_with("; check that the path is right and the file is readable"),
        "{err}"
    );
}

/// Each case: a file and the exact message it is rejected with.
#[test]
fn rejections() {
    let base = |from: &str, to: &str| {
        assert!(BASE.contains(from), "{from}");
        BASE.replace(from, to)
    };
    let cases: Vec<(String, &str)> = vec![
        // Syntax and shape.
        (
            "listen: [".into(),
            "the configuration is not valid YAML: did not find expected node content at line 2 column 1, while parsing a flow node; fix the syntax at that position",
        ),
        (
            "lisen: {}".into(),
            "`lisen` is not a known setting; did you mean `listen`? (known here: `listen`, `admin`, `tls`, `users`, `backends`, `routes`, `limits`, `mysql`, `migrations`)",
        ),
        (
            "listen: { postgress: 127.0.0.1:1 }".into(),
            "`listen.postgress` is not a known setting; did you mean `postgres`? (known here: `postgres`, `mysql`)",
        ),
        (
            "listen: { oracle: 127.0.0.1:1 }".into(),
            "`listen.oracle` is not a known setting; remove it or correct its name (known here: `postgres`, `mysql`)",
        ),
        (
            "listen: 6432".into(),
            "`listen`: expected a group of `key: value` settings, found the number `6432`; indent the settings under this name",
        ),
        (
            "listen: { postgres: '6432' }".into(),
            "`listen.postgres`: `6432` is not an IP address with a port; write e.g. `127.0.0.1:6432`, or `0.0.0.0:6432` to listen on every interface",
        ),
        (
            "users: { name: app }".into(),
            "`users`: expected a list, found a group of `key: value` settings; write a list as `[a, b]` or as lines starting with `- `",
        ),
        (
            "users: [{ password: x }]".into(),
            "`users[0]`: the required setting `name` is missing; add `name: ...` here",
        ),
        (
            "users: [{ name: app, password: 1234 }]".into(),
            "`users[0].password`: expected text, found the number `1234`; put it in quotes so it is read as text, e.g. \"1234\"",
        ),
        (
            "users: [{ name: app, auth: scram }]".into(),
            "`users[0].auth`: `scram` is not one of `scram-sha-256`, `md5`, `trust`, `mysql_native_password`, `caching_sha2_password`; use one of `scram-sha-256`, `md5`, `trust`, `mysql_native_password`, `caching_sha2_password`",
        ),
        (
            "backends: { pg: { kind: postgress, host: h, port: 1, user: u } }".into(),
            "`backends.pg.kind`: `postgress` is not one of `postgres`, `mariadb`, `mysql`; did you mean `postgres`?",
        ),
        (
            "backends: { pg: { kind: postgres, host: h, port: 70000, user: u } }".into(),
            "`backends.pg.port`: 70000 is out of range; use a whole number from 0 to 65535",
        ),
        (
            "backends: { pg: { kind: postgres, host: h, port: five, user: u } }".into(),
            "`backends.pg.port`: expected a whole number, found the text `five`; write digits only, e.g. `10`",
        ),
        (
            "backends: { pg: { kind: postgres, host: h, port: '${NOPE}', user: u } }".into(),
            "`backends.pg.port` uses the environment variable `NOPE`, which is not set; set it, or give a default with `${NOPE:-default}`",
        ),
        (
            "limits: { connect_timeout: 5 }".into(),
            "`limits.connect_timeout`: `5` has no unit; write a number with a unit, e.g. `500ms`, `5s`, `1m` or `1m30s`",
        ),
        (
            "limits: { max_frame_bytes: huge }".into(),
            "`limits.max_frame_bytes`: `huge` is not a size; write a number of bytes or use a unit, e.g. `256MiB` or `64KiB`",
        ),
        (
            "mysql: { allow_local_infile: yes }".into(),
            "`mysql.allow_local_infile`: expected `true` or `false`, found the text `yes`; write `true` or `false`",
        ),
        (
            "tls: { cert: a.crt }".into(),
            "`tls`: the required setting `key` is missing; add `key: ...` here",
        ),
        // Listeners, routes, users, backends.
        (
            "listen: { postgres: 127.0.0.1:6432 }\nusers: [{ name: app }]".into(),
            "`backends`: no backends are defined, but `listen.postgres` accepts clients; add the server it fronts, e.g. `backends: { pg: { kind: postgres, host: 127.0.0.1, port: 5432, user: postgres } }`",
        ),
        (
            base("routes: { postgres: pg, mysql: my }", "routes: { mysql: my }"),
            "`routes.postgres`: `listen.postgres` is set, but no backend serves it; name one of the postgres backends here, e.g. `routes: { postgres: <backend> }`",
        ),
        (
            base("postgres: pg,", "postgres: pgx,"),
            "`routes.postgres`: backend `pgx` is not defined; use one of the names under `backends` (my, pg)",
        ),
        (
            base("postgres: pg, mysql: my", "postgres: my, mysql: my"),
            "`routes.postgres`: backend `my` is a mysql server, but this route serves postgres clients; name a backend with `kind: postgres`",
        ),
        (
            base("users: [{ name: app, password: app }]", "users: []"),
            "`users`: no users are defined, but `listen.postgres` accepts clients; add at least one, e.g. `users: [{ name: app, password: \"${APP_PASSWORD}\" }]`",
        ),
        (
            base("users: [{ name: app, password: app }]", "users: [{ name: '' }]"),
            "`users[0].name`: the user name is empty; give the login name clients use",
        ),
        (
            base("users: [{ name: app, password: app }]", "users: [{ name: app }, { name: app }]"),
            "`users[1].name`: user `app` is defined twice; keep one entry per user",
        ),
        (
            base("users: [{ name: app, password: app }]", "users: [{ name: app, backend_password: x }]"),
            "`users[0].backend_password`: user `app` has a backend_password but no backend_user; add `backend_user`, or remove `backend_password` to use the backend's own credentials",
        ),
        (
            base("host: 127.0.0.1, port: 5432", "host: '', port: 5432"),
            "`backends.pg.host`: the host is empty; give the server's host name or IP address, e.g. `127.0.0.1`, or its Unix socket as an absolute path",
        ),
        (
            base("port: 3306", "port: 0"),
            "`backends.my.port`: the port is missing or 0; give the port the server listens on, e.g. `3306`",
        ),
        (
            base("host: 127.0.0.1, port: 5432", "host: /var/run/postgresql"),
            "`backends.pg.port`: the port is missing or 0; give the port the server listens on (it names the socket file `.s.PGSQL.<port>` in `/var/run/postgresql`), e.g. `5432`",
        ),
        (
            base("host: 127.0.0.1, port: 3306", "host: /run/mysqld/mysqld.sock, tls: require"),
            "`backends.my.tls`: `require` cannot be used with the Unix socket `/run/mysqld/mysqld.sock`: a socket is local and the server does not encrypt it; remove `tls` (or use `prefer`), or give a TCP host",
        ),
        (
            base("port: 5432,", "port: 5432, tls: verify-full,"),
            "`backends.pg.ca`: `tls: verify-full` checks the server's certificate against a CA; give the PEM file of the CA that signed it, e.g. `ca: /etc/ssl/certs/db-root.crt`",
        ),
        (
            base("port: 5432,", "port: 5432, tls: verify-ca, ca: /nonexistent/ca.crt,"),
            "`backends.pg.ca`: the file `/nonexistent/ca.crt` does not exist; create it or correct the path (a relative path is read from the config file's directory)",
        ),
        (
            base("port: 5432,", "port: 5432, tls: disable, ca: /etc/hostname,"),
            "`backends.pg.ca`: `ca` has no effect while `tls` is `disable` (the default); set `tls: verify-full` (or another mode), or remove `ca`",
        ),
        (
            base("port: 5432,", "port: 5432, tls: require, cert: /etc/hostname,"),
            "`backends.pg.key`: a client `cert` needs its private key; add `key: <PEM file>`",
        ),
        (
            base("port: 5432,", "port: 5432, tls: verify_full,"),
            "`backends.pg.tls`: `verify_full` is not one of `disable`, `prefer`, `require`, `verify-ca`, `verify-full`; did you mean `verify-full`?",
        ),
        (
            base("user: root", "user: ''"),
            "`backends.my.user`: the user is empty; give the database user the proxy logs in as",
        ),
        (
            base("user: root", "user: root, shadow_pool: 0"),
            "`backends.my.shadow_pool`: 0 connections would skip every shadow read; use from 1 to 64 (the default is 4)",
        ),
        (
            base("user: root", "user: root, shadow_pool: 65"),
            "`backends.my.shadow_pool`: 65 connections would make comparisons a second workload on the server; use at most 64 (the default is 4)",
        ),
        (
            base("user: root", "user: root, shadow_pol: 8"),
            "`backends.my.shadow_pol` is not a known setting; did you mean `shadow_pool`? (known here: `kind`, `host`, `port`, `user`, `password`, `database`, `tls`, `ca`, `cert`, `key`, `shadow_pool`)",
        ),
        // Limits.
        (
            "limits: { max_connections: 0 }".into(),
            "`limits.max_connections`: 0 would refuse every client; use at least 1 (the default is 10000)",
        ),
        (
            "limits: { max_frame_bytes: 100 }".into(),
            "`limits.max_frame_bytes`: 100 bytes is too small for ordinary messages; use at least 1024 (the default is `256MiB`)",
        ),
        (
            "limits: { connect_timeout: 0 }".into(),
            "`limits.connect_timeout`: 0 would fail every backend connection; use a duration such as `5s`",
        ),
        // Migrations.
        (
            with_migration("sorce: {}"),
            "`migrations[0].sorce` is not a known setting; did you mean `source`? (known here: `id`, `backend`, `source`, `target`, `columns`, `time_zone`, `phase`, `on_mirror_error`, `allow_unmirrored`, `reads`, `rollback`, `alerts`, `ramp`, `switch`)",
        ),
        (
            with_migration("phase: dualwrite"),
            "`migrations[0].phase`: `dualwrite` is not one of `planned`, `dual_write`, `backfill`, `validate`, `read_ramp`, `reads_on_target`, `write_switch`, `complete`, `rolled_back`; did you mean `dual_write`?",
        ),
        (
            with_migration("on_mirror_error: ignore"),
            "`migrations[0].on_mirror_error`: `ignore` is not one of `repair`, `fail_write`; use one of `repair`, `fail_write`",
        ),
        (
            format!("{}  - id: m1\n    backend: pg\n    source: {{ table: x, primary_key: [id] }}\n    target: {{ table: y }}\n", with_migration("")),
            "`migrations[1].id`: migration id `m1` is used twice; give each migration its own id",
        ),
        (
            with_migration("").replace("id: m1", "id: 'my migration'"),
            "`migrations[0].id`: `my migration` is not a usable migration id; use letters, digits, `_`, `-` or `.`, e.g. `api_to_endpoints`",
        ),
        (
            with_migration("").replace("backend: pg", "backend: nope"),
            "`migrations[0].backend`: migration `m1`: backend `nope` is not defined; use one of the names under `backends` (my, pg)",
        ),
        (
            with_migration("").replace("{ table: endpoints }", "{ table: endpoints, backend: other }"),
            "`migrations[0].target.backend`: migration `m1`: backend `other` is not defined; use one of the names under `backends` (my, pg)",
        ),
        (
            with_migration("").replace("primary_key: [id]", "primary_key: []"),
            "`migrations[0].source.primary_key`: migration `m1`: no primary key columns are listed; list them, e.g. `primary_key: [id]`",
        ),
        (
            with_migration("").replace("primary_key: [id]", "primary_key: [id, id]"),
            "`migrations[0].source.primary_key`: migration `m1`: column `id` is empty or listed twice; list each key column once",
        ),
        (
            with_migration("").replace("primary_key: [id] }", "primary_key: [id] }\n    nothing: 1").replace("    nothing: 1\n", "").replace("table: endpoints", "table: api"),
            "`migrations[0].target`: migration `m1`: the target is the source table itself; name a different table, schema or database, or add `backend:` for another server",
        ),
        (
            with_migration("").replace("table: endpoints", "table: ''"),
            "`migrations[0].target.table`: migration `m1`: the table name is empty; name the table",
        ),
        (
            with_migration("columns: { a: x, b: x }"),
            "`migrations[0].columns.b`: migration `m1`: both `a` and `b` map to target column `x`; map each source column to its own target column",
        ),
        (
            with_migration("time_zone: ' '"),
            "`migrations[0].time_zone`: migration `m1`: `time_zone` is empty; name a zone such as `UTC` or `+00:00`, or remove the field",
        ),
        (
            with_migration("reads: { percent: 150 }"),
            "`migrations[0].reads.percent`: 150 is out of range; a share is a percentage from 0 to 100",
        ),
        (
            with_migration("reads: { percent: 1.234 }"),
            "`migrations[0].reads.percent`: `1.234` has more than two decimals; shares are exact to 0.01%, so round it, e.g. `1.23`",
        ),
        (
            with_migration("reads: { strategy: random }"),
            "`migrations[0].reads.strategy`: `random` is not one of `immediate`, `percentage`, `canary`, `ab`, `blue_green`; use one of `immediate`, `percentage`, `canary`, `ab`, `blue_green`",
        ),
        (
            with_migration("reads: { sticky_by: tenant_id }"),
            "`migrations[0].reads.sticky_by`: `tenant_id` is not a stickiness key; use `session`, `user` or `column:<name>`, e.g. `column:tenant_id`",
        ),
        (
            with_migration("reads: { strategy: ab, arms: [{ name: a, path: source, weight: 1 }] }"),
            "`migrations[0].reads.arms`: migration `m1`: strategy `ab` needs at least two arms; add e.g. `arms: [{name: control, path: source, weight: 50}, {name: candidate, path: target, weight: 50}]`",
        ),
        (
            with_migration("reads: { arms: [{ name: a, path: source, weight: 0 }, { name: b, path: target, weight: 0 }] }"),
            "`migrations[0].reads.arms`: migration `m1`: the arms' weights add up to 0; give at least one arm a weight above 0",
        ),
        (
            with_migration("reads: { arms: [{ name: a, path: source, weight: 1 }, { name: a, path: target, weight: 1 }] }"),
            "`migrations[0].reads.arms[1].name`: migration `m1`: arm name `a` is empty or used twice; give each arm its own name",
        ),
        (
            with_migration("reads: { arms: [{ name: a, path: sideways, weight: 1 }] }"),
            "`migrations[0].reads.arms[0].path`: `sideways` is not one of `source`, `target`; use one of `source`, `target`",
        ),
        (
            with_migration("reads: { canary: { clients: [10.0.0.0/40] } }"),
            "`migrations[0].reads.canary.clients[0]`: `10.0.0.0/40` is not an IP address or network; write e.g. `10.0.0.0/8`, `192.0.2.7` or `::1`",
        ),
        (
            with_migration("reads: { canary: { comment_tag: '/* x */' } }"),
            "`migrations[0].reads.canary.comment_tag`: migration `m1`: `/* x */` contains a comment delimiter; write only the text between `/*` and `*/`, e.g. `switchyard:target`",
        ),
        (
            with_migration("reads: { shadow: { percent: 101 } }"),
            "`migrations[0].reads.shadow.percent`: 101 is out of range; a share is a percentage from 0 to 100",
        ),
        (
            with_migration("reads: { shadow: { percent: 5, max_rows: 0 } }"),
            "`migrations[0].reads.shadow.max_rows`: migration `m1`: 0 would skip every comparison; use at least 1 (the default is 1000), or remove `shadow` to turn shadow reads off",
        ),
        (
            with_migration("reads: { shadow: { percent: 5, max_bytes: 0 } }"),
            "`migrations[0].reads.shadow.max_bytes`: migration `m1`: 0 would skip every comparison; use at least 1 (the default is `1MiB`), or remove `shadow` to turn shadow reads off",
        ),
        (
            with_migration("reads: { shadow: { percent: 5, max_row: 10 } }"),
            "`migrations[0].reads.shadow.max_row` is not a known setting; did you mean `max_rows`? (known here: `percent`, `max_rows`, `max_bytes`)",
        ),
        (
            with_migration("rollback: { warn_eror_rate: 0.02 }"),
            "`migrations[0].rollback.warn_eror_rate` is not a known setting; did you mean `warn_error_rate`? (known here: `window`, `min_samples`, `warn_error_rate`, `max_error_rate`, `max_mismatch_rate`, `max_latency_ratio`, `latency_floor`, `read_timeout`, `max_timeouts`)",
        ),
        (
            with_migration("rollback: { warn_error_rate: 1.5 }"),
            "`migrations[0].rollback.warn_error_rate`: migration `m1`: 1.5 is not a rate; write a fraction from 0 to 1, e.g. `0.01` for 1%",
        ),
        (
            with_migration("rollback: { warn_error_rate: 0.1 }"),
            "`migrations[0].rollback.warn_error_rate`: migration `m1`: `warn_error_rate` 0.1 is above `max_error_rate` 0.05, so reads would roll back before any warning; set `warn_error_rate` to at most 0.05 (when omitted it is 0.01), or raise `max_error_rate`",
        ),
        (
            with_migration("rollback: { max_error_rate: 0.005 }"),
            "`migrations[0].rollback.warn_error_rate`: migration `m1`: `warn_error_rate` 0.01 is above `max_error_rate` 0.005, so reads would roll back before any warning; set `warn_error_rate` to at most 0.005 (when omitted it is 0.01), or raise `max_error_rate`",
        ),
        (
            with_migration("rollback: { max_timeouts: 0 }"),
            "`migrations[0].rollback.max_timeouts`: migration `m1`: 0 timeouts would roll back with no timeout at all; use at least 1 (3 is the default), or `read_timeout: off` for no timeouts",
        ),
        (
            with_migration("alerts: { repeat_window: 5 }"),
            "`migrations[0].alerts.repeat_window`: `5` has no unit; write a number with a unit, e.g. `500ms`, `5s`, `1m` or `1m30s`",
        ),
        (
            with_migration("rollback: { max_error_rate: 5 }"),
            "`migrations[0].rollback.max_error_rate`: migration `m1`: 5 is not a rate; write a fraction from 0 to 1, e.g. `0.01` for 1%",
        ),
        (
            with_migration("rollback: { max_mismatch_rate: -0.1 }"),
            "`migrations[0].rollback.max_mismatch_rate`: migration `m1`: -0.1 is not a rate; write a fraction from 0 to 1, e.g. `0.01` for 1%",
        ),
        (
            with_migration("rollback: { max_latency_ratio: 0 }"),
            "`migrations[0].rollback.max_latency_ratio`: migration `m1`: 0 is not a latency ratio; write how many times slower than the source the target may be, e.g. `3.0`",
        ),
        (
            with_migration("rollback: { window: 0 }"),
            "`migrations[0].rollback.window`: migration `m1`: the window is 0; use a duration such as `30s`",
        ),
        (
            with_migration("rollback: { min_samples: 0 }"),
            "`migrations[0].rollback.min_samples`: migration `m1`: 0 samples would judge the target on no data; use at least 1 (200 is the default)",
        ),
        (
            with_migration("ramp: { steps: [] }"),
            "`migrations[0].ramp.steps`: migration `m1`: no ramp steps are listed; list ascending shares, e.g. `[1, 5, 25, 50, 100]`",
        ),
        (
            with_migration("ramp: { steps: [0, 50] }"),
            "`migrations[0].ramp.steps[0]`: migration `m1`: step 0% sends no reads to the target; every step must be above 0 and at most 100",
        ),
        (
            with_migration("ramp: { steps: [5, 25, 25, 100] }"),
            "`migrations[0].ramp.steps[2]`: migration `m1`: step 25% is not above the step before it (25%); list steps in strictly ascending order",
        ),
        (
            with_migration("ramp: { steps: [5, 200] }"),
            "`migrations[0].ramp.steps[1]`: 200 is out of range; a share is a percentage from 0 to 100",
        ),
        (
            with_migration("switch: { budget: 0 }"),
            "`migrations[0].switch.budget`: migration `m1`: a budget of 0 would abort every write switch; use a duration such as `2s` (the default)",
        ),
        (
            with_migration("switch: { budget: 90s }"),
            "`migrations[0].switch.budget`: migration `m1`: `90s` would hold clients' writes for longer than 60 s; use at most `60s` (the default is `2s`)",
        ),
        (
            with_migration("switch: { budget: 60001ms }"),
            "`migrations[0].switch.budget`: migration `m1`: `60001ms` would hold clients' writes for longer than 60 s; use at most `60s` (the default is `2s`)",
        ),
        (
            with_migration("switch: { budget: 900ms }").replace("backend: pg", "backend: my"),
            "`migrations[0].switch.budget`: migration `m1`: `900ms` is shorter than the proxies' poll of the store on MySQL (once a second), so almost every write switch would abort; use at least `1s` (the default is `2s`)",
        ),
        (
            with_migration("switch: { budget: 2 }"),
            "`migrations[0].switch.budget`: `2` has no unit; write a number with a unit, e.g. `500ms`, `5s`, `1m` or `1m30s`",
        ),
        (
            with_migration("switch: { max_transaction_age: 0 }"),
            "`migrations[0].switch.max_transaction_age`: migration `m1`: 0 would count every open transaction as old and keep the write switch closed; use a duration such as `30s` (the default)",
        ),
        (
            with_migration("switch: { budjet: 1s }"),
            "`migrations[0].switch.budjet` is not a known setting; did you mean `budget`? (known here: `budget`, `max_transaction_age`)",
        ),
        (
            with_migration("alerts: { webhooks: [hooks.example.com] }"),
            "`migrations[0].alerts.webhooks[0]`: migration `m1`: `hooks.example.com` is not an HTTP URL; write it as `http://host:port/path` or `https://...`",
        ),
    ];
    for (text, expected) in &cases {
        let got = match load(text) {
            Ok(_) => format!("accepted:\n{text}"),
            Err(e) => e.to_string(),
        };
        assert_eq!(&got, expected, "file:\n{text}");
    }
}

#[test]
fn unix_sockets_follow_libpq_and_mysql() {
    let config = load(
        &BASE
            .replace(
                "host: 127.0.0.1, port: 5432",
                "host: /var/run/postgresql, port: 5433",
            )
            .replace(
                "host: 127.0.0.1, port: 3306",
                "host: /run/mysqld/mysqld.sock",
            ),
    )
    .unwrap();
    let pg = &config.backends["pg"];
    let my = &config.backends["my"];
    assert_eq!(pg.location(), "/var/run/postgresql/.s.PGSQL.5433");
    assert_eq!(my.location(), "/run/mysqld/mysqld.sock");
    assert_eq!(my.port, 0);
    assert_eq!(config.backends["pg"].tls, BackendTlsMode::Disable);
}

#[test]
fn backend_tls_paths_are_read_from_the_config_directory() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ca.crt"), "x").unwrap();
    let text = BASE.replace("port: 5432,", "port: 5432, tls: verify-full, ca: ca.crt,");
    let config = Config::from_yaml(&text, dir.path(), &env).unwrap();
    assert_eq!(
        config.backends["pg"].ca.as_deref(),
        Some(dir.path().join("ca.crt").as_path())
    );
    assert_eq!(config.backends["pg"].tls, BackendTlsMode::VerifyFull);
}

#[test]
fn several_problems_are_reported_together() {
    let text = BASE.replace("port: 5432", "port: 0").replace(
        "routes: { postgres: pg, mysql: my }",
        "routes: { postgres: pg }",
    );
    let err = load(&text).unwrap_err();
    assert_eq!(err.problems().len(), 2);
    assert_eq!(
        err.to_string(),
        "the configuration has 2 problems:\n\
         - `routes.mysql`: `listen.mysql` is set, but no backend serves it; name one of the mysql backends here, e.g. `routes: { mysql: <backend> }`\n\
         - `backends.pg.port`: the port is missing or 0; give the port the server listens on, e.g. `5432`"
    );
}

#[test]
fn phases_round_trip_by_name() {
    for phase in Phase::ALL {
        assert_eq!(phase.as_str().parse::<Phase>(), Ok(phase));
        let text = with_migration(&format!("phase: {phase}"));
        assert_eq!(load(&text).unwrap().migrations[0].phase, phase);
    }
    assert_eq!(
        "done".parse::<Phase>().unwrap_err(),
        "`done` is not a phase; use one of planned, dual_write, backfill, validate, read_ramp, reads_on_target, write_switch, complete, rolled_back"
    );
}
