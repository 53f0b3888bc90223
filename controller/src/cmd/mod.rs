//! The operator's commands, one module each. A command prints its report
//! (a table for people, JSON with `--json`) and returns the process's exit
//! code: [`OK`], [`NOT_OK`] (a gate is closed, a diff found differences)
//! or [`ERROR`].

use std::process::ExitCode;

pub mod advance;
pub mod approve;
pub mod backfill;
pub mod diff;
pub mod drop_archive;
pub mod init;
pub mod operate;
pub mod pause;
pub mod plan;
pub mod plan_live;
pub mod ramp;
pub mod repair;
pub mod report;
pub mod resume;
pub mod rollback;
pub mod run;
pub mod status;

/// Success.
pub const OK: u8 = 0;
/// The command ran and the answer is no.
pub const NOT_OK: u8 = 1;
/// The command could not run.
pub const ERROR: u8 = 2;

/// Reports an error the way every command does (JSON on stdout with
/// `--json`, a line on stderr otherwise) and returns [`ERROR`].
pub fn fail(json: bool, error: &dyn std::fmt::Display) -> ExitCode {
    if json {
        println!(
            "{}",
            serde_json::json!({ "ok": false, "error": error.to_string() })
        );
    } else {
        eprintln!("switchyard: {error}");
    }
    ExitCode::from(ERROR)
}

/// Writes a report to stdout; a closed pipe (`| head`) is not an error
/// worth a panic, as `println!` would make it.
pub fn print(text: &str) {
    written(text);
}

/// Writes to stdout like [`print`]; false when stdout is gone (the
/// reader closed the pipe), so a command that keeps printing can stop.
pub fn written(text: &str) -> bool {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .is_ok()
}
