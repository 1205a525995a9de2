//! Configuration problems with their place in the file and a hint to fix them.

use std::fmt;

use serde::Serialize;

use super::yaml::Pos;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// One problem found while loading a configuration.
#[derive(Debug, Clone, Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// `file:line:column`.
    pub location: String,
    #[serde(skip)]
    pub pos: Option<Pos>,
}

impl Diagnostic {
    pub fn new(severity: Severity, origin: &str, pos: Option<Pos>, message: String, hint: Option<String>) -> Self {
        let location = match pos {
            Some(p) => format!("{origin}:{}:{}", p.line, p.col),
            None => origin.to_string(),
        };
        Diagnostic {
            severity,
            message,
            hint,
            location,
            pos,
        }
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{level}: {}\n  --> {}", self.message, self.location)?;
        if let Some(h) = &self.hint {
            write!(f, "\n   = hint: {h}")?;
        }
        Ok(())
    }
}

/// Every problem of a configuration that could not be accepted.
#[derive(Debug, Clone)]
pub struct ConfigErrors(pub Vec<Diagnostic>);

impl ConfigErrors {
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.0.iter().filter(|d| d.is_error())
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.errors().count();
        for d in &self.0 {
            writeln!(f, "{d}")?;
        }
        write!(f, "configuration rejected: {n} error(s)")
    }
}

impl std::error::Error for ConfigErrors {}
