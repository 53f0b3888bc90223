//! The migration plan: one source table moving to one target table, the
//! column mapping, the starting phase, how reads move, when they roll back.
//!
//! This module only describes and checks a plan; the proxy and the
//! controller execute it. Runtime state (current phase, share, rollbacks)
//! lives in the control store, never here.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize};

use super::backends::Backend;
use super::scalars::{self, Cidr, Percent};
use super::switch::{self, Switch};
use super::ConfigError;

/// One table move.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Migration {
    /// Stable name: metric label, control-store key and CLI argument.
    pub id: String,
    /// Backend (a name under `backends`) holding the source table.
    pub backend: String,
    /// The table being moved away from.
    pub source: SourceTable,
    /// The table being moved to.
    pub target: TargetTable,
    /// Renamed columns, source name → target name; unlisted columns keep
    /// their name on the target.
    #[serde(default)]
    pub columns: BTreeMap<String, String>,
    /// Pins the session time zone of the migration's reads and mirror
    /// (`Europe/Paris`, `+00:00`), making timestamptz↔timestamp (MySQL
    /// TIMESTAMP↔DATETIME) retypes well defined; without it the catalog
    /// refuses such a retype, since its result would depend on each
    /// client's session setting.
    #[serde(default)]
    pub time_zone: Option<String>,
    /// Phase to start in when the control store has no state yet.
    #[serde(default)]
    pub phase: Phase,
    /// What a failed mirror write does to the client's write.
    #[serde(default)]
    pub on_mirror_error: OnMirrorError,
    /// Writes the proxy cannot mirror with certainty that it lets through
    /// anyway while the migration mirrors (refused by default): the guard
    /// queues the rows they write, where it sees them.
    #[serde(default)]
    pub allow_unmirrored: Vec<Unmirrored>,
    /// How reads choose between source and target.
    #[serde(default)]
    pub reads: Reads,
    /// When the target's reads are rolled back automatically.
    #[serde(default)]
    pub rollback: Rollback,
    /// Where rollbacks and breaches are announced.
    #[serde(default)]
    pub alerts: Alerts,
    /// How the controller ramps the target's read share.
    #[serde(default)]
    pub ramp: Ramp,
    /// The write switch's budget and readiness limit.
    #[serde(default)]
    pub switch: Switch,
}

impl Migration {
    /// The backend holding the target table: its own, or the source's.
    pub fn target_backend(&self) -> &str {
        self.target.backend.as_deref().unwrap_or(&self.backend)
    }

    /// Whether the target lives on another server, so writes are mirrored
    /// through the outbox rather than inline.
    pub fn is_cross_server(&self) -> bool {
        self.target_backend() != self.backend
    }

    /// The target-side name of a source column.
    pub fn target_column<'a>(&'a self, source_column: &'a str) -> &'a str {
        self.columns
            .get(source_column)
            .map(String::as_str)
            .unwrap_or(source_column)
    }
}

/// The source table.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceTable {
    /// Database holding the table; `None` means the backend's `database`.
    #[serde(default)]
    pub database: Option<String>,
    /// Schema (PostgreSQL); `None` means `public`. MySQL has no schemas.
    #[serde(default)]
    pub schema: Option<String>,
    /// Table name.
    pub table: String,
    /// Primary-key columns, in key order; every sync is keyed by them.
    pub primary_key: Vec<String>,
}

/// The target table.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetTable {
    /// Database; when omitted, filled at load with the source's.
    #[serde(default)]
    pub database: Option<String>,
    /// Schema; when omitted, filled at load with the source's.
    #[serde(default)]
    pub schema: Option<String>,
    /// Table name.
    pub table: String,
    /// Another backend for a cross-server move (outbox mirroring); `None`
    /// means the source's server (inline mirroring).
    #[serde(default)]
    pub backend: Option<String>,
}

