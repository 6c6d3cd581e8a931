//! Where each YAML path sits in the text, so that errors found after parsing
//! (unknown backend, duplicate bind, …) can still point at `file:line:col`.
//!
//! serde_yaml keeps no positions for values, so this walks the document once
//! more with an event parser and records the start of every key and item
//! under the same path syntax that `serde_path_to_error` prints
//! (`frontends.web.routes[0].backend`).

use std::collections::HashMap;

use saphyr_parser::{Event, Parser};

use crate::error::Location;

/// Path → position of every mapping key and sequence item in a document.
#[derive(Debug, Default)]
pub struct SpanIndex {
    positions: HashMap<String, Location>,
}

enum Frame {
    Map { path: String, key: Option<String> },
    Seq { path: String, next: usize },
}

impl SpanIndex {
    /// Indexes `text`; a document the event parser rejects yields an empty index
    /// (serde_yaml reports the syntax error with its own position).
    pub fn build(text: &str) -> Self {
        let mut positions = HashMap::new();
        let mut stack: Vec<Frame> = Vec::new();
        for item in Parser::new_from_str(text) {
            let Ok((event, span)) = item else { break };
            let here = Location {
                line: span.start.line(),
                column: span.start.col() + 1,
            };
            match event {
                Event::Scalar(value, ..) => {
                    if let Some(Frame::Map { path, key }) = stack.last_mut() {
                        if key.is_none() {
                            let child = join(path, &value);
                            positions.entry(child.clone()).or_insert(here);
                            *key = Some(child);
                            continue;
                        }
                    }
                    Self::value_position(&mut stack, &mut positions, here);
                }
                Event::Alias(_) => {
                    Self::value_position(&mut stack, &mut positions, here);
                }
                Event::MappingStart(..) | Event::SequenceStart(..) => {
                    let path = Self::value_position(&mut stack, &mut positions, here);
                    stack.push(if matches!(event, Event::MappingStart(..)) {
                        Frame::Map { path, key: None }
                    } else {
                        Frame::Seq { path, next: 0 }
                    });
                }
                Event::MappingEnd | Event::SequenceEnd => {
                    stack.pop();
                    if let Some(Frame::Map { key, .. }) = stack.last_mut() {
                        *key = None;
                    }
                }
                _ => {}
            }
        }
        SpanIndex { positions }
    }

    /// Records a value at the current position and returns its path.
    fn value_position(
        stack: &mut [Frame],
        positions: &mut HashMap<String, Location>,
        here: Location,
    ) -> String {
        match stack.last_mut() {
            None => String::new(),
            Some(Frame::Map { key, .. }) => key.take().unwrap_or_default(),
            Some(Frame::Seq { path, next }) => {
                let child = format!("{path}[{next}]");
                *next += 1;
                positions.entry(child.clone()).or_insert(here);
                child
            }
        }
    }

    /// The position of `path`, or of its nearest ancestor that exists in the text.
    pub fn locate(&self, path: &str) -> Option<Location> {
        let mut path = path;
        loop {
            if let Some(at) = self.positions.get(path) {
                return Some(*at);
            }
            let cut = path.rfind(['.', '['])?;
            path = &path[..cut];
        }
    }
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "\
frontends:
  web:
    bind: [\"127.0.0.1:80\", \"127.0.0.1:81\"]
    routes:
      - { host: a.example.com, backend: api }
      - path_prefix: /x
        backend: other
";

    fn at(index: &SpanIndex, path: &str) -> (usize, usize) {
        let loc = index.locate(path).unwrap();
        (loc.line, loc.column)
    }

    #[test]
    fn keys_in_block_and_flow_style_are_located() {
        let index = SpanIndex::build(DOC);
        assert_eq!(at(&index, "frontends"), (1, 1));
        assert_eq!(at(&index, "frontends.web"), (2, 3));
        assert_eq!(at(&index, "frontends.web.bind[1]"), (3, 28));
        assert_eq!(at(&index, "frontends.web.routes[0].backend"), (5, 32));
        assert_eq!(at(&index, "frontends.web.routes[1].backend"), (7, 9));
    }

    #[test]
    fn unknown_paths_fall_back_to_the_nearest_ancestor() {
        let index = SpanIndex::build(DOC);
        assert_eq!(at(&index, "frontends.web.routes[1].nope"), (6, 9));
        assert!(index.locate("nothing").is_none());
    }
}
