//! The gates the phase machine asks for, judged against the servers:
//! a clean standard diff, an empty repair queue, and the write switch's
//! readiness (no old transaction or lock queue on the source, no write
//! that bypassed the proxies waiting to be repaired).
//!
//! A gate returns `Ok(Ok(()))` when open, `Ok(Err(why))` when closed (the
//! sentence the operator reads) and `Err` when it could not be judged.

use switchyard_consistency::diff::compared::Compared;
use switchyard_consistency::diff::{Job, Options};
use switchyard_core::sql::{self, Dialect};
use switchyard_core::store::REPAIR_QUEUE;

use super::store::{number, text, Store};
use super::ExecError;
use crate::live::Live;

/// A gate's verdict: open, or closed with the reason.
pub type Verdict = Result<(), String>;

fn gate_error(live: &Live, gate: &str, error: impl std::fmt::Display) -> ExecError {
    ExecError::Gate {
        migration: live.migration.id.clone(),
        gate: gate.to_string(),
        error: error.to_string(),
    }
}

/// A standard diff (chunk checksums) of the two tables.
pub async fn clean_diff(live: &Live) -> Result<Verdict, ExecError> {
    let id = &live.migration.id;
    let compared = Compared::new(
        live.dialect,
        &live.mapping,
        &live.migration.source.primary_key,
        live.migration.time_zone.as_deref(),
    )
    .map_err(|e| gate_error(live, "clean_diff", e))?;
    let job = Job {
        migration: id,
        compared: &compared,
        connect: live,
        one_connection: live.same_database(),
    };
    let report = job
        .run(&Options::default(), &|_| {})
        .await
        .map_err(|e| gate_error(live, "clean_diff", e))?;
    if report.clean {
        return Ok(Ok(()));
    }
    Ok(Err(format!(
        "the diff found {} differing chunk(s) of {} ({} source rows, {} target rows); \
         run `switchyard diff {id} --level detailed` to see them and `switchyard repair {id}` to fix them",
        report.differing_chunks.len(),
        report.chunks,
        report.source_rows,
        report.target_rows
    )))
}

/// No key waits in the repair queue.
pub async fn repair_queue_empty(live: &Live, store: &mut Store) -> Result<Verdict, ExecError> {
    let depth = store.repair_queue().await?;
    if depth == 0 {
        return Ok(Ok(()));
    }
    let id = &live.migration.id;
    Ok(Err(format!(
        "{depth} key(s) wait in the repair queue; run `switchyard repair {id} --queue`"
    )))
}

/// The source may stop being primary: nothing holds it open (past the
/// migration's `switch.max_transaction_age`) or queues on it, and no
/// write that bypassed the proxies waits for repair.
pub async fn readiness(live: &Live, store: &mut Store) -> Result<Verdict, ExecError> {
    let mut closed = Vec::new();
    let old = old_transactions(live, store).await?;
    if !old.is_empty() {
        closed.push(format!(
            "transactions open longer than {} on the source: {}; let them finish or end them \
             (`switch.max_transaction_age` sets the limit)",
            age(live.migration.switch.max_transaction_age),
            old.join(", ")
        ));
    }
    let waiters = lock_waiters(live, store).await?;
    if waiters > 0 {
        closed.push(format!(
            "{waiters} session(s) wait for a lock on the source; wait until the queue clears"
        ));
    }
    // After the switch a proxy writes the target inside the client's own
    // transaction and mirrors it back to the source there: both tables
    // must be reachable on the client's one connection.
    if !live.same_database() {
        closed.push(format!(
            "the target {} is on another server or in another database, and the proxies switch \
             writes only where one transaction reaches both tables; keep the migration in \
             reads_on_target (reads are served by the target, every write is mirrored), or roll \
             it back",
            live.migration.target.table
        ));
    }
    let bypassing = bypassing_writes(live, store).await?;
    if bypassing > 0 {
        let sessions = direct_sessions(store).await?;
        closed.push(format!(
            "{bypassing} write(s) reached the source without a proxy (queued by the guard); \
             sessions connected to the source's database: {}; route those writers through a proxy, \
             then run `switchyard repair {} --queue`",
            if sessions.is_empty() {
                "none now".to_string()
            } else {
                sessions.join(", ")
            },
            live.migration.id
        ));
    }
    if closed.is_empty() {
        Ok(Ok(()))
    } else {
        Ok(Err(closed.join("; ")))
    }
}

