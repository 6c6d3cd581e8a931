//! Reading the configuration and the files it names (certificates, keys, CA
//! bundles), bounded in size; the files it names regular ones only. A path
//! to `/dev/zero` would otherwise read until memory runs out, and a FIFO
//! would block `check` (and a reload) forever.

use std::io::Read;
use std::path::Path;

/// The largest configuration file read, and its node in ZooKeeper (whose
/// znodes hold 1 MiB at most by default).
pub const MAX_CONFIG_BYTES: u64 = 4 * 1024 * 1024;
/// The largest certificate chain, key or CA bundle read.
pub const MAX_PEM_BYTES: u64 = 1024 * 1024;

/// The bytes of the regular file at `path`, at most `limit` of them; an
/// error that names the path and says why otherwise.
pub fn read_regular(path: &Path, limit: u64) -> Result<Vec<u8>, String> {
    read_bounded(path, limit).map_err(|why| format!("cannot read {}: {why}", path.display()))
}

/// The configuration file at `path`, as text; an error that says why (the
/// caller names the file). Unlike the files a configuration names, it may
/// be a pipe (`-c <(…)`, `/dev/stdin`): whoever runs zkgate chose it. It is
/// bounded in size all the same.
pub fn read_config(path: &Path) -> Result<String, String> {
    let cannot = |why: String| format!("cannot read the file: {why}");
    let file = std::fs::File::open(path).map_err(|err| cannot(err.to_string()))?;
    if file.metadata().is_ok_and(|m| m.is_dir()) {
        return Err(cannot("a directory".to_owned()));
    }
    let mut bytes = Vec::new();
    file.take(MAX_CONFIG_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|err| cannot(err.to_string()))?;
    if bytes.len() as u64 > MAX_CONFIG_BYTES {
        return Err(cannot(format!(
            "more than the {MAX_CONFIG_BYTES} bytes a configuration may have"
        )));
    }
    String::from_utf8(bytes).map_err(|_| cannot("not UTF-8 text".to_owned()))
}

fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>, String> {
    // Opened without blocking: a FIFO would otherwise wait for a writer.
    let file = open_nonblocking(path).map_err(|err| err.to_string())?;
    let metadata = file.metadata().map_err(|err| err.to_string())?;
    if !metadata.is_file() {
        return Err("not a regular file".to_owned());
    }
    if metadata.len() > limit {
        return Err(format!(
            "{} bytes, more than the {limit} allowed",
            metadata.len()
        ));
    }
    let mut bytes = Vec::with_capacity(metadata.len() as usize);
    // Bounded even if the file grows while it is read.
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|err| err.to_string())?;
    if bytes.len() as u64 > limit {
        return Err(format!("more than the {limit} bytes allowed"));
    }
    Ok(bytes)
}

fn open_nonblocking(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    // O_NONBLOCK only changes how a FIFO or device opens; a regular file
    // reads as usual.
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_configuration_may_come_from_a_pipe_but_not_an_endless_one() {
        let err = read_config(Path::new("/dev/zero")).unwrap_err();
        assert!(err.contains("more than the"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let err = read_config(dir.path()).unwrap_err();
        assert!(err.contains("a directory"), "{err}");
    }

    #[test]
    fn only_regular_files_of_bounded_size_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let small = dir.path().join("small.pem");
        std::fs::write(&small, "abc").unwrap();
        assert_eq!(read_regular(&small, 10).unwrap(), b"abc");

        let large = dir.path().join("large.pem");
        std::fs::write(&large, vec![b'x'; 11]).unwrap();
        let err = read_regular(&large, 10).unwrap_err();
        assert!(err.contains("11 bytes, more than the 10 allowed"), "{err}");

        let err = read_regular(Path::new("/dev/zero"), 10).unwrap_err();
        assert!(err.contains("/dev/zero: not a regular file"), "{err}");
        let err = read_regular(dir.path(), 10).unwrap_err();
        assert!(err.contains("not a regular file"), "{err}");

        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let err = read_regular(&fifo, 10).unwrap_err();
        assert!(err.contains("not a regular file"), "{err}");
    }
}
