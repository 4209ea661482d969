//! What the configuration says when something is wrong: a [`Warning`] that
//! start-up survives (an unknown key, with the known key it most likely
//! meant), and a [`ConfigError`] that stops it, one line naming the key and
//! the value.
//!
//! Owns the wording of every configuration message. Must never decide what is
//! valid: the rules live with each key in `super`.

use std::fmt;
use std::path::PathBuf;

use super::{EnvFileSyntaxError, KEYS};
use crate::format::template::TemplateError;

/// Something odd that does not stop start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Warning {
    /// A key in the env file that streme does not read.
    UnknownKey {
        file: PathBuf,
        line: usize,
        key: String,
        suggestion: Option<&'static str>,
    },
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Warning::UnknownKey {
                file,
                line,
                key,
                suggestion,
            } => {
                write!(f, "{}:{line}: unknown key {key}, ignored", file.display())?;
                if let Some(known) = suggestion {
                    write!(f, " (did you mean {known}?)")?;
                }
                Ok(())
            }
        }
    }
}

/// Why start-up stops. Each prints as one line naming the key and the value.
#[derive(Debug)]
pub enum ConfigError {
    /// The value does not have the expected form.
    BadValue {
        key: &'static str,
        value: String,
        expected: &'static str,
    },
    /// A number outside what the key allows (`max` is `u64::MAX` when the key
    /// only has a minimum).
    OutOfRange {
        key: &'static str,
        value: String,
        min: u64,
        max: u64,
    },
    /// The env file cannot be read (missing, unreadable, not UTF-8).
    EnvFileUnreadable { path: PathBuf, reason: String },
    /// The env file is not in EnvironmentFile syntax.
    EnvFileSyntax {
        path: PathBuf,
        error: EnvFileSyntaxError,
    },
    /// A URL template that does not parse.
    BadTemplate {
        key: &'static str,
        error: TemplateError,
    },
    /// `CACHE_DIR` cannot be created or written.
    CacheDirUnusable { path: PathBuf, reason: String },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::BadValue {
                key,
                value,
                expected,
            } => {
                write!(f, "{key}: expected {expected}, got {value:?}")
            }
            ConfigError::OutOfRange {
                key,
                value,
                min,
                max: u64::MAX,
            } => {
                write!(f, "{key}: expected at least {min}, got {value:?}")
            }
            ConfigError::OutOfRange {
                key,
                value,
                min,
                max,
            } => {
                write!(f, "{key}: expected {min} to {max}, got {value:?}")
            }
            ConfigError::EnvFileUnreadable { path, reason } => {
                write!(f, "env file {}: {reason}", path.display())
            }
            ConfigError::EnvFileSyntax { path, error } => {
                write!(f, "{}:{}: {}", path.display(), error.line, error.problem)
            }
            ConfigError::BadTemplate { key, error } => write!(f, "{key}: {error}"),
            ConfigError::CacheDirUnusable { path, reason } => {
                write!(
                    f,
                    "CACHE_DIR: cannot use {:?}: {reason}",
                    path.display().to_string()
                )
            }
        }
    }
}

impl std::error::Error for ConfigError {}

/// The known key nearest to `unknown`, ignoring case, if at most two edits away.
pub(super) fn closest_key(unknown: &str) -> Option<&'static str> {
    let unknown = unknown.to_ascii_uppercase();
    KEYS.iter()
        .map(|(k, _)| (edit_distance(&unknown, k), *k))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, k)| k)
}

/// Levenshtein distance over bytes (keys are ASCII).
pub(super) fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, &ca) in a.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}
