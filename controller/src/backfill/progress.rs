//! What a running backfill reports after every chunk and every wait: rows
//! copied, percent of the estimated rows, rate and ETA. Pure.

use std::fmt;
use std::time::Duration;

use switchyard_core::backfill::Checkpoint;

/// Where a backfill stands, as the CLI prints it.
#[derive(Clone, Debug, PartialEq)]
pub struct Progress {
    /// The migration, so a caller following several tells them apart.
    pub migration: String,
    /// What the runner is doing now.
    pub state: State,
    /// Source rows the committed chunks covered, over every run.
    pub rows_copied: u64,
    /// The server's estimate of the source's rows when the run began: the
    /// denominator of the percentage and the ETA. An estimate can be off,
    /// so the percentage stops at 99.9 until the last chunk.
    pub estimate: u64,
    /// The size the next chunk will have.
    pub chunk_size: u64,
    /// The last key copied, so an operator sees where it stands.
    pub last_key: Option<Vec<String>>,
    /// Rows per second over this run (throttle waits included), which
    /// the ETA extrapolates.
    pub rows_per_sec: f64,
    /// Time left at this run's rate; `None` before the first chunk.
    pub eta: Option<Duration>,
}

/// What the runner is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Copying chunks.
    Copying,
    /// Waiting for the server's load (`load`) to fall to `limit`.
    Throttled { load: u64, limit: u64 },
    /// Stopped on request after a committed chunk.
    Paused,
    /// Every row is copied.
    Done,
}

impl Progress {
    /// The report before the first chunk of a run.
    pub(crate) fn start(migration: &str, estimate: u64, checkpoint: &Checkpoint) -> Progress {
        Progress {
            migration: migration.to_string(),
            state: State::Copying,
            rows_copied: checkpoint.rows_copied,
            estimate,
            chunk_size: checkpoint.chunk_size,
            last_key: checkpoint.last_key.clone(),
            rows_per_sec: 0.0,
            eta: None,
        }
    }

    /// Takes in a committed chunk: `rows_this_run` rows in `elapsed`.
    pub(crate) fn update(
        &mut self,
        checkpoint: &Checkpoint,
        elapsed: Duration,
        rows_this_run: u64,
    ) {
        self.rows_copied = checkpoint.rows_copied;
        self.chunk_size = checkpoint.chunk_size;
        self.last_key = checkpoint.last_key.clone();
        let secs = elapsed.as_secs_f64();
        self.rows_per_sec = if secs > 0.0 {
            rows_this_run as f64 / secs
        } else {
            0.0
        };
        let left = self.estimate.saturating_sub(self.rows_copied);
        self.eta = (self.rows_per_sec > 0.0)
            .then(|| Duration::from_secs_f64(left as f64 / self.rows_per_sec));
    }

    /// Percent of the estimated rows copied: 100 only when done.
    pub fn percent(&self) -> f64 {
        if self.state == State::Done {
            return 100.0;
        }
        if self.estimate == 0 {
            return 0.0;
        }
        (self.rows_copied as f64 * 100.0 / self.estimate as f64).min(99.9)
    }

    /// The report as one JSON object, for `--json`.
    pub fn to_json(&self) -> serde_json::Value {
        let state = match self.state {
            State::Copying => "copying",
            State::Throttled { .. } => "throttled",
            State::Paused => "paused",
            State::Done => "done",
        };
        let mut json = serde_json::json!({
            "migration": self.migration,
            "state": state,
            "rows_copied": self.rows_copied,
            "estimated_rows": self.estimate,
            "percent": (self.percent() * 10.0).round() / 10.0,
            "chunk_size": self.chunk_size,
            "last_key": self.last_key,
            "rows_per_sec": self.rows_per_sec.round(),
            "eta_secs": self.eta.map(|d| d.as_secs()),
        });
        if let State::Throttled { load, limit } = self.state {
            json["load"] = load.into();
            json["load_limit"] = limit.into();
        }
        json
    }
}

impl fmt::Display for Progress {
    /// `api_v2: 41.3% (413000 of ~1000000 rows), 52000 rows/s, chunk 26000, ETA 11s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {:.1}% ({} of ~{} rows)",
            self.migration,
            self.percent(),
            self.rows_copied,
            self.estimate
        )?;
        match self.state {
            State::Copying => {
                write!(
                    f,
                    ", {:.0} rows/s, chunk {}",
                    self.rows_per_sec, self.chunk_size
                )?;
                if let Some(eta) = self.eta {
                    write!(f, ", ETA {}s", eta.as_secs())?;
                }
                Ok(())
            }
            State::Throttled { load, limit } => {
                write!(f, ", paused: server load {load} is above {limit}")
            }
            State::Paused => write!(f, ", paused; rerun to resume from the checkpoint"),
            State::Done => write!(f, ", done"),
        }
    }
}
