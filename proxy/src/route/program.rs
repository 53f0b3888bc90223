//! A plan's program: the statements the session runs on one backend
//! connection for one client statement, as a sans-IO state machine.
//!
//! A [`Program`] is a short list of [`Step`]s: the client's statement (its
//! own text or a rewritten form) and the proxy's statements around it. A
//! step's SQL may splice in the rows an earlier step returned (the keys a
//! locking read captured), and a step may name what runs instead when it
//! fails (the client's statement alone plus a repair-queue insert, when the
//! mirror riding in it failed).
//!
//! [`Run`] carries a program out without IO, like `BackendLogin`: the
//! session asks it for the next [`Batch`] of statements, sends them, and
//! feeds back one [`StepResult`] per statement. The run frames the whole in
//! one transaction — the client's own, behind a savepoint, or one it opens —
//! so that the client's statement and the proxy's commit together or not at
//! all, and it tells the session at the end what the client is answered
//! with. It never touches a socket, and it never decides *what* to mirror:
//! that is the router's.

use std::collections::VecDeque;

use super::classify::Dialect;

/// The statements one client statement becomes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Program {
    /// In order; the first step's results may feed later steps' SQL.
    pub steps: Vec<Step>,
}

impl Program {
    /// The proxy's statements before and after the client's step, when the
    /// program is only that: plain text, nothing captured. Such a program
    /// can ride inside a pipelined batch without waiting for any answer
    /// (PostgreSQL's extended protocol, where the client's step is the
    /// bound form of the plan's SQL), failing the batch as one statement
    /// would: a replacement for a failed step does not run there.
    pub fn around_client(&self) -> Option<(Vec<String>, Vec<String>)> {
        let client = self.steps.iter().position(|s| s.role == Role::Client)?;
        let text = |step: &Step| match (&step.sql.0[..], step.role, step.capture) {
            ([Part::Text(sql)], Role::Proxy, false) => Some(sql.clone()),
            _ => None,
        };
        let before = self.steps[..client]
            .iter()
            .map(text)
            .collect::<Option<Vec<_>>>()?;
        let after = self.steps[client + 1..]
            .iter()
            .map(text)
            .collect::<Option<Vec<_>>>()?;
        Some((before, after))
    }
}

impl Program {
    /// Whether the program is one statement that needs no framing: atomic
    /// on its own outside a transaction (a failure undid it, and its
    /// replacement runs alone too), and inside one when its failure is the
    /// client's answer as it is (nothing to restart).
    fn stands_alone(&self, in_transaction: bool) -> bool {
        match &self.steps[..] {
            [step] => !in_transaction || step.on_error == OnError::Abort,
            _ => false,
        }
    }

    /// Whether no step after the client's can fail in a way that must undo
    /// the client's statement: each is replaced or ignored on failure.
    fn undoes_nothing_after_client(&self) -> bool {
        let client = self.steps.iter().position(|s| s.role == Role::Client);
        client.is_some_and(|c| {
            self.steps[c + 1..]
                .iter()
                .all(|s| matches!(s.on_error, OnError::Instead(_) | OnError::Ignore))
        })
    }

    /// The text that runs instead of the client's step when it fails, when
    /// that is one statement of the client's (a write whose mirror rides in
    /// its statement, answered by the write alone plus its repair-queue
    /// insert): what a pipelined batch can replay in its place.
    pub fn instead_of_client(&self) -> Option<&str> {
        let client = self.steps.iter().find(|s| s.role == Role::Client)?;
        match &client.on_error {
            OnError::Instead(steps) => match &steps[..] {
                [step] if step.role == Role::Client => match &step.sql.0[..] {
                    [Part::Text(sql)] => Some(sql),
                    _ => None,
                },
                _ => None,
            },
            OnError::Abort | OnError::Ignore => None,
        }
    }
}

/// One statement of a program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// Its SQL, perhaps with earlier steps' rows spliced in.
    pub sql: Sql,
    /// Whether its answer is the client's.
    pub role: Role,
    /// Its rows are kept for later steps' [`Part::Rows`].
    pub capture: bool,
    /// A warning fails it (MySQL, where `INSERT ... SELECT` turns a value
    /// the target cannot hold into a warning and a clipped value).
    pub strict: bool,
    /// What happens when it fails.
    pub on_error: OnError,
}

/// Whose answer a step's is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The client's statement: its answer is what the client receives.
    Client,
    /// The proxy's own: its answer is consumed.
    Proxy,
}

