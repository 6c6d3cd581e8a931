//! Configuration errors: every problem found, each with its place in the file.

use std::fmt;

/// A 1-based line and column in the configuration text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
}

/// One problem in a configuration document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Where in the file, when known.
    pub location: Option<Location>,
    /// The YAML path of the offending field, like `frontends.web.routes[0].backend`.
    pub path: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl ConfigError {
    pub(crate) fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            location: None,
            path: path.into(),
            message: message.into(),
        }
    }
}

/// Every error found in one configuration document, and where it came from.
#[derive(Debug, Clone, thiserror::Error)]
pub struct ConfigErrors {
    /// The file name (or `<zookeeper:/node>`, `<string>`) used as the prefix of each line.
    pub origin: String,
    /// The errors, in document order.
    pub errors: Vec<ConfigError>,
}

impl ConfigErrors {
    pub(crate) fn single(origin: &str, error: ConfigError) -> Self {
        ConfigErrors {
            origin: origin.to_owned(),
            errors: vec![error],
        }
    }
}

impl fmt::Display for ConfigErrors {
    /// One line per error: `file:line:col: path: message`, like a compiler.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{}", self.origin)?;
            if let Some(at) = error.location {
                write!(f, ":{}:{}", at.line, at.column)?;
            }
            if error.path.is_empty() {
                write!(f, ": {}", error.message)?;
            } else {
                write!(f, ": {}: {}", error.path, error.message)?;
            }
        }
        Ok(())
    }
}
