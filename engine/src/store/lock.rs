//! One engine per SQLite database: an exclusive lock on a file beside it,
//! taken before the database is opened and held until shutdown. A second
//! engine on the same data directory would otherwise start, read a stale
//! in-memory view (opt-outs, the directory) and act on it.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// An exclusive lock on a database; released when dropped.
#[derive(Debug)]
pub struct DatabaseLock {
    _file: File,
    pub path: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("{database} is in use by another engine ({holder}); stop it first or use another data directory")]
    Held { database: String, holder: String },
    #[error("cannot lock {path}: {error}")]
    Io { path: String, error: String },
}

/// The SQLite file a `sqlite:` URL names (`None` for in-memory databases
/// and other backends).
pub fn sqlite_file(url: &str) -> Option<PathBuf> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    (!path.is_empty() && path != ":memory:").then(|| PathBuf::from(path))
}

/// Takes the lock of the database at `database` (the lock file is
/// `<database>.lock`), recording who holds it for the next one to read.
pub fn lock(database: &Path, node_id: &str) -> Result<DatabaseLock, LockError> {
    let path = database.with_file_name(format!(
        "{}.lock",
        database.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "switchboard".into())
    ));
    let io = |e: std::io::Error| LockError::Io { path: path.display().to_string(), error: e.to_string() };
    let mut file =
        std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path).map_err(io)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            return Err(LockError::Held {
                database: database.display().to_string(),
                holder: if holder.is_empty() { "holder unknown".into() } else { holder.to_string() },
            });
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let since = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let holder = format!("pid {} on {}, node {node_id}, since {since}", std::process::id(), host.trim());
    file.set_len(0).and_then(|()| file.rewind()).and_then(|()| file.write_all(holder.as_bytes())).map_err(io)?;
    Ok(DatabaseLock { _file: file, path })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_names_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("switchboard.db");
        let first = lock(&db, "one").unwrap();
        let err = lock(&db, "two").unwrap_err().to_string();
        assert!(err.contains("in use by another engine"), "{err}");
        assert!(err.contains("node one"), "{err}");
        assert!(err.contains(&format!("pid {}", std::process::id())), "{err}");
        drop(first);
        lock(&db, "two").expect("free again once released");
    }

    #[test]
    fn sqlite_urls_name_their_file() {
        assert_eq!(sqlite_file("sqlite://data/switchboard.db"), Some(PathBuf::from("data/switchboard.db")));
        assert_eq!(sqlite_file("sqlite:data/x.db?mode=rwc"), Some(PathBuf::from("data/x.db")));
        assert_eq!(sqlite_file("sqlite::memory:"), None);
        assert_eq!(sqlite_file("postgres://u@h/db"), None);
    }
}
