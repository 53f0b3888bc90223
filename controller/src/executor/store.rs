//! The control store as the executor and the commands use it: one
//! connection to the source's server, and the core's store statements
//! for its engine run on it (state, audit log, heartbeats, lease, the
//! counts `status` shows).

use std::time::Duration;

use switchyard_consistency::diff::conn::{show, Cell, Conn, DbError};
use switchyard_core::config::{Percent, Phase};
use switchyard_core::sql::{self, Dialect};
use switchyard_core::store::{
    self, mysql as my, pg, AuditEvent, StateRow, OUTBOX, PROXY_STATS, REPAIR_QUEUE, STATE,
};

use super::ExecError;
use crate::live::Site;

/// How recent a heartbeat must be for its proxy to count as live.
pub const LIVE_WITHIN: Duration = store::HEARTBEAT_LIVE;

/// A migration's row of `switchyard_state`, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stored {
    /// The phase.
    pub phase: Phase,
    /// The epoch, which writes compare-and-set on.
    pub epoch: u64,
    /// The read rule set at runtime (JSON), kept as it is on every write.
    pub read_rule: Option<String>,
    /// The target's read share.
    pub share: Percent,
    /// Paused by an operator.
    pub paused: bool,
    /// A ramp step waiting for approval.
    pub pending_approval: Option<Percent>,
    /// Proxies hold writes (the write switch).
    pub holding_writes: bool,
    /// Why it was rolled back.
    pub rollback_reason: Option<String>,
    /// When it was last written, as the server prints it.
    pub updated_at: String,
}

/// The live proxies' read counts, summed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReadFigures {
    /// Reads sent to the target.
    pub target_reads: u64,
    /// Of those, the ones that failed.
    pub target_errors: u64,
    /// Target reads compared with the source's answer (the shadow).
    pub shadow_compared: u64,
    /// Of those, the ones whose answers differed.
    pub shadow_mismatches: u64,
}

/// A proxy that heartbeats the migration.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ProxyBeat {
    /// The proxy's id.
    pub proxy: String,
    /// The epoch it enforces.
    pub epoch: u64,
    /// When it began enforcing it.
    pub enforced_since: String,
}

/// The control store of one migration, on the source's server.
pub struct Store {
    /// The connection every store statement runs on.
    pub conn: Conn,
    /// Which statements to use.
    pub dialect: Dialect,
    /// The schema (PostgreSQL) or database (MySQL) holding the store: the
    /// source table's.
    pub schema: String,
    /// The migration's id.
    pub migration: String,
}

/// A cell as text ("" for NULL).
pub fn text(cell: Option<&Cell>) -> String {
    cell.and_then(show).unwrap_or_default()
}

/// A cell as a number (0 when NULL or not a number).
pub fn number(cell: Option<&Cell>) -> u64 {
    text(cell).parse::<f64>().map_or(0, |n| n.max(0.0) as u64)
}

/// A boolean as either engine prints it.
fn boolean(cell: Option<&Cell>) -> bool {
    matches!(text(cell).as_str(), "t" | "1" | "true")
}

impl Store {
    /// Opens a connection to `site`'s source server for its store.
    pub async fn open(site: &Site) -> Result<Store, ExecError> {
        Ok(Store {
            conn: site.conn().await?,
            dialect: site.dialect,
            schema: site.schema.clone(),
            migration: site.migration.id.clone(),
        })
    }

    /// An error for `what` that failed with `error`.
    pub fn failed(&self, what: &'static str, error: DbError) -> ExecError {
        ExecError::Query {
            migration: self.migration.clone(),
            what,
            error,
        }
    }

    /// Runs `sql`, ignoring rows.
    pub async fn execute(&mut self, what: &'static str, sql: &str) -> Result<(), ExecError> {
        let result = self.conn.execute(sql).await;
        result.map_err(|e| self.failed(what, e))
    }

    /// Runs `sql` and returns its rows.
    pub async fn rows(
        &mut self,
        what: &'static str,
        sql: &str,
    ) -> Result<Vec<Vec<Cell>>, ExecError> {
        let result = self.conn.rows(sql).await;
        result.map_err(|e| self.failed(what, e))
    }

    /// A table of the store, quoted for the engine.
    pub fn table(&self, name: &str) -> String {
        match self.dialect {
            Dialect::Postgres => sql::pg::qualified(&self.schema, name),
            Dialect::Mysql => sql::mysql::qualified(&self.schema, name),
        }
    }