/// Where a migration stands. The order of `ALL` is the forward order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Declared; nothing happens yet.
    #[default]
    Planned,
    /// Writes to the source are mirrored to the target.
    DualWrite,
    /// Existing rows are being copied while mirroring continues.
    Backfill,
    /// Source and target are being diffed.
    Validate,
    /// Reads move to the target step by step.
    ReadRamp,
    /// All reads are on the target; writes still primary on the source.
    ReadsOnTarget,
    /// The target is primary; the source is mirrored.
    WriteSwitch,
    /// Done; the source is archived.
    Complete,
    /// Back on the source, mirror off.
    RolledBack,
}

impl Phase {
    /// Every phase, forward order, `rolled_back` last.
    pub const ALL: [Phase; 9] = [
        Phase::Planned,
        Phase::DualWrite,
        Phase::Backfill,
        Phase::Validate,
        Phase::ReadRamp,
        Phase::ReadsOnTarget,
        Phase::WriteSwitch,
        Phase::Complete,
        Phase::RolledBack,
    ];

    /// The name as written in the file and stored in the control store.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Planned => "planned",
            Phase::DualWrite => "dual_write",
            Phase::Backfill => "backfill",
            Phase::Validate => "validate",
            Phase::ReadRamp => "read_ramp",
            Phase::ReadsOnTarget => "reads_on_target",
            Phase::WriteSwitch => "write_switch",
            Phase::Complete => "complete",
            Phase::RolledBack => "rolled_back",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Phase {
    type Err = String;

    fn from_str(s: &str) -> Result<Phase, String> {
        Phase::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Phase::ALL.iter().map(|p| p.as_str()).collect();
                format!("`{s}` is not a phase; use one of {}", names.join(", "))
            })
    }
}

/// A kind of write the dual write cannot mirror with certainty.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unmirrored {
    /// TRUNCATE of either table (no row trigger sees it).
    Truncate,
    /// COPY ... FROM into the source (PostgreSQL).
    Copy,
    /// MERGE into the source (PostgreSQL 15 has no RETURNING for it).
    Merge,
    /// DDL on either table.
    Ddl,
    /// A write of the target table itself, which the mirror overwrites.
    TargetWrite,
}

impl Unmirrored {
    /// The `reason` label of `switchyard_rejected_writes_total` and the
    /// name the configuration uses.
    pub fn label(self) -> &'static str {
        match self {
            Unmirrored::Truncate => "truncate",
            Unmirrored::Copy => "copy",
            Unmirrored::Merge => "merge",
            Unmirrored::Ddl => "ddl",
            Unmirrored::TargetWrite => "target_write",
        }
    }
}

/// What happens to the client's write when its mirror write fails.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnMirrorError {
    /// The write succeeds; the keys are queued for repair in the same transaction.
    #[default]
    Repair,
    /// The client's statement fails.
    FailWrite,
}

/// The read rule of a migration.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Reads {
    /// How a read picks its path.
    pub strategy: Strategy,
    /// Share of reads sent to the target (`percentage`, and the rest of a
    /// `canary` after its cohorts).
    pub percent: Percent,
    /// The one path for `immediate` and `blue_green`.
    pub path: ReadPath,
    /// What keeps a client on one path as the share changes.
    pub sticky_by: StickyBy,
    /// Cohorts that always read from the target under `canary`.
    pub canary: Canary,
    /// Named arms under `ab`.
    pub arms: Vec<Arm>,
    /// Also run a share of reads on the other path and compare; `None` is off.
    pub shadow: Option<Shadow>,
}

/// How reads choose a path.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// All reads to `path`; with the default path, the safe "source only".
    #[default]
    Immediate,
    /// `percent` of sticky keys to the target.
    Percentage,
    /// Listed cohorts to the target, then `percent` of the rest.
    Canary,
    /// Weighted named arms.
    Ab,
    /// All-or-nothing flip to `path`, with instant flip back.
    BlueGreen,
}

/// Where one read goes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadPath {
    /// The old table.
    #[default]
    Source,
    /// The new table.
    Target,
}

/// The stickiness key for percentage routing.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub enum StickyBy {
    /// One client connection stays on one path.
    #[default]
    Session,
    /// One database user stays on one path.
    User,
    /// One value of this column (from the WHERE clause) stays on one path.
    Column(String),
}

impl FromStr for StickyBy {
    type Err = String;

