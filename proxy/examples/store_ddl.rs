//! Prints the control store's DDL for one migration as a script the
//! engine's own client runs: `install` is the store's tables and the
//! migration's guard (`core::store::{pg,mysql}::install` and
//! `install_guard`), `drop` removes the guard (`drop_guard`). Run by
//! `benches/dualwrite.sh`, so the benchmark installs exactly what the
//! store module writes and never a copy of it that could drift.
//!
//! Usage: `store_ddl postgres|mysql install|drop MIGRATION STORE SCHEMA TABLE KEY[,KEY...]`
//!
//! PostgreSQL: one transaction for psql (its DDL is transactional, as
//! `install_guard` asks). MySQL and MariaDB: for the `mariadb` client,
//! under a delimiter of its own, since trigger bodies hold semicolons.

use anyhow::{bail, Context};
use switchyard_core::store::{mysql, pg, Guard};

/// The statement delimiter of the MySQL script; checked not to occur in
/// any statement.
const MYSQL_DELIMITER: &str = "$$";

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [engine, action, migration, store, schema, table, key] = &args[..] else {
        bail!("usage: store_ddl postgres|mysql install|drop MIGRATION STORE SCHEMA TABLE KEY[,KEY...]");
    };
    let key: Vec<String> = key.split(',').map(str::to_string).collect();
    let guard = Guard {
        migration,
        store,
        schema,
        table,
        key: &key,
        on_target: false,
    };
    let statements = match (engine.as_str(), action.as_str()) {
        ("postgres", "install") => [pg::install(store), pg::install_guard(&guard)].concat(),
        ("postgres", "drop") => pg::drop_guard(&guard),
        ("mysql", "install") => [mysql::install(store), mysql::install_guard(&guard)].concat(),
        ("mysql", "drop") => mysql::drop_guard(&guard),
        _ => bail!("engine must be `postgres` or `mysql` and action `install` or `drop`, got `{engine} {action}`"),
    };
    if engine == "postgres" {
        println!("BEGIN;");
        for sql in &statements {
            println!("{sql};");
        }
        println!("COMMIT;");
        return Ok(());
    }
    println!("DELIMITER {MYSQL_DELIMITER}");
    for sql in &statements {
        if sql.contains(MYSQL_DELIMITER) {
            return Err(anyhow::anyhow!("{sql}")).context(format!(
                "a statement holds the delimiter `{MYSQL_DELIMITER}`"
            ));
        }
        println!("{sql}{MYSQL_DELIMITER}");
    }
    println!("DELIMITER ;");
    Ok(())
}