    /// A string literal for the engine.
    pub fn literal(&self, value: &str) -> String {
        match self.dialect {
            Dialect::Postgres => sql::pg::literal(value),
            Dialect::Mysql => sql::mysql::literal(value),
        }
    }

    /// Whether the store's tables exist (the state table stands for all).
    pub async fn installed(&mut self) -> Result<bool, ExecError> {
        let probe = match self.dialect {
            Dialect::Postgres => format!(
                "SELECT 1 FROM information_schema.tables WHERE table_schema = {} AND table_name = '{STATE}'",
                sql::pg::literal(&self.schema)
            ),
            Dialect::Mysql => format!(
                "SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = {} AND TABLE_NAME = '{STATE}'",
                sql::mysql::literal(&self.schema)
            ),
        };
        Ok(!self
            .rows("looking for the control store", &probe)
            .await?
            .is_empty())
    }

    /// The stored state, or `None` when the migration has none yet.
    pub async fn read(&mut self) -> Result<Option<Stored>, ExecError> {
        let query = match self.dialect {
            Dialect::Postgres => pg::read_state(&self.schema, &self.migration),
            Dialect::Mysql => my::read_state(&self.schema, &self.migration),
        };
        let rows = self.rows("reading the state", &query).await?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let bad = |what: String| ExecError::BadState {
            migration: self.migration.clone(),
            what,
        };
        let phase_text = text(row.first());
        let phase = phase_text
            .parse::<Phase>()
            .map_err(|_| bad(format!("phase `{phase_text}`")))?;
        let percent = |cell: Option<&Cell>| {
            let bp = number(cell) as u32;
            Percent::from_basis_points(bp).ok_or_else(|| bad(format!("share {bp}")))
        };
        let optional = |cell: Option<&Cell>| cell.and_then(|c| c.as_ref()).map(|_| text(cell));
        Ok(Some(Stored {
            phase,
            epoch: number(row.get(1)),
            read_rule: optional(row.get(2)),
            share: percent(row.get(3))?,
            paused: boolean(row.get(4)),
            pending_approval: match optional(row.get(5)) {
                Some(_) => Some(percent(row.get(5))?),
                None => None,
            },
            holding_writes: boolean(row.get(6)),
            rollback_reason: optional(row.get(7)),
            updated_at: text(row.get(8)),
        }))
    }

    /// Creates the state from `row` unless one exists.
    pub async fn init(&mut self, row: &StateRow<'_>) -> Result<(), ExecError> {
        let statement = match self.dialect {
            Dialect::Postgres => pg::init_state(&self.schema, row),
            Dialect::Mysql => my::init_state(&self.schema, row),
        };
        self.execute("creating the state", &statement).await
    }

    /// Writes `row` if the stored epoch is still `expected`; false when
    /// another writer moved it first.
    pub async fn write(&mut self, row: &StateRow<'_>, expected: u64) -> Result<bool, ExecError> {
        match self.dialect {
            Dialect::Postgres => {
                let update = pg::write_state(&self.schema, row, expected);
                let rows = self
                    .rows("writing the state", &format!("{update} RETURNING epoch"))
                    .await?;
                Ok(!rows.is_empty())
            }
            Dialect::Mysql => {
                let update = my::write_state(&self.schema, row, expected);
                self.execute("writing the state", &update).await?;
                let rows = self.rows("writing the state", "SELECT ROW_COUNT()").await?;
                Ok(number(rows.first().and_then(|r| r.first())) > 0)
            }
        }
    }

    /// Wakes the proxies (PostgreSQL; MySQL proxies only poll).
    pub async fn notify(&mut self) -> Result<(), ExecError> {
        if self.dialect == Dialect::Postgres {
            let statement = pg::notify_state(&self.migration);
            self.execute("notifying the proxies", &statement).await?;
        }
        Ok(())
    }

    /// Appends `event` to the audit log.
    pub async fn audit(&mut self, event: &AuditEvent<'_>) -> Result<(), ExecError> {
        let statement = match self.dialect {
            Dialect::Postgres => pg::append_event(&self.schema, event),
            Dialect::Mysql => my::append_event(&self.schema, event),
        };
        self.execute("appending to the audit log", &statement).await
    }

