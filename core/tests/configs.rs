//! Every example in `configs/` must load and validate: they are what
//! operators copy, so a broken example is a broken product.

use std::path::{Path, PathBuf};

use switchyard_core::config::{Config, Protocol};

fn examples() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_example_validates() {
    let files = examples();
    assert!(
        files.len() >= 4,
        "expected the example configs, found {files:?}"
    );
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let dir = file.parent().unwrap();
        // No environment: every `${VAR}` in an example must have a default.
        if let Err(e) = Config::from_yaml(&text, dir, &|_| None) {
            panic!("{} does not validate: {e}", file.display());
        }
    }
}

#[test]
fn quickstart_fronts_local_servers() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs");
    let text = std::fs::read_to_string(dir.join("quickstart.yaml")).unwrap();
    let config = Config::from_yaml(&text, &dir, &|_| None).unwrap();
    assert_eq!(
        config.listen.postgres,
        Some("127.0.0.1:6432".parse().unwrap())
    );
    assert_eq!(config.listen.mysql, Some("127.0.0.1:6033".parse().unwrap()));
    assert_eq!(config.admin.listen, Some("127.0.0.1:9187".parse().unwrap()));
    assert_eq!(config.admin.token, None);
    assert_eq!(config.user("app").unwrap().password, "app");
    let (_, pg) = config.route(Protocol::Postgres).unwrap();
    assert_eq!(
        (pg.host.as_str(), pg.port, pg.user.as_str()),
        ("127.0.0.1", 5432, "postgres")
    );
    let (_, my) = config.route(Protocol::Mysql).unwrap();
    assert_eq!(
        (my.host.as_str(), my.port, my.user.as_str()),
        ("127.0.0.1", 3306, "root")
    );
    assert!(config.migrations.is_empty());
    // `load` reads the same file from disk, with the real environment.
    assert!(Config::load(&dir.join("quickstart.yaml")).is_ok());
}

#[test]
fn migration_examples_cover_each_scenario() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs");
    for (file, cross) in [
        ("pg-same-server.yaml", false),
        ("mysql-same-server.yaml", false),
        ("cross-server.yaml", true),
    ] {
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        let config = Config::from_yaml(&text, &dir, &|_| None).unwrap();
        assert_eq!(config.migrations.len(), 1, "{file}");
        assert_eq!(config.migrations[0].is_cross_server(), cross, "{file}");
    }
}