/// What a failed step leads to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OnError {
    /// The program stops, everything it did is undone, and the client gets
    /// the error (its own statement's as the server sent it, a proxy
    /// step's explained).
    Abort,
    /// Everything the run did is undone and the program starts over with
    /// these steps in its place (on MySQL, where a failed statement undoes
    /// only itself, they run in its place and the program goes on).
    Instead(Vec<Step>),
    /// The run goes on as if it had succeeded: a statement whose failure
    /// changes no data (resetting the proxy's own session variable).
    Ignore,
}

/// A step's SQL: text, with earlier steps' rows spliced in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sql(pub Vec<Part>);

/// A piece of a step's SQL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Part {
    /// The client's command exactly as it came (its text, or the execute of
    /// a statement it prepared): a step of only this sends those bytes.
    AsSent,
    /// Literal SQL.
    Text(String),
    /// The rows step `step` returned, as a list of row constructors
    /// `(v1, v2), (v3, v4)` of SQL literals; with no rows, one row of
    /// NULLs, which equals nothing, so `(k) IN (...)` stays valid and false.
    Rows {
        /// The index of a capturing step before this one.
        step: usize,
        /// How many columns each row has (the NULL row's width).
        width: usize,
    },
}

impl Sql {
    /// Plain text.
    pub fn text(sql: impl Into<String>) -> Sql {
        Sql(vec![Part::Text(sql.into())])
    }

    /// The steps whose rows this SQL splices in.
    fn needs(&self) -> impl Iterator<Item = usize> + '_ {
        self.0.iter().filter_map(|p| match p {
            Part::Rows { step, .. } => Some(*step),
            Part::Text(_) | Part::AsSent => None,
        })
    }

    /// Whether this is the client's command as it came.
    fn is_as_sent(&self) -> bool {
        self.0 == [Part::AsSent]
    }
}

impl Step {
    /// A statement of the proxy's own that must succeed.
    pub fn proxy(sql: impl Into<String>) -> Step {
        Step {
            sql: Sql::text(sql),
            role: Role::Proxy,
            capture: false,
            strict: false,
            on_error: OnError::Abort,
        }
    }

    /// The client's command as it came.
    pub fn as_sent() -> Step {
        Step::client(Sql(vec![Part::AsSent]))
    }

    /// The client's statement (its own text or a rewritten form).
    pub fn client(sql: Sql) -> Step {
        Step {
            sql,
            role: Role::Client,
            capture: false,
            strict: false,
            on_error: OnError::Abort,
        }
    }
}

/// One row a step returned: text values, `None` for NULL.
pub type Row = Vec<Option<Vec<u8>>>;

/// What one statement came back with.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StepResult {
    /// Its rows, when the step captures.
    pub rows: Vec<Row>,
    /// MySQL: the warning count of its OK or EOF.
    pub warnings: u16,
    /// Its error message, when it failed.
    pub error: Option<String>,
    /// The failure rolled the whole transaction back (a deadlock, a lock
    /// wait timeout where the server rolls back for it): nothing is left
    /// to undo or to replace, and the client gets that error.
    pub rolled_back: bool,
    /// The failure is the statement's own, not that of a mirror riding in
    /// it: a replacement for the mirror's failure does not run, and the
    /// client gets the error.
    pub own: bool,
}

/// The statements to send next, in one round trip.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Batch {
    /// The statements, in order. On PostgreSQL they may go as one simple
    /// query: a failure ends the batch there, which is what the run expects.
    pub statements: Vec<Statement>,
}

/// One statement of a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Statement {
    /// The SQL to send.
    pub sql: String,
    /// Whether the client receives its answer.
    pub role: Role,
    /// Whether the session must collect its rows for the run.
    pub capture: bool,
    /// The client's command as it came: send its bytes, not `sql`.
    pub as_sent: bool,
}

/// What the session does next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Send this batch and feed back one result per statement, stopping at
    /// the first failure.
    Send(Batch),
    /// The program is over: answer the client.
    Finish(Outcome),
}

/// How the client is answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Its statement's answer (the last one the client's step produced).
    Done,
    /// Its own statement failed: it gets that error, as the server sent it;
    /// the proxy's work was undone.
    ClientFailed,
    /// A step of the proxy's own failed, so the client's statement was
    /// undone too: it gets this message.
    Failed(String),
}

/// How the run's work is made one transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Frame {
    /// The client's transaction is open: a savepoint fences the run.
    Inside,
    /// No transaction: the run opens one and commits it.
    Opened,
    /// No framing: a program of one statement that is atomic on its own,
    /// or MySQL inside the client's transaction, where a failed statement
    /// undoes only itself and the run replaces a failed step in place, so
    /// there is never more than that one statement to undo.
    Bare,
}

