//! The fence: every proxy seen live reports the epoch, and no transaction
//! on the source's database began before the last of them started
//! enforcing it (such a transaction may still write under the old
//! phase). With no live proxy the fence is open at once: nothing writes
//! through a proxy, so nothing can lag behind.

use std::time::{Duration, Instant};

use switchyard_core::sql::Dialect;
use switchyard_core::store::PROXY_STATS;

use super::store::{number, Store, LIVE_WITHIN};
use super::ExecError;

/// How often the fence looks again.
const POLL: Duration = Duration::from_millis(250);

/// What still keeps the fence closed, or `None` when it is open.
pub async fn behind(store: &mut Store, epoch: u64) -> Result<Option<String>, ExecError> {
    let proxies = store.live_proxies().await?;
    if proxies.is_empty() {
        return Ok(None);
    }
    let lagging: Vec<String> = proxies
        .iter()
        .filter(|p| p.epoch < epoch)
        .map(|p| format!("proxy `{}` enforces epoch {}", p.proxy, p.epoch))
        .collect();
    if !lagging.is_empty() {
        return Ok(Some(lagging.join(", ")));
    }
    let older = older_transactions(store).await?;
    if older > 0 {
        return Ok(Some(format!(
            "{older} transaction(s) on the source's database began before the proxies acknowledged"
        )));
    }
    Ok(None)
}

/// Transactions in the source's database (other than this session's)
/// that began before the latest acknowledgement of a live proxy.
async fn older_transactions(store: &mut Store) -> Result<u64, ExecError> {
    let stats = store.table(PROXY_STATS);
    let id = store.literal(&store.migration);
    let micros = LIVE_WITHIN.as_micros();
    let query = match store.dialect {
        Dialect::Postgres => format!(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
             AND backend_type = 'client backend' AND pid <> pg_backend_pid() \
             AND xact_start < (SELECT max(enforced_since) FROM {stats} WHERE migration = {id} \
             AND heartbeat_at > clock_timestamp() - ({micros} * interval '1 microsecond'))"
        ),
        Dialect::Mysql => format!(
            "SELECT COUNT(*) FROM information_schema.INNODB_TRX t \
             JOIN information_schema.PROCESSLIST p ON p.ID = t.trx_mysql_thread_id \
             WHERE p.DB = DATABASE() AND t.trx_mysql_thread_id <> CONNECTION_ID() \
             AND t.trx_started < (SELECT MAX(enforced_since) FROM {stats} WHERE migration = {id} \
             AND heartbeat_at > NOW(6) - INTERVAL {micros} MICROSECOND)"
        ),
    };
    let rows = store.rows("looking for older transactions", &query).await?;
    Ok(number(rows.first().and_then(|r| r.first())))
}

/// Waits until the fence for `epoch` opens or `limit` passes; returns
/// what was still behind when time ran out.
pub async fn wait(
    store: &mut Store,
    epoch: u64,
    limit: Duration,
) -> Result<Option<String>, ExecError> {
    let started = Instant::now();
    loop {
        let missing = behind(store, epoch).await?;
        match missing {
            None => return Ok(None),
            Some(what) if started.elapsed() >= limit => return Ok(Some(what)),
            Some(_) => tokio::time::sleep(POLL).await,
        }
    }
}
