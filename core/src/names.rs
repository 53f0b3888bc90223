//! Prometheus metric names. They are a contract with dashboards and alert
//! rules (the Helm chart's PrometheusRule), so every name lives here once.

/// Client connections accepted, by `protocol`.
pub const CONNECTIONS_TOTAL: &str = "switchyard_connections_total";
/// Client connections open now, by `protocol`.
pub const CONNECTIONS_ACTIVE: &str = "switchyard_connections_active";
/// Client connections refused or closed with an error, by `protocol` and `reason`.
pub const CONNECTION_ERRORS_TOTAL: &str = "switchyard_connection_errors_total";
/// Bytes relayed, by `protocol` and `direction` (`client_to_server`, `server_to_client`).
pub const BYTES_TOTAL: &str = "switchyard_bytes_total";
/// Statements seen, by `protocol` and `kind`.
pub const STATEMENTS_TOTAL: &str = "switchyard_statements_total";
/// Statements sqlparser could not parse and that were relayed untouched, by `protocol`.
pub const UNPARSED_TOTAL: &str = "switchyard_unparsed_total";
/// Client logins that failed, by `protocol` and `reason`.
pub const AUTH_FAILURES_TOTAL: &str = "switchyard_auth_failures_total";
/// Cancel requests forwarded to a backend, by `protocol` and `outcome`.
pub const CANCELS_TOTAL: &str = "switchyard_cancels_total";
/// Config reloads, by `outcome` (`applied`, `rejected`, `unchanged`).
pub const CONFIG_RELOADS_TOTAL: &str = "switchyard_config_reloads_total";
/// Generation of the configuration in force (1 at start, +1 per applied reload).
pub const CONFIG_GENERATION: &str = "switchyard_config_generation";
/// Whether a migration's live schemas are loaded and fit its mapping (1)
/// or not (0: pending or refused, reads stay on the source), by `migration`.
pub const CATALOG_READY: &str = "switchyard_catalog_ready";

// Migration metrics (DESIGN.md, Observability); the read switch and the
// mirror emit them.
pub const READS_TOTAL: &str = "switchyard_reads_total";
pub const READ_DURATION_SECONDS: &str = "switchyard_read_duration_seconds";
pub const TARGET_SHARE: &str = "switchyard_target_share";
/// Reads of a migrated table the rule sent to the target that stay on the source, by reason.
pub const UNROUTABLE_TOTAL: &str = "switchyard_unroutable_total";
pub const PHASE: &str = "switchyard_phase";
/// Mirrored client writes, by `migration` and `outcome` (`mirrored`: both
/// tables written; `repair_queued`: the mirror failed and the keys were
/// queued with the write; `failed`: the write failed because its mirror did).
pub const MIRROR_WRITES_TOTAL: &str = "switchyard_mirror_writes_total";
/// Seconds a mirrored write took, the mirror included, by `migration`.
pub const MIRROR_DURATION_SECONDS: &str = "switchyard_mirror_duration_seconds";
/// Writes the dual write refused, by `migration` and `reason`.
pub const REJECTED_WRITES_TOTAL: &str = "switchyard_rejected_writes_total";
/// Writes of the source the proxy did not mirror, found by the guard, by
/// `migration` and `source`.
pub const UNMIRRORED_WRITES_TOTAL: &str = "switchyard_unmirrored_writes_total";
pub const REPAIR_QUEUE_DEPTH: &str = "switchyard_repair_queue_depth";
pub const OUTBOX_LAG_SECONDS: &str = "switchyard_outbox_lag_seconds";
pub const OUTBOX_DEPTH: &str = "switchyard_outbox_depth";
/// Shadowed reads, by `migration` and `result` (`match`, `mismatch`,
/// `skipped`, `error`); `skipped` also has a `reason`, one of a fixed set
/// (`shadow::Skip::label`).
pub const SHADOW_COMPARE_TOTAL: &str = "switchyard_shadow_compare_total";
/// Automatic read rollbacks, by `migration` and `reason`.
pub const ROLLBACKS_TOTAL: &str = "switchyard_rollbacks_total";
/// The verdict on a migration's target reads: 0 healthy, 1 warn, 2 breach, 3 not enough samples.
pub const READ_VERDICT: &str = "switchyard_read_verdict";
/// Alert webhook posts, by `migration`, `kind` and `outcome` (`sent`, `failed`, `suppressed`, `dropped`).
pub const ALERTS_TOTAL: &str = "switchyard_alerts_total";
pub const BACKFILL_ROWS_TOTAL: &str = "switchyard_backfill_rows_total";

// Control store metrics (the proxy's follower).
/// The epoch of the stored state each proxy enforces, by `migration` (0
/// while the migration follows its file).
pub const STORE_EPOCH: &str = "switchyard_store_epoch";
/// Reads of the control store that failed, by `migration`; past the lease
/// the proxy refuses writes to the migrated tables.
pub const STORE_READ_FAILURES_TOTAL: &str = "switchyard_store_read_failures_total";