    fn from_str(s: &str) -> Result<StickyBy, String> {
        match s.trim() {
            "session" => Ok(StickyBy::Session),
            "user" => Ok(StickyBy::User),
            other => match other.strip_prefix("column:").map(str::trim) {
                Some(column) if !column.is_empty() => Ok(StickyBy::Column(column.to_string())),
                _ => Err(format!(
                    "`{other}` is not a stickiness key; use `session`, `user` or `column:<name>`, e.g. `column:tenant_id`"
                )),
            },
        }
    }
}

impl fmt::Display for StickyBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StickyBy::Session => f.write_str("session"),
            StickyBy::User => f.write_str("user"),
            StickyBy::Column(c) => write!(f, "column:{c}"),
        }
    }
}

impl Serialize for StickyBy {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for StickyBy {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<StickyBy, D::Error> {
        String::deserialize(d)?.parse().map_err(de::Error::custom)
    }
}

/// Explicit target cohorts for `canary`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Canary {
    /// Database users (login names) whose reads go to the target.
    pub users: Vec<String>,
    /// `application_name` (PostgreSQL) / `program_name` connect attribute (MySQL) values.
    pub applications: Vec<String>,
    /// Client networks.
    pub clients: Vec<Cidr>,
    /// A SQL comment tag (`/* switchyard:target */`) that sends a statement
    /// to the target; empty means none.
    #[serde(deserialize_with = "scalars::non_empty")]
    pub comment_tag: Option<String>,
    /// Sticky-key values (e.g. tenant ids) whose reads go to the target.
    #[serde(deserialize_with = "scalars::scalar_texts")]
    pub keys: Vec<String>,
}

/// One arm of an A/B split.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Arm {
    /// Label in per-arm metrics.
    pub name: String,
    /// Where this arm's reads go.
    pub path: ReadPath,
    /// Relative weight; arms share reads in proportion.
    pub weight: u32,
}

/// Shadow reads: compare the other path's answer without returning it.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Shadow {
    /// Share of routed reads also run on the other path.
    pub percent: Percent,
    /// Result rows a comparison holds at most; a longer result is not
    /// compared (it counts as skipped), so a large scan cannot make the
    /// proxy buffer it twice.
    #[serde(default = "Shadow::default_max_rows")]
    pub max_rows: u64,
    /// Result bytes a comparison holds at most, on either path; a larger
    /// result counts as skipped, for the same reason as `max_rows`.
    #[serde(
        default = "Shadow::default_max_bytes",
        deserialize_with = "scalars::bytes"
    )]
    pub max_bytes: usize,
}

impl Shadow {
    /// Enough rows for the point and range reads a comparison is meant for.
    pub const DEFAULT_MAX_ROWS: u64 = 1_000;
    /// 1 MiB: a thousand rows of about a kilobyte.
    pub const DEFAULT_MAX_BYTES: usize = 1 << 20;

    fn default_max_rows() -> u64 {
        Shadow::DEFAULT_MAX_ROWS
    }

    fn default_max_bytes() -> usize {
        Shadow::DEFAULT_MAX_BYTES
    }
}

/// Thresholds of the automatic read rollback (DESIGN.md, "Automatic read
/// rollback"). A rollback holds until an operator sets a new rule: there is
/// no cooldown timer that ramps the target again by itself.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Rollback {
    /// Sliding window over which rates are computed.
    #[serde(deserialize_with = "scalars::duration")]
    pub window: Duration,
    /// Target reads needed in the window before any verdict, so noise never
    /// promotes or rolls back. Timeouts are the exception (`max_timeouts`).
    pub min_samples: u64,
    /// Target read error rate (0..=1) that raises a warning alert without
    /// rolling back; at most `max_error_rate`.
    pub warn_error_rate: f64,
    /// Target read error rate (0..=1) that triggers a rollback. Timeouts
    /// count as errors.
    pub max_error_rate: f64,
    /// Shadow mismatch rate (0..=1) that triggers a rollback.
    pub max_mismatch_rate: f64,
    /// Target p99 latency over source p99 latency that triggers a rollback.
    pub max_latency_ratio: f64,
    /// A target p99 below this never breaches, whatever the ratio: a
    /// sub-millisecond source makes the ratio of small numbers noise.
    #[serde(deserialize_with = "scalars::duration")]
    pub latency_floor: Duration,
    /// How long a target read may run before the proxy gives up on it and
    /// counts a timeout; `None` (written `off`) lets reads run as long as
    /// the server takes, and then only errors and latency can trip.
    #[serde(deserialize_with = "scalars::optional_duration")]
    pub read_timeout: Option<Duration>,
    /// Target read timeouts in the window that trigger a rollback even
    /// below `min_samples`: a hung target produces few samples, and must
    /// not hold the reads it has until enough of them pile up.
    pub max_timeouts: u64,
}

