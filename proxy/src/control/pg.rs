//! The control store on PostgreSQL: one connection per backend and
//! database, which also LISTENs on the state channel so a change wakes the
//! follower before its next poll.

use switchyard_core::store::pg as store;
use switchyard_core::store::{AuditEvent, Heartbeat};
use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

use super::link::{Failure, Place};
use super::row::{self, Row};

/// A connection to one database's store.
pub struct Conn {
    /// The follower's own client (never a session's).
    client: Client,
}

fn failed(e: tokio_postgres::Error) -> Failure {
    // No store installed (or not in this schema): the file is followed.
    match e.code() {
        Some(code)
            if *code == SqlState::UNDEFINED_TABLE || *code == SqlState::INVALID_SCHEMA_NAME =>
        {
            Failure::NoStore
        }
        _ => Failure::Unreachable(e.to_string()),
    }
}

impl Conn {
    /// Connects to `place`'s database and LISTENs for state changes, whose
    /// payloads (migration ids) go to `wake`.
    pub async fn open(
        place: &Place,
        wake: tokio::sync::mpsc::UnboundedSender<String>,
    ) -> Result<Conn, Failure> {
        let client = crate::catalog::connect::postgres_listening(
            &place.backend,
            &place.tls,
            place.database.as_deref(),
            place.timeout,
            Some(wake),
        )
        .await
        .map_err(|e| Failure::Unreachable(e.to_string()))?;
        client
            .batch_execute(&format!(
                "LISTEN {}",
                switchyard_core::sql::pg::ident(store::STATE_CHANNEL)
            ))
            .await
            .map_err(failed)?;
        Ok(Conn { client })
    }

    /// The migration's stored state; `None` when it has none.
    pub async fn read(&mut self, schema: &str, migration: &str) -> Result<Option<Row>, Failure> {
        let rows = self
            .client
            .query(&store::read_state(schema, migration), &[])
            .await
            .map_err(failed)?;
        let Some(r) = rows.first() else {
            return Ok(None);
        };
        let name: String = r.get(0);
        let phase = row::phase(&name).ok_or_else(|| unknown_phase(migration, &name))?;
        Ok(Some(Row {
            phase,
            epoch: u64::try_from(r.get::<_, i64>(1)).unwrap_or(0),
            read_rule: r.get(2),
            share: row::share(u64::try_from(r.get::<_, i32>(3)).unwrap_or(0)),
            paused: r.get(4),
            pending_approval: r
                .get::<_, Option<i32>>(5)
                .map(|bp| row::share(u64::try_from(bp).unwrap_or(0))),
            holding_writes: r.get(6),
            rollback_reason: r.get(7),
        }))
    }

    /// Records this proxy's heartbeat.
    pub async fn heartbeat(&mut self, schema: &str, beat: &Heartbeat<'_>) -> Result<(), Failure> {
        self.client
            .batch_execute(&store::heartbeat(schema, beat))
            .await
            .map_err(failed)
    }

    /// Stores `row` if the state is still `expected` (`None`: no row yet),
    /// with `event` in the audit log and a notification, in one
    /// transaction. `false`: someone else moved it first.
    pub async fn write(
        &mut self,
        schema: &str,
        expected: Option<u64>,
        row: &Row,
        event: &AuditEvent<'_>,
    ) -> Result<bool, Failure> {
        let state = row.as_state(event.migration);
        let tx = self.client.transaction().await.map_err(failed)?;
        let sql = match expected {
            Some(epoch) => store::write_state(schema, &state, epoch),
            None => store::init_state(schema, &state),
        };
        if tx.execute(&sql, &[]).await.map_err(failed)? != 1 {
            return Ok(false);
        }
        tx.batch_execute(&store::append_event(schema, event))
            .await
            .map_err(failed)?;
        tx.batch_execute(&store::notify_state(event.migration))
            .await
            .map_err(failed)?;
        tx.commit().await.map_err(failed)?;
        Ok(true)
    }
}

/// A phase this release does not know: the store is newer than the proxy.
pub fn unknown_phase(migration: &str, name: &str) -> Failure {
    Failure::Unreachable(format!(
        "migration `{migration}`: the store's phase `{name}` is unknown to this proxy; \
         upgrade the proxy to the controller's release"
    ))
}