/// The savepoint that fences a run inside the client's transaction.
pub const RUN_SAVEPOINT: &str = "switchyard_run";

/// Where a run stands.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Phase {
    /// Running the program's steps.
    Steps,
    /// Undoing after a failure; then finishing with this outcome.
    Undoing(Outcome),
    /// Undoing after a step with a replacement failed; then the program
    /// starts over with the replacement.
    Restarting,
    /// Over.
    Finished(Outcome),
}

/// What a statement in flight was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sent {
    /// Framing of the run's own.
    Frame,
    /// A program step (index into `steps`).
    Step(usize),
}

/// A program being carried out.
///
/// **A run's work commits with the client's statement or not at all.**
/// Outside a transaction it opens one; inside the client's, a savepoint
/// fences it. A step with a replacement that fails undoes the run and
/// starts the program over with the replacement in its place: a savepoint
/// cannot split the one statement a mirror rides in, and on PostgreSQL a
/// failed statement breaks the transaction until it is rolled back.
#[derive(Debug)]
pub struct Run {
    /// How literals are written and how a failure leaves a transaction.
    dialect: Dialect,
    /// How the run is one transaction.
    frame: Frame,
    /// The program as it stands (with replacements made so far).
    steps: Vec<Step>,
    /// Index of the next step to send.
    next: usize,
    /// The rows each capturing step returned, by step index.
    rows: Vec<Option<Vec<Row>>>,
    /// What the statements of the batch in flight were.
    in_flight: VecDeque<Sent>,
    /// The statement that opens the run was sent.
    opened: bool,
    /// How often the program started over (bounded by its replacements).
    restarts: usize,
    /// How often a transaction of the run's own was rolled back by the
    /// server (a deadlock) and the run began again.
    retries: usize,
    /// Where the run stands.
    phase: Phase,
    /// The undo batch is in flight: a failure of it ends the run instead
    /// of undoing again.
    undoing: bool,
}

/// How often a run in a transaction of its own begins again after the
/// server rolled that transaction back (a deadlock) before the client gets
/// the error.
const DEADLOCK_RETRIES: usize = 3;

impl Run {
    /// Starts a program; `in_transaction` says whether the client has a
    /// transaction open on the connection.
    pub fn new(program: Program, dialect: Dialect, in_transaction: bool) -> Run {
        let n = program.steps.len();
        Run {
            dialect,
            frame: match (in_transaction, dialect) {
                _ if program.stands_alone(in_transaction) => Frame::Bare,
                (true, Dialect::Mysql) if program.undoes_nothing_after_client() => Frame::Bare,
                (true, _) => Frame::Inside,
                (false, _) => Frame::Opened,
            },
            steps: program.steps,
            next: 0,
            rows: vec![None; n],
            in_flight: VecDeque::new(),
            opened: false,
            restarts: 0,
            retries: 0,
            phase: Phase::Steps,
            undoing: false,
        }
    }

    /// What to do next. Call at the start, and again once the results of
    /// the last batch were fed (all of them, or up to its first failure).
    pub fn advance(&mut self) -> Action {
        self.in_flight.clear();
        match self.phase.clone() {
            Phase::Finished(outcome) => Action::Finish(outcome),
            Phase::Undoing(outcome) => {
                self.undoing = true;
                self.phase = Phase::Finished(outcome.clone());
                let undo = self.undo(&outcome);
                if undo.is_empty() {
                    return Action::Finish(outcome);
                }
                Action::Send(self.frames(undo))
            }
            Phase::Restarting => {
                let mut batch = self.frames(self.undo(&Outcome::Done));
                self.phase = Phase::Steps;
                self.opened = false;
                self.next = 0;
                self.rows.iter_mut().for_each(|r| *r = None);
                self.fill(&mut batch);
                Action::Send(batch)
            }
            Phase::Steps => {
                let mut batch = Batch {
                    statements: Vec::new(),
                };
                self.fill(&mut batch);
                Action::Send(batch)
            }
        }
    }