impl Default for Rollback {
    fn default() -> Rollback {
        Rollback {
            window: Duration::from_secs(30),
            min_samples: 200,
            warn_error_rate: 0.01,
            max_error_rate: 0.05,
            max_mismatch_rate: 0.001,
            max_latency_ratio: 3.0,
            latency_floor: Duration::from_millis(5),
            read_timeout: Some(Duration::from_secs(2)),
            max_timeouts: 3,
        }
    }
}

/// Alert destinations.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Alerts {
    /// URLs that receive a JSON POST per rollback or breach.
    pub webhooks: Vec<String>,
    /// How long a repeat of the same alert (same migration, same reason) is
    /// suppressed, so a breach that persists does not page on every
    /// evaluation; 0 sends every repeat.
    #[serde(deserialize_with = "scalars::duration")]
    pub repeat_window: Duration,
}

impl Default for Alerts {
    fn default() -> Alerts {
        Alerts {
            webhooks: Vec::new(),
            repeat_window: Duration::from_secs(300),
        }
    }
}

/// The controller's read ramp.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Ramp {
    /// Target read shares, strictly ascending, each in (0, 100].
    pub steps: Vec<Percent>,
    /// Time each step must hold, with enough samples and no breach, before the next.
    #[serde(deserialize_with = "scalars::duration")]
    pub bake: Duration,
    /// Whether each step waits for an operator's approval as well.
    pub approval: bool,
}

impl Default for Ramp {
    fn default() -> Ramp {
        let steps = [100, 500, 2_500, 5_000, 10_000]
            .into_iter()
            .filter_map(Percent::from_basis_points)
            .collect();
        Ramp {
            steps,
            bake: Duration::from_secs(300),
            approval: false,
        }
    }
}

/// Checks one migration; `path` is `migrations[i]`. `seen` holds the ids of
/// the migrations before it.
pub(crate) fn validate(
    m: &Migration,
    path: &str,
    backends: &BTreeMap<String, Backend>,
    seen: &mut BTreeSet<String>,
    errors: &mut Vec<ConfigError>,
) {
    let mut fail = |field: &str, message: String| {
        errors.push(ConfigError::invalid(format!("{path}.{field}"), message))
    };
    let id = &m.id;
    if id.is_empty()
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
    {
        fail(
            "id",
            format!("`{id}` is not a usable migration id; use letters, digits, `_`, `-` or `.`, e.g. `api_to_endpoints`"),
        );
    } else if !seen.insert(id.clone()) {
        fail(
            "id",
            format!("migration id `{id}` is used twice; give each migration its own id"),
        );
    }
    let known = || backends.keys().cloned().collect::<Vec<_>>().join(", ");
    if !backends.contains_key(&m.backend) {
        fail(
            "backend",
            format!("migration `{id}`: backend `{}` is not defined; use one of the names under `backends` ({})", m.backend, known()),
        );
    }
    if let Some(target) = &m.target.backend {
        if !backends.contains_key(target) {
            fail(
                "target.backend",
                format!("migration `{id}`: backend `{target}` is not defined; use one of the names under `backends` ({})", known()),
            );
        }
    }
    for (field, table) in [
        ("source.table", &m.source.table),
        ("target.table", &m.target.table),
    ] {
        if table.trim().is_empty() {
            fail(
                field,
                format!("migration `{id}`: the table name is empty; name the table"),
            );
        }
    }
    let pk = &m.source.primary_key;
    if pk.is_empty() {
        fail(
            "source.primary_key",
            format!("migration `{id}`: no primary key columns are listed; list them, e.g. `primary_key: [id]`"),
        );
    }
    let mut pk_seen = BTreeSet::new();
    for column in pk {
        if column.trim().is_empty() || !pk_seen.insert(column) {
            fail(
                "source.primary_key",
                format!("migration `{id}`: column `{column}` is empty or listed twice; list each key column once"),
            );
        }
    }
    if !m.is_cross_server()
        && m.source.table == m.target.table
        && m.source.database == m.target.database
        && m.source.schema == m.target.schema
    {
        fail(
            "target",
            format!("migration `{id}`: the target is the source table itself; name a different table, schema or database, or add `backend:` for another server"),
        );
    }
    validate_columns(m, &mut fail);
    validate_reads(m, &mut fail);
    validate_rollback(m, &mut fail);
    validate_ramp_and_alerts(m, &mut fail);
    let kind = backends.get(&m.backend).map(|b| b.kind);
    switch::validate(id, &m.switch, kind, &mut fail);
}

