//! A migration's mapping loaded as the proxy loads it: both tables read by
//! the catalog loader from the real server and checked against the plan,
//! without starting a proxy.

use std::path::Path;
use std::time::Duration;

use switchyard_core::config::Config;
use switchyard_proxy::catalog::load::TableRef;
use switchyard_proxy::catalog::mapping::{self, Mapping};
use switchyard_proxy::relay::backend_tls::BackendTls;

/// The mapping of the first migration in `yaml` (a config of `backends`
/// and `migrations`); panics with the loader's message if it does not fit.
pub async fn load(yaml: &str) -> Mapping {
    let config = Config::from_yaml(yaml, Path::new("."), &|_| None)
        .unwrap_or_else(|e| panic!("test config: {e}"));
    let plan = &config.migrations[0];
    let table =
        |backend: &str, database: &Option<String>, schema: &Option<String>, name: &str| TableRef {
            backend_name: backend.to_string(),
            backend: config.backends[backend].clone(),
            database: database.clone(),
            schema: schema.clone(),
            table: name.to_string(),
        };
    let (s, t) = (&plan.source, &plan.target);
    let tables = [
        table(&plan.backend, &s.database, &s.schema, &s.table),
        table(plan.target_backend(), &t.database, &t.schema, &t.table),
    ];
    let mut schemas = Vec::new();
    for table in &tables {
        let tls = BackendTls::build(&table.backend_name, &table.backend).unwrap();
        let schema = table.load(&tls, Duration::from_secs(5)).await;
        schemas.push(schema.unwrap_or_else(|e| panic!("loading `{}`: {e}", table.table)));
    }
    let target = schemas.pop().unwrap();
    let source = schemas.pop().unwrap();
    mapping::check(plan, source, target).unwrap_or_else(|e| panic!("mapping: {e}"))
}
