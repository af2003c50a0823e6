//! Library errors. Anything echoed from an input file goes through [`crate::scrub`]
//! first: reports and logs carry API keys in command lines and error bodies.

use std::io;
use std::path::PathBuf;

/// Why an audit could not run. Malformed *lines* are not errors: readers skip them and
/// record a [`crate::model::Problem`]; these are for whole inputs that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The I/O error is in the message rather than `source()` so `{:#}` prints it once.
    #[error("{}: {error}", path.display())]
    Io { path: PathBuf, error: io::Error },
    #[error(transparent)]
    Journal(#[from] ratewire_journal::JournalError),
    /// No reader recognised the input; `hint` says what was looked for.
    #[error("{}: cannot tell the format ({hint}); pass --format", path.display())]
    UnknownFormat { path: PathBuf, hint: String },
    /// The input is of the expected format but unusable as a whole.
    #[error("{}{}: {message}", path.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
    Invalid {
        path: PathBuf,
        line: Option<u64>,
        message: String,
    },
    /// Neither a report nor a gateway input was given.
    #[error("nothing to audit: give at least one --report or --gateway")]
    NothingToAudit,
    /// The generic JSON Lines reader was not told which fields hold time and status.
    #[error("{}: a generic JSON Lines report needs --field-time and --field-status", path.display())]
    MissingFields { path: PathBuf },
}

impl AuditError {
    pub fn io(path: impl Into<PathBuf>, error: io::Error) -> AuditError {
        AuditError::Io {
            path: path.into(),
            error,
        }
    }

    /// A whole-file problem; `message` is scrubbed of secrets here.
    pub fn invalid(
        path: impl Into<PathBuf>,
        line: Option<u64>,
        message: impl AsRef<str>,
    ) -> AuditError {
        AuditError::Invalid {
            path: path.into(),
            line,
            message: crate::scrub::scrub(message.as_ref()).into_owned(),
        }
    }
}