fn validate_columns(m: &Migration, fail: &mut impl FnMut(&str, String)) {
    let id = &m.id;
    let mut targets = BTreeMap::new();
    for (source, target) in &m.columns {
        if source.trim().is_empty() || target.trim().is_empty() {
            fail(
                "columns",
                format!("migration `{id}`: the mapping `{source}: {target}` has an empty column name; write `source_column: target_column`"),
            );
        } else if let Some(first) = targets.insert(target, source) {
            fail(
                &format!("columns.{source}"),
                format!("migration `{id}`: both `{first}` and `{source}` map to target column `{target}`; map each source column to its own target column"),
            );
        }
    }
    if m.time_zone
        .as_deref()
        .is_some_and(|tz| tz.trim().is_empty())
    {
        fail(
            "time_zone",
            format!("migration `{id}`: `time_zone` is empty; name a zone such as `UTC` or `+00:00`, or remove the field"),
        );
    }
}

impl Migration {
    /// Checks a read rule for this migration as the file's would be (the
    /// admin API uses it for a rule set at run time). Each error is the
    /// field and what is wrong with it.
    pub fn check_reads(&self, reads: &Reads) -> Vec<(String, String)> {
        let mut errors = Vec::new();
        check_reads(&self.id, reads, &mut |field: &str, message: String| {
            errors.push((field.to_string(), message))
        });
        errors
    }
}

fn validate_reads(m: &Migration, fail: &mut impl FnMut(&str, String)) {
    check_reads(&m.id, &m.reads, fail);
}

fn check_reads(id: &str, reads: &Reads, fail: &mut impl FnMut(&str, String)) {
    if reads.strategy == Strategy::Ab && reads.arms.len() < 2 {
        fail(
            "reads.arms",
            format!("migration `{id}`: strategy `ab` needs at least two arms; add e.g. `arms: [{{name: control, path: source, weight: 50}}, {{name: candidate, path: target, weight: 50}}]`"),
        );
    }
    if !reads.arms.is_empty() && reads.arms.iter().map(|a| u64::from(a.weight)).sum::<u64>() == 0 {
        fail(
            "reads.arms",
            format!("migration `{id}`: the arms' weights add up to 0; give at least one arm a weight above 0"),
        );
    }
    let mut names = BTreeSet::new();
    for (i, arm) in reads.arms.iter().enumerate() {
        if arm.name.trim().is_empty() || !names.insert(&arm.name) {
            fail(
                &format!("reads.arms[{i}].name"),
                format!("migration `{id}`: arm name `{}` is empty or used twice; give each arm its own name", arm.name),
            );
        }
    }
    if let Some(shadow) = &reads.shadow {
        for (field, cap, default) in [
            ("reads.shadow.max_rows", shadow.max_rows, "1000"),
            ("reads.shadow.max_bytes", shadow.max_bytes as u64, "`1MiB`"),
        ] {
            if cap == 0 {
                fail(
                    field,
                    format!("migration `{id}`: 0 would skip every comparison; use at least 1 (the default is {default}), or remove `shadow` to turn shadow reads off"),
                );
            }
        }
    }
    if let Some(tag) = &reads.canary.comment_tag {
        if tag.contains("*/") || tag.contains("/*") {
            fail(
                "reads.canary.comment_tag",
                format!("migration `{id}`: `{tag}` contains a comment delimiter; write only the text between `/*` and `*/`, e.g. `switchyard:target`"),
            );
        }
    }
}