    /// Adds to `batch` as many steps as can go without rows not in yet,
    /// ending after a capturing step; and the commit once all are sent.
    fn fill(&mut self, batch: &mut Batch) {
        if !self.opened {
            self.opened = true;
            if self.frame == Frame::Opened && self.dialect == Dialect::Mysql {
                // The transaction the run opens around an autocommit
                // write reads committed: under InnoDB's repeatable read,
                // the sync's searches for keys the target lacks lock the
                // gaps around them, and two clients inserting new keys at
                // the end of the table then deadlock on each other's gap,
                // which the client's write alone never would. One
                // statement of the client's gains nothing from a longer
                // snapshot.
                self.push_frame(
                    batch,
                    "SET TRANSACTION ISOLATION LEVEL READ COMMITTED".to_string(),
                );
            }
            let open = match self.frame {
                Frame::Inside => Some(format!("SAVEPOINT {RUN_SAVEPOINT}")),
                Frame::Opened => Some(begin(self.dialect).to_string()),
                Frame::Bare => None,
            };
            if let Some(open) = open {
                self.push_frame(batch, open);
            }
        }
        while let Some(step) = self.steps.get(self.next) {
            if step.sql.needs().any(|s| self.rows[s].is_none()) {
                break;
            }
            let statement = Statement {
                sql: self.render(&step.sql),
                role: step.role,
                capture: step.capture,
                as_sent: step.sql.is_as_sent(),
            };
            let capture = step.capture;
            batch.statements.push(statement);
            self.in_flight.push_back(Sent::Step(self.next));
            self.next += 1;
            if capture {
                return;
            }
        }
        if self.next == self.steps.len() {
            for sql in self.close() {
                self.push_frame(batch, sql);
            }
            self.phase = Phase::Finished(Outcome::Done);
        }
    }

    /// Feeds the result of the next statement of the batch in flight.
    /// After a failure the rest of the batch did not run: call
    /// [`Run::advance`].
    pub fn on_result(&mut self, result: StepResult) {
        let Some(sent) = self.in_flight.pop_front() else {
            debug_assert!(false, "a result with nothing in flight");
            return;
        };
        let failed = result
            .error
            .or_else(|| self.strict_warning(sent, result.warnings));
        let Some(error) = failed else {
            if let Sent::Step(index) = sent {
                if self.steps[index].capture {
                    self.rows[index] = Some(result.rows);
                }
            }
            return;
        };
        self.in_flight.clear();
        if self.undoing {
            // Undoing failed (its savepoint went with a rollback the
            // server did): the outcome stands, and there is no retry.
            return;
        }
        if result.rolled_back && self.frame == Frame::Opened && self.retries < DEADLOCK_RETRIES {
            // The transaction was the run's own, around an autocommit
            // write: the server undid all of it and the client saw
            // nothing, so the run begins again, as the client's statement
            // alone would have been retried by no one but could not have
            // deadlocked on the mirror's locks.
            self.retries += 1;
            self.phase = Phase::Restarting;
            return;
        }
        if result.rolled_back {
            self.phase = Phase::Finished(match sent {
                Sent::Step(index) if self.steps[index].role == Role::Client => {
                    Outcome::ClientFailed
                }
                _ => Outcome::Failed(error),
            });
            return;
        }
        match sent {
            Sent::Frame => self.phase = Phase::Undoing(Outcome::Failed(error)),
            Sent::Step(index) if result.own && self.steps[index].role == Role::Client => {
                self.phase = Phase::Undoing(Outcome::ClientFailed);
            }
            Sent::Step(index) => self.step_failed(index, error),
        }
    }

    /// Whether a result's warnings fail a strict step.
    fn strict_warning(&self, sent: Sent, warnings: u16) -> Option<String> {
        match sent {
            Sent::Step(index) if self.steps[index].strict && warnings > 0 => Some(format!(
                "the server raised {warnings} warning(s) on a statement that must run clean"
            )),
            _ => None,
        }
    }

    fn step_failed(&mut self, index: usize, error: String) {
        let step = &self.steps[index];
        self.phase = match &step.on_error {
            OnError::Instead(instead) => {
                let instead = instead.clone();
                let len = instead.len();
                // Captures after the replaced step keep their indexes only
                // if the replacement is one step long; programs put
                // replaceable steps after every capture they need.
                self.steps.splice(index..=index, instead);
                self.restarts += 1;
                match self.dialect {
                    // A failed MySQL statement undid only itself: the
                    // replacement runs in its place and the run goes on.
                    Dialect::Mysql => {
                        let mut rows = std::mem::take(&mut self.rows);
                        rows.splice(index..=index, vec![None; len]);
                        self.rows = rows;
                        self.next = index;
                        Phase::Steps
                    }
                    // A failed PostgreSQL statement broke the transaction
                    // (or the subtransaction): undo and start over.
                    Dialect::Postgres => {
                        self.rows = vec![None; self.steps.len()];
                        Phase::Restarting
                    }
                }
            }
            OnError::Ignore => {
                // The rest of the batch did not run: it goes next.
                self.next = index + 1;
                Phase::Steps
            }
            OnError::Abort if step.role == Role::Client => Phase::Undoing(Outcome::ClientFailed),
            OnError::Abort => Phase::Undoing(Outcome::Failed(error)),
        };
    }

