//! The control store on MySQL / MariaDB: one connection per backend and
//! database, polled (MySQL has no LISTEN).

use mysql_async::prelude::Queryable;
use mysql_async::TxOpts;
use switchyard_core::store::mysql as store;
use switchyard_core::store::{AuditEvent, Heartbeat};

use super::link::{Failure, Place};
use super::row::{self, Row};

/// A connection to one database's store.
pub struct Conn {
    /// The follower's own connection (never a session's).
    conn: mysql_async::Conn,
}

/// ER_NO_SUCH_TABLE and ER_BAD_DB_ERROR: no store installed there.
const NO_STORE: [u16; 2] = [1146, 1049];

fn failed(e: mysql_async::Error) -> Failure {
    match &e {
        mysql_async::Error::Server(server) if NO_STORE.contains(&server.code) => Failure::NoStore,
        _ => Failure::Unreachable(e.to_string()),
    }
}

impl Conn {
    /// Connects to `place`'s database.
    pub async fn open(place: &Place) -> Result<Conn, Failure> {
        let database = place.database.as_deref().unwrap_or_default();
        let conn = tokio::time::timeout(
            place.timeout,
            crate::catalog::connect::mysql(&place.backend, database),
        )
        .await
        .map_err(|_| Failure::Unreachable(format!("no connection within {:?}", place.timeout)))?
        .map_err(failed)?;
        Ok(Conn { conn })
    }

    /// The migration's stored state; `None` when it has none.
    pub async fn read(&mut self, database: &str, migration: &str) -> Result<Option<Row>, Failure> {
        let found: Option<mysql_async::Row> = self
            .conn
            .query_first(store::read_state(database, migration))
            .await
            .map_err(failed)?;
        let Some(mut r) = found else {
            return Ok(None);
        };
        let bad = |column: &str| {
            Failure::Unreachable(format!(
                "migration `{migration}`: the store's `{column}` could not be read; \
                 check `switchyard_state` with `switchyard status`"
            ))
        };
        let name: String = r
            .take_opt(0)
            .and_then(Result::ok)
            .ok_or_else(|| bad("phase"))?;
        let phase = row::phase(&name).ok_or_else(|| super::pg::unknown_phase(migration, &name))?;
        let epoch: u64 = r
            .take_opt(1)
            .and_then(Result::ok)
            .ok_or_else(|| bad("epoch"))?;
        let read_rule: Option<String> = r.take_opt(2).and_then(Result::ok).flatten();
        let share: u64 = r.take_opt(3).and_then(Result::ok).unwrap_or(0);
        let paused: bool = r.take_opt(4).and_then(Result::ok).unwrap_or(false);
        let pending: Option<u64> = r.take_opt(5).and_then(Result::ok).flatten();
        let holding_writes: bool = r.take_opt(6).and_then(Result::ok).unwrap_or(false);
        let rollback_reason: Option<String> = r.take_opt(7).and_then(Result::ok).flatten();
        Ok(Some(Row {
            phase,
            epoch,
            read_rule,
            share: row::share(share),
            paused,
            pending_approval: pending.map(row::share),
            holding_writes,
            rollback_reason,
        }))
    }

    /// Records this proxy's heartbeat.
    pub async fn heartbeat(&mut self, database: &str, beat: &Heartbeat<'_>) -> Result<(), Failure> {
        self.conn
            .query_drop(store::heartbeat(database, beat))
            .await
            .map_err(failed)
    }

    /// Stores `row` if the state is still `expected` (`None`: no row yet),
    /// with `event` in the audit log, in one transaction. `false`: someone
    /// else moved it first.
    pub async fn write(
        &mut self,
        database: &str,
        expected: Option<u64>,
        row: &Row,
        event: &AuditEvent<'_>,
    ) -> Result<bool, Failure> {
        let state = row.as_state(event.migration);
        let mut tx = self
            .conn
            .start_transaction(TxOpts::default())
            .await
            .map_err(failed)?;
        let sql = match expected {
            Some(epoch) => store::write_state(database, &state, epoch),
            None => store::init_state(database, &state),
        };
        tx.query_drop(sql).await.map_err(failed)?;
        // `init_state` counts 1 for an insert and 0 for an existing row;
        // `write_state` 1 when the epoch still matched.
        if tx.affected_rows() != 1 {
            tx.rollback().await.map_err(failed)?;
            return Ok(false);
        }
        tx.query_drop(store::append_event(database, event))
            .await
            .map_err(failed)?;
        tx.commit().await.map_err(failed)?;
        Ok(true)
    }
}
