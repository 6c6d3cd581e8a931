//! Reads YAML into the raw schema one section at a time, so that a mistake in
//! one frontend does not hide the mistakes in the others.

use serde::de::DeserializeOwned;
use serde_yaml::Value;

use crate::error::ConfigError;
use crate::raw::{RawAccessLog, RawAdmin, RawBackend, RawDefaults, RawFrontend, RawZookeeper};

/// The top-level sections, in the order users usually write them.
const SECTIONS: [&str; 8] = [
    "admin",
    "access_log",
    "state_dir",
    "zone",
    "zookeeper",
    "defaults",
    "frontends",
    "backends",
];

/// A document read into raw sections; parts that failed to read are missing
/// and their errors have been recorded.
#[derive(Debug, Default)]
pub struct Document {
    pub admin: RawAdmin,
    pub access_log: Option<RawAccessLog>,
    pub state_dir: Option<String>,
    pub zone: Option<String>,
    pub zookeeper: Option<RawZookeeper>,
    pub defaults: RawDefaults,
    pub frontends: Vec<(String, RawFrontend)>,
    pub backends: Vec<(String, RawBackend)>,
    /// Names of frontends/backends that exist but failed to read (so that
    /// references to them are not reported as missing too).
    pub unreadable: Vec<String>,
}

impl Document {
    /// Splits `root` into sections and reads each, pushing every error found.
    pub fn read(root: Value, errors: &mut Vec<ConfigError>) -> Document {
        let mut doc = Document::default();
        let root = match root {
            Value::Null => return doc,
            Value::Mapping(map) => map,
            _ => {
                errors.push(ConfigError::new(
                    "",
                    "the configuration must be a YAML mapping with sections admin, zookeeper, defaults, frontends, backends",
                ));
                return doc;
            }
        };
        for (key, value) in root {
            let Some(name) = key.as_str() else {
                errors.push(ConfigError::new("", "section names must be strings"));
                continue;
            };
            match name {
                "admin" => {
                    if let Some(admin) = section(name, value, errors) {
                        doc.admin = admin;
                    }
                }
                "zookeeper" => doc.zookeeper = section(name, value, errors),
                "access_log" => doc.access_log = section(name, value, errors),
                "state_dir" => doc.state_dir = section(name, value, errors),
                "zone" => doc.zone = section(name, value, errors),
                "defaults" => {
                    if let Some(defaults) = section(name, value, errors) {
                        doc.defaults = defaults;
                    }
                }
                "frontends" => doc.frontends = named(name, value, &mut doc.unreadable, errors),
                "backends" => doc.backends = named(name, value, &mut doc.unreadable, errors),
                other => errors.push(ConfigError::new(
                    other,
                    format!(
                        "unknown section `{other}`, expected one of: {}",
                        SECTIONS.join(", ")
                    ),
                )),
            }
        }
        doc
    }
}

/// Reads a `name: {…}` mapping entry by entry.
fn named<T: DeserializeOwned>(
    section_name: &str,
    value: Value,
    unreadable: &mut Vec<String>,
    errors: &mut Vec<ConfigError>,
) -> Vec<(String, T)> {
    let map = match value {
        Value::Null => return Vec::new(),
        Value::Mapping(map) => map,
        _ => {
            errors.push(ConfigError::new(
                section_name,
                format!("`{section_name}` must be a mapping of names to definitions"),
            ));
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for (key, value) in map {
        let name = match key {
            Value::String(name) => name,
            other => {
                let shown = serde_yaml::to_string(&other).unwrap_or_default();
                errors.push(ConfigError::new(
                    section_name,
                    format!("`{}` is not a valid name: names are strings", shown.trim()),
                ));
                continue;
            }
        };
        let path = format!("{section_name}.{name}");
        if !valid_name(&name) {
            errors.push(ConfigError::new(
                &path,
                format!("`{name}` is not a valid name: use letters, digits, `_`, `-` and `.`"),
            ));
        }
        match section(&path, value, errors) {
            Some(item) => out.push((name, item)),
            None => unreadable.push(name),
        }
    }
    out
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// Deserializes one section, recording the failing field's full path.
fn section<T: DeserializeOwned>(
    prefix: &str,
    value: Value,
    errors: &mut Vec<ConfigError>,
) -> Option<T> {
    match serde_path_to_error::deserialize::<_, T>(value) {
        Ok(item) => Some(item),
        Err(err) => {
            let inner = err.path().to_string();
            let path = if inner == "." || inner.is_empty() {
                prefix.to_owned()
            } else if inner.starts_with('[') {
                format!("{prefix}{inner}")
            } else {
                format!("{prefix}.{inner}")
            };
            errors.push(ConfigError::new(path, err.into_inner().to_string()));
            None
        }
    }
}
