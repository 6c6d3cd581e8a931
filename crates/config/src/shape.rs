//! Limits a YAML text must keep before it is parsed at all: a size, and a
//! nesting depth. A configuration can come from anyone who may write the
//! config node in ZooKeeper, and the YAML parser's cost grows with the
//! square of the nesting (80,000 nested `[` took 20 s of CPU); this linear
//! scan refuses such a text at once.

use crate::error::Location;

/// The largest configuration text parsed.
pub const MAX_BYTES: usize = crate::files::MAX_CONFIG_BYTES as usize;
/// The deepest flow nesting (`[`, `{`) accepted; zkgate's schema needs 5.
pub const MAX_FLOW_DEPTH: usize = 64;
/// The deepest indentation accepted, in columns; zkgate's schema needs
/// about 16.
pub const MAX_INDENT: usize = 256;

/// Why a text is refused before parsing, and where.
pub fn check(text: &str) -> Result<(), (Option<Location>, String)> {
    if text.len() > MAX_BYTES {
        return Err((
            None,
            format!(
                "{} bytes, more than the {MAX_BYTES} a configuration may have",
                text.len()
            ),
        ));
    }
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    let mut comment = false;
    let (mut line, mut column) = (1usize, 0usize);
    let mut indent = Some(0usize);
    let mut previous = '\n';
    for c in text.chars() {
        column += 1;
        if c == '\n' {
            (line, column, comment, indent) = (line + 1, 0, false, Some(0));
            previous = c;
            continue;
        }
        match indent {
            Some(n) if c == ' ' => {
                if n + 1 > MAX_INDENT {
                    let at = Location { line, column };
                    let why = format!("indented deeper than {MAX_INDENT} columns");
                    return Err((Some(at), why));
                }
                indent = Some(n + 1);
            }
            _ => indent = None,
        }
        if comment {
            continue;
        }
        match quote {
            Some('"') if escaped => escaped = false,
            Some('"') if c == '\\' => escaped = true,
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None => match c {
                '"' | '\'' => quote = Some(c),
                '#' if previous.is_whitespace() => comment = true,
                '[' | '{' => {
                    depth += 1;
                    if depth > MAX_FLOW_DEPTH {
                        let at = Location { line, column };
                        let why = format!("nested deeper than {MAX_FLOW_DEPTH} levels");
                        return Err((Some(at), why));
                    }
                }
                ']' | '}' => depth = depth.saturating_sub(1),
                _ => {}
            },
        }
        previous = c;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deep_nesting_is_refused_where_it_goes_too_deep() {
        let text = format!("frontends: {}{}\n", "[".repeat(80_000), "]".repeat(80_000));
        let started = std::time::Instant::now();
        let (at, why) = check(&text).unwrap_err();
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        assert_eq!(
            at,
            Some(Location {
                line: 1,
                column: 12 + MAX_FLOW_DEPTH
            })
        );
        assert!(why.contains("nested deeper than 64"), "{why}");
        let deep_block = format!("a:\n{}b: 1\n", " ".repeat(300));
        assert!(check(&deep_block)
            .unwrap_err()
            .1
            .contains("indented deeper"));
    }

    #[test]
    fn brackets_in_strings_and_comments_do_not_count() {
        let text = format!(
            "a: \"{}\"\nb: '{}'\n# {}\nc: [[1], {{d: [2]}}]\n",
            "[".repeat(100),
            "{".repeat(100),
            "[".repeat(100)
        );
        assert_eq!(check(&text), Ok(()));
    }
}