/// `30 s`, `1500 ms`: the limit as the operator wrote it, near enough.
fn age(limit: std::time::Duration) -> String {
    if limit.subsec_millis() == 0 {
        format!("{} s", limit.as_secs())
    } else {
        format!("{} ms", limit.as_millis())
    }
}

/// Sessions holding a transaction on the source open past the
/// migration's `switch.max_transaction_age`.
async fn old_transactions(live: &Live, store: &mut Store) -> Result<Vec<String>, ExecError> {
    let micros = live.migration.switch.max_transaction_age.as_micros();
    let query = match live.dialect {
        Dialect::Postgres => format!(
            "SELECT DISTINCT a.pid::text, coalesce(a.usename::text, ''), coalesce(a.application_name, '') \
             FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
             WHERE l.relation = {}::regclass AND a.pid <> pg_backend_pid() \
             AND a.xact_start < now() - ({micros} * interval '1 microsecond')",
            sql::pg::literal(&source(live))
        ),
        // InnoDB does not say which tables a transaction touched without
        // its lock monitor: every old transaction in the database counts.
        Dialect::Mysql => format!(
            "SELECT p.ID, p.USER, p.HOST FROM information_schema.INNODB_TRX t \
             JOIN information_schema.PROCESSLIST p ON p.ID = t.trx_mysql_thread_id \
             WHERE p.DB = DATABASE() AND t.trx_mysql_thread_id <> CONNECTION_ID() \
             AND t.trx_started < NOW(6) - INTERVAL {micros} MICROSECOND"
        ),
    };
    let rows = store.rows("looking for old transactions", &query).await?;
    Ok(rows
        .iter()
        .map(|r| {
            format!(
                "session {} ({} {})",
                text(r.first()),
                text(r.get(1)),
                text(r.get(2))
            )
        })
        .collect())
}

/// Sessions waiting for a lock on the source.
async fn lock_waiters(live: &Live, store: &mut Store) -> Result<u64, ExecError> {
    let query = match live.dialect {
        Dialect::Postgres => format!(
            "SELECT count(*) FROM pg_locks WHERE relation = {}::regclass AND NOT granted",
            sql::pg::literal(&source(live))
        ),
        Dialect::Mysql => "SELECT COUNT(*) FROM information_schema.PROCESSLIST \
             WHERE DB = DATABASE() AND STATE LIKE 'Waiting for%lock%'"
            .to_string(),
    };
    let rows = store.rows("looking for lock waiters", &query).await?;
    Ok(number(rows.first().and_then(|r| r.first())))
}

/// Queued keys the guard recorded as written without a proxy.
async fn bypassing_writes(live: &Live, store: &mut Store) -> Result<u64, ExecError> {
    let query = format!(
        "SELECT COUNT(*) FROM {} WHERE migration = {} AND source = 'direct_client'",
        store.table(REPAIR_QUEUE),
        store.literal(&live.migration.id)
    );
    let rows = store.rows("counting bypassing writes", &query).await?;
    Ok(number(rows.first().and_then(|r| r.first())))
}

/// Sessions connected to the source's database other than this one. A
/// proxy's backend sessions mark themselves only in settings other
/// sessions cannot read (`switchyard.proxy`, `@switchyard_proxy`), so
/// this lists every session; the guard's queue is what proves a bypass.
pub async fn direct_sessions(store: &mut Store) -> Result<Vec<String>, ExecError> {
    let query = match store.dialect {
        Dialect::Postgres => "SELECT pid::text, coalesce(usename::text, ''), \
             coalesce(client_addr::text, 'local'), coalesce(application_name, '') \
             FROM pg_stat_activity WHERE datname = current_database() \
             AND backend_type = 'client backend' AND pid <> pg_backend_pid() \
             AND application_name NOT LIKE 'switchyard%' ORDER BY pid"
            .to_string(),
        Dialect::Mysql => "SELECT ID, USER, HOST, COMMAND FROM information_schema.PROCESSLIST \
             WHERE DB = DATABASE() AND ID <> CONNECTION_ID() ORDER BY ID"
            .to_string(),
    };
    let rows = store.rows("listing sessions", &query).await?;
    Ok(rows
        .iter()
        .map(|r| {
            format!(
                "{} {}@{} {}",
                text(r.first()),
                text(r.get(1)),
                text(r.get(2)),
                text(r.get(3))
            )
            .trim_end()
            .to_string()
        })
        .collect())
}

/// The source table as PostgreSQL's `regclass` reads it.
fn source(live: &Live) -> String {
    sql::pg::qualified(&live.mapping.source.schema, &live.mapping.source.table)
}
