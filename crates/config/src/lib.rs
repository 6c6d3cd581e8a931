//! zkgate's configuration: YAML text → raw serde schema → validated [`Config`].
//!
//! Every error in a document is reported at once, each with `file:line:col`,
//! the YAML path and how to fix it — like `haproxy -c`.

mod document;
mod duration;
mod error;
mod model;
mod raw;
mod span;
mod validate;

use std::path::Path;

pub use error::{ConfigError, ConfigErrors, Location};
pub use model::*;

use document::Document;
use span::SpanIndex;

/// Parses and validates a configuration document. `origin` names it in errors
/// (a file path, or `<zookeeper:/node>`).
pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigErrors> {
    let root: serde_yaml::Value = serde_yaml::from_str(text).map_err(|err| {
        let location = err.location().map(|l| Location {
            line: l.line(),
            column: l.column(),
        });
        ConfigErrors::single(
            origin,
            ConfigError {
                location,
                path: String::new(),
                message: format!("invalid YAML: {}", strip_position(&err.to_string())),
            },
        )
    })?;
    let mut errors = Vec::new();
    let doc = Document::read(root, &mut errors);
    let config = validate::validate(&doc, &mut errors);
    match config {
        Some(config) if errors.is_empty() => Ok(config),
        _ => {
            let spans = SpanIndex::build(text);
            for error in &mut errors {
                error.location = spans.locate(&error.path);
            }
            errors.sort_by_key(|e| e.location.map(|l| (l.line, l.column)));
            Err(ConfigErrors {
                origin: origin.to_owned(),
                errors,
            })
        }
    }
}

/// Reads and validates the configuration file at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|err| {
        ConfigErrors::single(
            &origin,
            ConfigError::new("", format!("cannot read the file: {err}")),
        )
    })?;
    parse(&text, &origin)
}

/// serde_yaml appends " at line X column Y"; we print the position up front instead.
fn strip_position(message: &str) -> &str {
    message.split(" at line ").next().unwrap_or(message)
}

#[cfg(test)]
mod tests;
