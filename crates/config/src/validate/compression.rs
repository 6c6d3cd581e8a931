//! A frontend's `compression:`: codings in order of preference, the media
//! types compressed, the smallest size worth it, and the levels.

use crate::error::ConfigError;
use crate::model::{defaults, Algorithm, Compression};
use crate::raw::RawCompression;

pub(super) fn compression(
    at: &str,
    raw: &RawCompression,
    errors: &mut Vec<ConfigError>,
) -> Option<Compression> {
    let before = errors.len();
    let names: Vec<String> = match &raw.algorithms {
        Some(names) => names.clone(),
        None => defaults::COMPRESSION_ALGORITHMS.map(str::to_owned).to_vec(),
    };
    let mut algorithms = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let algorithm = match name.to_ascii_lowercase().as_str() {
            "zstd" => Algorithm::Zstd,
            "br" => Algorithm::Br,
            "gzip" => Algorithm::Gzip,
            _ => {
                errors.push(ConfigError::new(
                    format!("{at}.algorithms[{i}]"),
                    format!("unknown coding `{name}`: use zstd, br or gzip"),
                ));
                continue;
            }
        };
        if algorithms.contains(&algorithm) {
            errors.push(ConfigError::new(
                format!("{at}.algorithms[{i}]"),
                format!("`{name}` is listed twice"),
            ));
        }
        algorithms.push(algorithm);
    }
    if names.is_empty() {
        errors.push(ConfigError::new(
            format!("{at}.algorithms"),
            "no coding: list at least one of zstd, br and gzip (or remove `compression`)",
        ));
    }
    let types: Vec<String> = match &raw.types {
        Some(types) => types
            .iter()
            .map(|t| t.trim().to_ascii_lowercase())
            .collect(),
        None => defaults::COMPRESSION_TYPES.map(str::to_owned).to_vec(),
    };
    for (i, media) in types.iter().enumerate() {
        let valid = media.split_once('/').is_some_and(|(top, sub)| {
            let token = |s: &str| {
                !s.is_empty()
                    && s.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
            };
            token(top) && (sub == "*" || token(sub))
        });
        if !valid {
            errors.push(ConfigError::new(
                format!("{at}.types[{i}]"),
                format!("`{media}` is not a media type: write it like text/html or text/*"),
            ));
        }
    }
    let levels = raw.levels.as_ref();
    let level = |name: &str,
                 value: Option<i64>,
                 range: std::ops::RangeInclusive<i64>,
                 errors: &mut Vec<ConfigError>| {
        if let Some(value) = value.filter(|v| !range.contains(v)) {
            errors.push(ConfigError::new(
                format!("{at}.levels.{name}"),
                format!(
                    "{value} is out of range: {name} levels go from {} to {}",
                    range.start(),
                    range.end()
                ),
            ));
        }
    };
    let (gzip, br, zstd) = (
        levels.and_then(|l| l.gzip),
        levels.and_then(|l| l.br),
        levels.and_then(|l| l.zstd),
    );
    level("gzip", gzip.map(i64::from), 1..=9, errors);
    level("br", br.map(i64::from), 0..=11, errors);
    level("zstd", zstd.map(i64::from), 1..=19, errors);
    (errors.len() == before).then(|| Compression {
        algorithms,
        types,
        min_size: raw.min_size.unwrap_or(defaults::COMPRESSION_MIN_SIZE),
        gzip_level: gzip.unwrap_or(defaults::GZIP_LEVEL),
        br_level: br.unwrap_or(defaults::BR_LEVEL),
        zstd_level: zstd.unwrap_or(defaults::ZSTD_LEVEL),
    })
}

#[cfg(test)]
mod tests {
    use crate::model::*;

    fn parse(compression: &str) -> Result<Config, String> {
        let text = format!(
            "frontends:\n  web:\n    bind: [\"127.0.0.1:8080\"]\n    compression: {compression}\n    default_backend: a\nbackends:\n  a: {{ servers: [{{ address: \"127.0.0.1:9001\" }}] }}\n"
        );
        crate::parse(&text, "zkgate.yaml").map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_and_choices_are_read() {
        let config = parse("{}").unwrap();
        let compression = config.frontends[0].compression.clone().unwrap();
        assert_eq!(
            compression.algorithms,
            [Algorithm::Zstd, Algorithm::Br, Algorithm::Gzip]
        );
        assert_eq!(compression.min_size, 1024);
        assert!(compression.types.contains(&"text/*".to_owned()));
        assert_eq!(
            (
                compression.gzip_level,
                compression.br_level,
                compression.zstd_level
            ),
            (6, 4, 3)
        );
        let config =
            parse("{ algorithms: [GZIP], types: [Text/HTML], min_size: 0, levels: { gzip: 1 } }")
                .unwrap();
        let compression = config.frontends[0].compression.clone().unwrap();
        assert_eq!(compression.algorithms, [Algorithm::Gzip]);
        assert_eq!(compression.types, ["text/html"]);
        assert_eq!((compression.min_size, compression.gzip_level), (0, 1));
    }

    #[test]
    fn wrong_settings_are_errors_at_their_place() {
        let cases = [
            (
                "{ algorithms: [deflate] }",
                "compression.algorithms[0]: unknown coding `deflate`",
            ),
            (
                "{ algorithms: [gzip, gzip] }",
                "compression.algorithms[1]: `gzip` is listed twice",
            ),
            ("{ algorithms: [] }", "compression.algorithms: no coding"),
            (
                "{ types: [html] }",
                "compression.types[0]: `html` is not a media type",
            ),
            (
                "{ types: [\"*/*\"] }",
                "compression.types[0]: `*/*` is not a media type",
            ),
            (
                "{ levels: { gzip: 10 } }",
                "compression.levels.gzip: 10 is out of range",
            ),
            (
                "{ levels: { br: 12 } }",
                "compression.levels.br: 12 is out of range",
            ),
            (
                "{ levels: { zstd: 0 } }",
                "compression.levels.zstd: 0 is out of range",
            ),
            ("{ level: 3 }", "unknown field `level`"),
        ];
        for (compression, expected) in cases {
            let errors = parse(compression).unwrap_err();
            assert!(errors.contains(expected), "{compression}:\n{errors}");
        }
    }
}
