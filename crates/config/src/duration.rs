//! Durations written as humantime strings: `250ms`, `10s`, `1h`.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

/// A duration read from YAML; plain numbers are refused so a unit is never guessed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Duration(pub std::time::Duration);

/// The longest duration any setting takes: 30 days. Longer ones are
/// refused where they are written, so that no deadline computed from one
/// (now + a timeout) can overflow the clock.
pub const MAX: std::time::Duration = std::time::Duration::from_secs(30 * 24 * 3600);

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DurationVisitor;

        impl Visitor<'_> for DurationVisitor {
            type Value = Duration;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration with a unit, like 250ms, 10s or 1h")
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<Duration, E> {
                let duration = humantime::parse_duration(text.trim()).map_err(|err| {
                    E::custom(format_args!(
                        "invalid duration `{text}` ({err}): write a number with a unit, like 250ms, 10s or 1h"
                    ))
                })?;
                if duration > MAX {
                    return Err(E::custom(format_args!(
                        "duration `{text}` is too long: at most 30d"
                    )));
                }
                Ok(Duration(duration))
            }

            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Duration, E> {
                Err(E::custom(format_args!(
                    "invalid duration `{n}`: a unit is required, like {n}s or {n}ms"
                )))
            }

            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Duration, E> {
                self.visit_u64(n.unsigned_abs())
            }

            fn visit_f64<E: de::Error>(self, n: f64) -> Result<Duration, E> {
                Err(E::custom(format_args!(
                    "invalid duration `{n}`: write a number with a unit, like 250ms or 10s"
                )))
            }
        }

        deserializer.deserialize_any(DurationVisitor)
    }
}
