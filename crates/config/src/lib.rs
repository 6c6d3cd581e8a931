//! zkgate's configuration: YAML text → raw serde schema → validated [`Config`].
//!
//! Every error in a document is reported at once, each with `file:line:col`,
//! the YAML path and how to fix it — like `haproxy -c`.

mod document;
mod duration;
mod error;
pub mod files;
mod model;
mod raw;
mod shape;
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
    check_shape(text, origin)?;
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

/// Sections a `zookeeper.config_node` may hold.
pub const NODE_SECTIONS: [&str; 3] = ["defaults", "frontends", "backends"];

/// Validates a configuration whose `defaults`/`frontends`/`backends` come
/// from `node_text` (a ZooKeeper config node) and everything else from the
/// file `file_text`. Errors are located in the node's text.
pub fn parse_with_node(
    file_text: &str,
    node_text: &str,
    node_origin: &str,
) -> Result<Config, ConfigErrors> {
    let single = |message: String| ConfigErrors::single(node_origin, ConfigError::new("", message));
    check_shape(node_text, node_origin)?;
    let node: serde_yaml::Value = serde_yaml::from_str(node_text).map_err(|err| {
        let location = err.location().map(|l| Location {
            line: l.line(),
            column: l.column(),
        });
        ConfigErrors::single(
            node_origin,
            ConfigError {
                location,
                path: String::new(),
                message: format!("invalid YAML: {}", strip_position(&err.to_string())),
            },
        )
    })?;
    match &node {
        serde_yaml::Value::Null => {}
        serde_yaml::Value::Mapping(map) => {
            for key in map.keys() {
                let name = key.as_str().unwrap_or("?");
                if !NODE_SECTIONS.contains(&name) {
                    return Err(single(format!(
                        "`{name}` cannot come from ZooKeeper: a config node holds {} only",
                        NODE_SECTIONS.join(", ")
                    )));
                }
            }
        }
        _ => {
            return Err(single(
                "a config node must be a YAML mapping of defaults, frontends, backends".into(),
            ))
        }
    }
    let mut file: serde_yaml::Value =
        serde_yaml::from_str(file_text).map_err(|err| single(format!("the local file: {err}")))?;
    if let serde_yaml::Value::Mapping(map) = &mut file {
        for section in NODE_SECTIONS {
            map.remove(section);
        }
    }
    // The node's text goes last, so its lines keep their numbers after the
    // file's sections; errors are moved back to the node's own lines.
    let prefix = match &file {
        serde_yaml::Value::Mapping(map) if !map.is_empty() => {
            serde_yaml::to_string(&file).unwrap_or_default()
        }
        _ => String::new(),
    };
    let offset = prefix.lines().count();
    let combined = format!("{prefix}{node_text}");
    parse(&combined, node_origin).map_err(|mut errors| {
        for error in &mut errors.errors {
            if let Some(location) = &mut error.location {
                location.line = location.line.saturating_sub(offset).max(1);
            }
        }
        errors
    })
}

/// Reads and validates the configuration file at `path`: the configuration
/// and the text it came from (read once, so the two always agree).
pub fn load(path: &Path) -> Result<(Config, String), ConfigErrors> {
    let origin = path.display().to_string();
    let text = files::read_config(path)
        .map_err(|err| ConfigErrors::single(&origin, ConfigError::new("", err)))?;
    Ok((parse(&text, &origin)?, text))
}

/// Refuses a text too large or too deeply nested to parse (see `shape`).
fn check_shape(text: &str, origin: &str) -> Result<(), ConfigErrors> {
    shape::check(text).map_err(|(location, why)| {
        ConfigErrors::single(
            origin,
            ConfigError {
                location,
                path: String::new(),
                message: format!("invalid YAML: {why}"),
            },
        )
    })
}

/// serde_yaml appends " at line X column Y"; we print the position up front instead.
fn strip_position(message: &str) -> &str {
    message.split(" at line ").next().unwrap_or(message)
}

#[cfg(test)]
mod fuzz;
#[cfg(test)]
mod tests;
