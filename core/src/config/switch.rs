//! A migration's write switch: how long writes may be held while every
//! proxy moves them to the target, and how old a transaction on the
//! source may be before readiness keeps the switch closed.
//!
//! The controller aborts a switch past `budget`, and each proxy releases
//! a held write at the same budget (it is refused then); both read it
//! from here, so the two never disagree.

use std::time::Duration;

use serde::Deserialize;

use super::backends::BackendKind;
use super::scalars;

/// The longest budget accepted: writes held longer than this look like an
/// outage to clients, whatever the switch gains.
pub const MAX_BUDGET: Duration = Duration::from_secs(60);

/// The shortest budget accepted on MySQL / MariaDB: with no NOTIFY there,
/// a proxy learns of the hold at its next poll of the store (once a
/// second), so a shorter budget would abort almost every switch.
pub const MYSQL_MIN_BUDGET: Duration = Duration::from_secs(1);

/// `migrations[].switch`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Switch {
    /// How long writes of the migration's tables are held while the
    /// proxies acknowledge the switch; past it the controller aborts the
    /// switch (writes stay on the source) and each proxy refuses the
    /// writes it held rather than keep a client waiting.
    #[serde(deserialize_with = "scalars::duration")]
    pub budget: Duration,
    /// A transaction holding the source open for longer keeps readiness
    /// closed: it could still be open when writes move, and would then
    /// hold the switch past its budget.
    #[serde(deserialize_with = "scalars::duration")]
    pub max_transaction_age: Duration,
}

impl Default for Switch {
    fn default() -> Switch {
        Switch {
            budget: Duration::from_secs(2),
            max_transaction_age: Duration::from_secs(30),
        }
    }
}

/// Checks `switch` of migration `id`, whose source is on a `kind` server
/// (`None`: an undefined backend, reported elsewhere); `fail` takes the
/// field under the migration and the message.
pub(crate) fn validate(
    id: &str,
    switch: &Switch,
    kind: Option<BackendKind>,
    fail: &mut impl FnMut(&str, String),
) {
    if switch.budget.is_zero() {
        fail(
            "switch.budget",
            format!("migration `{id}`: a budget of 0 would abort every write switch; use a duration such as `2s` (the default)"),
        );
    } else if kind == Some(BackendKind::Mysql) && switch.budget < MYSQL_MIN_BUDGET {
        fail(
            "switch.budget",
            format!(
                "migration `{id}`: {} is shorter than the proxies' poll of the store on MySQL (once a second), so almost every write switch would abort; use at least `1s` (the default is `2s`)",
                humanize(switch.budget)
            ),
        );
    } else if switch.budget > MAX_BUDGET {
        fail(
            "switch.budget",
            format!(
                "migration `{id}`: {} would hold clients' writes for longer than {} s; use at most `{}s` (the default is `2s`)",
                humanize(switch.budget),
                MAX_BUDGET.as_secs(),
                MAX_BUDGET.as_secs()
            ),
        );
    }
    if switch.max_transaction_age.is_zero() {
        fail(
            "switch.max_transaction_age",
            format!("migration `{id}`: 0 would count every open transaction as old and keep the write switch closed; use a duration such as `30s` (the default)"),
        );
    }
}

/// `90s`, `1500ms`: how a duration was most likely written.
fn humanize(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("`{}s`", d.as_secs())
    } else {
        format!("`{}ms`", d.as_millis())
    }
}