    /// The proxies heartbeating within [`LIVE_WITHIN`].
    pub async fn live_proxies(&mut self) -> Result<Vec<ProxyBeat>, ExecError> {
        let query = match self.dialect {
            Dialect::Postgres => pg::live_proxies(&self.schema, &self.migration, LIVE_WITHIN),
            Dialect::Mysql => my::live_proxies(&self.schema, &self.migration, LIVE_WITHIN),
        };
        let rows = self.rows("listing live proxies", &query).await?;
        Ok(rows
            .iter()
            .map(|r| ProxyBeat {
                proxy: text(r.first()),
                epoch: number(r.get(1)),
                enforced_since: text(r.get(2)),
            })
            .collect())
    }

    /// What the live proxies reported of their reads, in total (each
    /// proxy's counts since it started).
    pub async fn read_figures(&mut self) -> Result<ReadFigures, ExecError> {
        let within = LIVE_WITHIN.as_micros();
        let live = match self.dialect {
            Dialect::Postgres => {
                format!("heartbeat_at > clock_timestamp() - {within} * interval '1 microsecond'")
            }
            Dialect::Mysql => format!("heartbeat_at > NOW(6) - INTERVAL {within} MICROSECOND"),
        };
        let query = format!(
            "SELECT COALESCE(SUM(target_reads), 0), COALESCE(SUM(target_errors), 0), \
             COALESCE(SUM(shadow_compared), 0), COALESCE(SUM(shadow_mismatches), 0) FROM {} \
             WHERE migration = {} AND {live}",
            self.table(PROXY_STATS),
            self.literal(&self.migration)
        );
        let rows = self.rows("summing the proxies' reads", &query).await?;
        let cell = |i: usize| number(rows.first().and_then(|r| r.get(i)));
        Ok(ReadFigures {
            target_reads: cell(0),
            target_errors: cell(1),
            shadow_compared: cell(2),
            shadow_mismatches: cell(3),
        })
    }

    /// How long the oldest key in the outbox has waited, in seconds;
    /// `None` when the outbox is empty.
    pub async fn outbox_lag(&mut self) -> Result<Option<f64>, ExecError> {
        let age = match self.dialect {
            Dialect::Postgres => "EXTRACT(EPOCH FROM clock_timestamp() - MIN(queued_at))",
            Dialect::Mysql => "TIMESTAMPDIFF(MICROSECOND, MIN(queued_at), NOW(6)) / 1000000",
        };
        let query = format!(
            "SELECT {age} FROM {} WHERE migration = {}",
            self.table(OUTBOX),
            self.literal(&self.migration)
        );
        let rows = self.rows("measuring the outbox's lag", &query).await?;
        Ok(rows
            .first()
            .and_then(|r| r.first())
            .map(|c| text(Some(c)))
            .and_then(|t| t.parse::<f64>().ok()))
    }

    /// Rows of `table` (a store table) for this migration.
    pub async fn count(&mut self, table: &str) -> Result<u64, ExecError> {
        let query = format!(
            "SELECT COUNT(*) FROM {} WHERE migration = {}",
            self.table(table),
            self.literal(&self.migration)
        );
        let rows = self.rows("counting", &query).await?;
        Ok(number(rows.first().and_then(|r| r.first())))
    }

    /// Keys waiting in the repair queue.
    pub async fn repair_queue(&mut self) -> Result<u64, ExecError> {
        self.count(REPAIR_QUEUE).await
    }

    /// Keys waiting in the outbox.
    pub async fn outbox(&mut self) -> Result<u64, ExecError> {
        self.count(OUTBOX).await
    }

    /// The store's recorded version, `None` when not installed.
    pub async fn version(&mut self) -> Result<Option<u32>, ExecError> {
        let query = match self.dialect {
            Dialect::Postgres => pg::version_query(&self.schema),
            Dialect::Mysql => my::version_query(&self.schema),
        };
        match self.conn.rows(&query).await {
            Ok(rows) => Ok(rows.first().map(|r| number(r.first()) as u32)),
            Err(_) => Ok(None),
        }
    }
}

/// The store's install statements for `dialect` in `schema`.
pub fn install(dialect: Dialect, schema: &str) -> Vec<String> {
    match dialect {
        Dialect::Postgres => store::pg::install(schema),
        Dialect::Mysql => store::mysql::install(schema),
    }
}
