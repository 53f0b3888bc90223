//! The one error type of configuration loading.
//!
//! Every message is read by an operator staring at a failed start or a
//! rejected reload, so each one names the setting by its path in the file
//! (`backends.pg.port`, `migrations[0].reads.percent`) and says how to fix it.

use std::path::PathBuf;

/// Why a configuration could not be loaded. `Display` is a complete sentence.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file itself could not be read.
    #[error("cannot read the config file `{}`: {source}; check that the path is right and the file is readable", path.display())]
    Read {
        /// The file that was asked for.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },

    /// A problem inside a named file; wraps the problem so the file is named too.
    #[error("{}: {error}", path.display())]
    File {
        /// The file that was loaded.
        path: PathBuf,
        /// What is wrong in it.
        error: Box<ConfigError>,
    },

    /// The text is not YAML at all.
    #[error("the configuration is not valid YAML: {message}; fix the syntax at that position")]
    Syntax {
        /// serde_yaml's description, with line and column.
        message: String,
    },

    /// `${VAR}` names a variable that is not set and has no default.
    #[error("{} uses the environment variable `{var}`, which is not set; set it, or give a default with `${{{var}:-default}}`", field_name(field))]
    MissingVariable {
        /// Path of the setting whose value uses the variable.
        field: String,
        /// The variable's name.
        var: String,
    },

    /// A setting that no section knows, usually a typo.
    #[error("{}", unknown_field(field, suggestion, known))]
    UnknownField {
        /// Path of the unknown setting, ending in its name.
        field: String,
        /// The closest known name, when one is close.
        suggestion: Option<String>,
        /// Every name allowed at that place.
        known: Vec<String>,
    },

    /// A setting with a wrong type, a bad value, or one that contradicts another.
    #[error("{}: {message}", field_name(field))]
    Invalid {
        /// Path of the setting at fault.
        field: String,
        /// What is wrong and how to fix it.
        message: String,
    },

    /// More than one validation problem; all are reported at once so an
    /// operator fixes the file in one pass.
    #[error("the configuration has {} problems:\n{}", .0.len(), list(.0))]
    Several(Vec<ConfigError>),
}

impl ConfigError {
    /// Shorthand for [`ConfigError::Invalid`].
    pub(crate) fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }

    /// Every single problem inside this error (itself, unless it is `Several`
    /// or `File`), so callers and tests can look at them one by one.
    pub fn problems(&self) -> Vec<&ConfigError> {
        match self {
            ConfigError::Several(all) => all.iter().flat_map(|e| e.problems()).collect(),
            ConfigError::File { error, .. } => error.problems(),
            other => vec![other],
        }
    }
}

/// Names a setting for a message: the top level of the file has no path.
fn field_name(field: &str) -> String {
    if field.is_empty() {
        "the top level of the configuration".to_string()
    } else {
        format!("`{field}`")
    }
}

fn unknown_field(field: &str, suggestion: &Option<String>, known: &[String]) -> String {
    let fix = match suggestion {
        Some(s) => format!("did you mean `{s}`?"),
        None => "remove it or correct its name".to_string(),
    };
    let known = known
        .iter()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "{} is not a known setting; {fix} (known here: {known})",
        field_name(field)
    )
}

fn list(errors: &[ConfigError]) -> String {
    errors
        .iter()
        .map(|e| format!("- {e}"))
        .collect::<Vec<_>>()
        .join("\n")
}
