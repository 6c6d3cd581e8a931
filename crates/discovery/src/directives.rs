//! What zkgate's own tools ask of every proxy watching a backend path,
//! written in the data of the path's znode (members are its children):
//! `{"zkgate": {"release": N, "forced": ["child", …]}}`. `zkgate server
//! release` raises `release`: proxies let every member the mass-removal
//! guard holds go. `server remove|set --force` names the child in `forced`
//! in the same transaction as its change: that change is never held. Other
//! keys of a JSON object there are kept; data that is not a JSON object is
//! another tool's, and left alone (the tools refuse to write over it).

use serde_json::{Map, Value};

/// The key zkgate's directives live under.
const KEY: &str = "zkgate";
/// Forced children remembered at most (the oldest are forgotten).
const MAX_FORCED: usize = 256;

/// The directives found on a backend path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Directives {
    /// Raised by each `server release`.
    pub release: u64,
    /// Children whose last change was made with `--force`.
    pub forced: Vec<String>,
    /// The zxid of the path znode's last write: a change of it is a new
    /// directive.
    pub zxid: i64,
}

impl Directives {
    /// Reads the directives in a path znode's `data` (written at `zxid`);
    /// none in data that is not zkgate's.
    pub fn parse(data: &[u8], zxid: i64) -> Self {
        let ours = serde_json::from_slice::<Value>(data)
            .ok()
            .and_then(|v| v.get(KEY).cloned());
        let Some(ours) = ours else {
            return Directives {
                zxid,
                ..Directives::default()
            };
        };
        let forced = ours
            .get("forced")
            .and_then(Value::as_array)
            .map(|names| {
                names
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        Directives {
            release: ours.get("release").and_then(Value::as_u64).unwrap_or(0),
            forced,
            zxid,
        }
    }
}

/// The path znode's data with a directive added: `release` raised, or
/// `forced` naming one more child; other keys kept. An error for data that
/// is not a JSON object (nor empty): another tool's, not to be written over.
pub fn with_directive(data: &[u8], release: bool, forced: Option<&str>) -> Result<Vec<u8>, String> {
    let mut root = if data.iter().all(u8::is_ascii_whitespace) {
        Map::new()
    } else {
        match serde_json::from_slice::<Value>(data) {
            Ok(Value::Object(root)) => root,
            _ => {
                return Err(
                    "its data is not a JSON object: another tool's, not written over".into(),
                )
            }
        }
    };
    let ours = root.entry(KEY).or_insert_with(|| Value::Object(Map::new()));
    if !ours.is_object() {
        *ours = Value::Object(Map::new());
    }
    let ours = ours.as_object_mut().expect("an object");
    if release {
        let next = ours.get("release").and_then(Value::as_u64).unwrap_or(0) + 1;
        ours.insert("release".into(), next.into());
    }
    if let Some(child) = forced {
        let mut names: Vec<Value> = ours
            .get("forced")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        names.retain(|n| n.as_str() != Some(child));
        names.push(child.into());
        let excess = names.len().saturating_sub(MAX_FORCED);
        names.drain(..excess);
        ours.insert("forced".into(), Value::Array(names));
    }
    Ok(serde_json::to_vec(&Value::Object(root)).expect("JSON serializes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directives_are_added_and_read_back_keeping_other_keys() {
        let data = with_directive(b"", true, None).unwrap();
        assert_eq!(Directives::parse(&data, 5).release, 1);
        let data = with_directive(&data, true, Some("a")).unwrap();
        let data = with_directive(&data, false, Some("b")).unwrap();
        let data = with_directive(&data, false, Some("a")).unwrap();
        let read = Directives::parse(&data, 6);
        assert_eq!(
            (read.release, read.forced, read.zxid),
            (2, vec!["b".into(), "a".into()], 6)
        );
        let kept = with_directive(br#"{"owner":"team-a"}"#, true, None).unwrap();
        assert!(String::from_utf8(kept)
            .unwrap()
            .contains(r#""owner":"team-a""#));
    }

    #[test]
    fn data_of_another_tool_holds_no_directive_and_is_not_written_over() {
        assert_eq!(
            Directives::parse(b"\x00\x01", 3),
            Directives {
                zxid: 3,
                ..Directives::default()
            }
        );
        assert_eq!(Directives::parse(b"[1,2]", 3).release, 0);
        assert!(with_directive(b"10.0.0.1:80", true, None).is_err());
        assert!(with_directive(b"[1]", true, None).is_err());
    }

    #[test]
    fn the_forced_list_is_bounded() {
        let mut data = Vec::new();
        for n in 0..300 {
            data = with_directive(&data, false, Some(&format!("m{n}"))).unwrap();
        }
        let read = Directives::parse(&data, 1);
        assert_eq!(read.forced.len(), MAX_FORCED);
        assert_eq!(read.forced.last().map(String::as_str), Some("m299"));
    }
}
