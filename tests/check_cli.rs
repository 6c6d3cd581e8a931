//! `zkgate check`: every error at once, each naming its place; every shipped
//! example configuration is valid.

mod common;

use std::process::Command;

use common::{check, ZKGATE};

#[test]
fn every_error_is_printed_with_file_line_and_column_and_the_exit_code_is_1() {
    let (ok, text) = check(
        r#"frontends:
  a:
    bind: ["127.0.0.1:8080"]
    default_backend: missing
  b:
    bind: ["127.0.0.1:8080"]
    default_backend: web
backends:
  web:
    timeouts: { connect: 5 minutes please }
  api:
    servers: []
    balanse: roundrobin
"#,
    );
    assert!(!ok);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with(
            "broken.yaml:4:5: frontends.a.default_backend: backend `missing` is not defined"
        ),
        "{text}"
    );
    assert!(lines[1].starts_with("broken.yaml:6:12: frontends.b.bind[0]: 127.0.0.1:8080 is already bound by frontends.a.bind[0]"), "{text}");
    assert!(
        lines[2].starts_with("broken.yaml:10:17: backends.web.timeouts.connect: invalid duration"),
        "{text}"
    );
    assert!(
        lines[3].starts_with("broken.yaml:13:5: backends.api"),
        "{text}"
    );
    assert!(lines[3].contains("unknown field `balanse`"), "{text}");
    assert_eq!(lines[4], "broken.yaml: 4 errors", "{text}");
}

#[test]
fn a_missing_file_is_one_clear_line() {
    let output = Command::new(ZKGATE)
        .args(["check", "-c", "/nonexistent/zkgate.yaml"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let text = String::from_utf8_lossy(&output.stderr);
    assert!(
        text.starts_with("/nonexistent/zkgate.yaml: cannot read the file"),
        "{text}"
    );
}

#[test]
fn every_example_in_config_is_valid() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            // config/discovery-formats.yaml names its password's environment variable.
            let output = Command::new(ZKGATE)
                .arg("check")
                .arg("-c")
                .arg(&path)
                .env("ZKGATE_ZK_PASSWORD", "example")
                .output()
                .unwrap();
            assert!(
                output.status.success(),
                "{}:\n{}",
                path.display(),
                String::from_utf8_lossy(&output.stderr)
            );
            checked += 1;
        }
    }
    assert!(
        checked >= 2,
        "expected example configurations in {}",
        dir.display()
    );
}

#[test]
fn run_refuses_an_invalid_configuration_with_the_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    std::fs::write(
        &path,
        "frontends:\n  a:\n    bind: [\"nowhere\"]\n    default_backend: b\nbackends:\n  b: {}\n",
    )
    .unwrap();
    let output = Command::new(ZKGATE)
        .arg("run")
        .arg("-c")
        .arg(&path)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let text = String::from_utf8_lossy(&output.stderr);
    assert!(
        text.contains("frontends.a.bind[0]: `nowhere` is not a listen address"),
        "{text}"
    );
    assert!(text.contains("not starting"), "{text}");
}

#[test]
fn certificates_that_are_devices_fifos_or_too_large_are_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("cert.fifo");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let large = dir.path().join("large.pem");
    std::fs::write(&large, vec![b'x'; 2 * 1024 * 1024]).unwrap();
    for (cert, why) in [
        ("/dev/zero".to_owned(), "not a regular file"),
        (fifo.display().to_string(), "not a regular file"),
        (
            large.display().to_string(),
            "2097152 bytes, more than the 1048576 allowed",
        ),
    ] {
        let yaml = format!(
            "frontends:\n  web:\n    bind: [\"127.0.0.1:0\"]\n    tls: {{ certificates: [{{ cert: \"{cert}\", key: \"{cert}\" }}] }}\n    default_backend: app\nbackends:\n  app:\n    servers: [{{ address: \"127.0.0.1:1\" }}]\n"
        );
        // `check` returns (it neither reads forever nor waits on the FIFO).
        let (ok, text) = check(&yaml);
        assert!(!ok, "{cert}: {text}");
        assert!(
            text.contains(&format!("cannot read {cert}: {why}")),
            "{cert}: {text}"
        );
    }
}