    /// How many failed steps were replaced.
    pub fn restarts(&self) -> usize {
        self.restarts
    }

    /// The statements that end a run that succeeded.
    fn close(&self) -> Vec<String> {
        match self.frame {
            Frame::Inside => vec![format!("RELEASE SAVEPOINT {RUN_SAVEPOINT}")],
            Frame::Opened => vec!["COMMIT".into()],
            Frame::Bare => Vec::new(),
        }
    }

    /// The statements that undo a run that failed. The client's own failure
    /// inside its transaction leaves the transaction as that failure alone
    /// would: broken on PostgreSQL (so nothing is rolled back for it, and
    /// the savepoint goes with the client's next rollback), intact on
    /// MySQL, where a failed statement undoes only itself (a deadlock,
    /// which takes the whole transaction, comes with `rolled_back`).
    fn undo(&self, outcome: &Outcome) -> Vec<String> {
        match (self.frame, self.dialect, outcome) {
            (Frame::Inside, Dialect::Postgres, Outcome::ClientFailed) => Vec::new(),
            (Frame::Inside, _, _) => vec![
                format!("ROLLBACK TO SAVEPOINT {RUN_SAVEPOINT}"),
                format!("RELEASE SAVEPOINT {RUN_SAVEPOINT}"),
            ],
            (Frame::Opened, _, _) => vec!["ROLLBACK".into()],
            (Frame::Bare, _, _) => Vec::new(),
        }
    }

    fn frames(&mut self, sqls: Vec<String>) -> Batch {
        let mut batch = Batch {
            statements: Vec::new(),
        };
        for sql in sqls {
            self.push_frame(&mut batch, sql);
        }
        batch
    }

    fn push_frame(&mut self, batch: &mut Batch, sql: String) {
        batch.statements.push(Statement {
            sql,
            role: Role::Proxy,
            capture: false,
            as_sent: false,
        });
        self.in_flight.push_back(Sent::Frame);
    }

    /// A step's SQL with the rows it needs spliced in.
    fn render(&self, sql: &Sql) -> String {
        let mut out = String::new();
        for part in &sql.0 {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::AsSent => {}
                Part::Rows { step, width } => {
                    let rows = self.rows[*step].as_deref().unwrap_or_default();
                    render_rows(&mut out, self.dialect, rows, *width);
                }
            }
        }
        out
    }
}

fn begin(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Postgres => "BEGIN",
        Dialect::Mysql => "START TRANSACTION",
    }
}

/// Writes rows as `(v, v), (v, v)`; no rows as one row of NULLs.
fn render_rows(out: &mut String, dialect: Dialect, rows: &[Row], width: usize) {
    if rows.is_empty() {
        let nulls = vec!["NULL"; width.max(1)].join(", ");
        out.push('(');
        out.push_str(&nulls);
        out.push(')');
        return;
    }
    for (i, row) in rows.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push('(');
        for (j, value) in row.iter().enumerate() {
            if j > 0 {
                out.push_str(", ");
            }
            literal(out, dialect, value.as_deref());
        }
        out.push(')');
    }
}

/// Writes one value as an SQL literal that means the same whatever the
/// session's settings: an integer bare, anything else quoted so that no
/// `standard_conforming_strings` or `NO_BACKSLASH_ESCAPES` can change it.
pub fn literal(out: &mut String, dialect: Dialect, value: Option<&[u8]>) {
    let Some(value) = value else {
        out.push_str("NULL");
        return;
    };
    let digits = value.strip_prefix(b"-").unwrap_or(value);
    if !digits.is_empty() && digits.len() <= 20 && digits.iter().all(u8::is_ascii_digit) {
        out.push_str(std::str::from_utf8(value).unwrap_or("NULL"));
        return;
    }
    match dialect {
        // An escape string reads backslashes the same under any
        // `standard_conforming_strings`.
        Dialect::Postgres => out.push_str(&switchyard_core::sql::pg::literal(
            &String::from_utf8_lossy(value),
        )),
        Dialect::Mysql => {
            // A hex string with a character set introducer is a string
            // literal in any sql_mode, coercible to the column's collation.
            out.push_str("_utf8mb4 X'");
            for b in value {
                out.push_str(&format!("{b:02X}"));
            }
            out.push('\'');
        }
    }
}

#[cfg(test)]
mod tests;