fn validate_rollback(m: &Migration, fail: &mut impl FnMut(&str, String)) {
    let id = &m.id;
    let r = &m.rollback;
    if r.window.is_zero() {
        fail(
            "rollback.window",
            format!("migration `{id}`: the window is 0; use a duration such as `30s`"),
        );
    }
    if r.min_samples == 0 {
        fail(
            "rollback.min_samples",
            format!("migration `{id}`: 0 samples would judge the target on no data; use at least 1 (200 is the default)"),
        );
    }
    let is_rate = |rate: f64| (0.0..=1.0).contains(&rate);
    for (field, rate) in [
        ("rollback.warn_error_rate", r.warn_error_rate),
        ("rollback.max_error_rate", r.max_error_rate),
        ("rollback.max_mismatch_rate", r.max_mismatch_rate),
    ] {
        if !is_rate(rate) {
            fail(
                field,
                format!("migration `{id}`: {rate} is not a rate; write a fraction from 0 to 1, e.g. `0.01` for 1%"),
            );
        }
    }
    let (warn, max) = (r.warn_error_rate, r.max_error_rate);
    if is_rate(warn) && is_rate(max) && warn > max {
        fail(
            "rollback.warn_error_rate",
            format!("migration `{id}`: `warn_error_rate` {warn} is above `max_error_rate` {max}, so reads would roll back before any warning; set `warn_error_rate` to at most {max} (when omitted it is 0.01), or raise `max_error_rate`"),
        );
    }
    if r.max_latency_ratio <= 0.0 {
        fail(
            "rollback.max_latency_ratio",
            format!("migration `{id}`: {} is not a latency ratio; write how many times slower than the source the target may be, e.g. `3.0`", r.max_latency_ratio),
        );
    }
    if r.read_timeout.is_some_and(|t| t.is_zero()) {
        fail(
            "rollback.read_timeout",
            format!("migration `{id}`: a timeout of 0 would fail every target read; use a duration such as `2s`, or `off` to let reads take as long as the server needs"),
        );
    }
    if r.max_timeouts == 0 {
        fail(
            "rollback.max_timeouts",
            format!("migration `{id}`: 0 timeouts would roll back with no timeout at all; use at least 1 (3 is the default), or `read_timeout: off` for no timeouts"),
        );
    }
}

fn validate_ramp_and_alerts(m: &Migration, fail: &mut impl FnMut(&str, String)) {
    let id = &m.id;
    let steps = &m.ramp.steps;
    if steps.is_empty() {
        fail(
            "ramp.steps",
            format!("migration `{id}`: no ramp steps are listed; list ascending shares, e.g. `[1, 5, 25, 50, 100]`"),
        );
    }
    for (i, step) in steps.iter().enumerate() {
        let previous = i.checked_sub(1).map(|p| steps[p]);
        if *step == Percent::ZERO {
            fail(
                &format!("ramp.steps[{i}]"),
                format!("migration `{id}`: step {step} sends no reads to the target; every step must be above 0 and at most 100"),
            );
        } else if let Some(previous) = previous.filter(|p| p >= step) {
            fail(
                &format!("ramp.steps[{i}]"),
                format!("migration `{id}`: step {step} is not above the step before it ({previous}); list steps in strictly ascending order"),
            );
        }
    }
    for (i, hook) in m.alerts.webhooks.iter().enumerate() {
        if !(hook.starts_with("http://") || hook.starts_with("https://")) {
            fail(
                &format!("alerts.webhooks[{i}]"),
                format!("migration `{id}`: `{hook}` is not an HTTP URL; write it as `http://host:port/path` or `https://...`"),
            );
        }
    }
}
