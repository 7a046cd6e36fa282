//! Why a write failed, in words an operator can act on: SQLite reports "unable to open" or
//! "disk I/O error"; the file system says "read-only" or "no space left".

use std::path::Path;

use rusqlite::ErrorCode;

use super::{DB_FILE, StoreError};

/// Turn a SQLite error into a [`StoreError`] that says what is wrong with the data directory
/// when that is the cause.
pub(super) fn classify(dir: &Path, path: &Path, doing: &str, e: rusqlite::Error) -> StoreError {
    let reason = format!("{doing} {}: {e}", path.display());
    match e.sqlite_error_code() {
        Some(ErrorCode::DiskFull) => StoreError::Full {
            dir: dir.to_path_buf(),
            reason,
        },
        Some(ErrorCode::ReadOnly) => StoreError::ReadOnly {
            dir: dir.to_path_buf(),
            reason,
        },
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => StoreError::Busy {
            path: path.to_path_buf(),
        },
        // SQLite says only "unable to open" or "disk I/O error"; ask the file system why.
        Some(ErrorCode::CannotOpen | ErrorCode::SystemIoFailure | ErrorCode::PermissionDenied) => {
            match probe_dir(dir) {
                Err(io) => io_error(dir, &io, &reason),
                Ok(()) if doing == "opening" => StoreError::Open {
                    path: path.to_path_buf(),
                    reason: e.to_string(),
                },
                Ok(()) => StoreError::Database {
                    doing: doing.to_string(),
                    reason,
                },
            }
        }
        _ => StoreError::Database {
            doing: doing.to_string(),
            reason,
        },
    }
}

/// Can we create and write a file in `dir`?
pub(super) fn probe_dir(dir: &Path) -> std::io::Result<()> {
    use std::io::Write;
    let probe = dir.join(format!(".ivr-write-probe-{}", std::process::id()));
    let result = std::fs::File::create(&probe).and_then(|mut f| {
        f.write_all(&[0; 512])?;
        f.sync_all()
    });
    // Best effort: a probe we could not create needs no removing.
    let _ = std::fs::remove_file(&probe);
    result
}

/// A file-system error on the data directory, as a [`StoreError`].
pub(super) fn io_error(dir: &Path, e: &std::io::Error, doing: &str) -> StoreError {
    use std::io::ErrorKind;
    let reason = format!("{doing}: {e}");
    match e.kind() {
        ErrorKind::PermissionDenied | ErrorKind::ReadOnlyFilesystem => StoreError::ReadOnly {
            dir: dir.to_path_buf(),
            reason,
        },
        ErrorKind::StorageFull | ErrorKind::QuotaExceeded => StoreError::Full {
            dir: dir.to_path_buf(),
            reason,
        },
        _ => StoreError::Open {
            path: dir.join(DB_FILE),
            reason,
        },
    }
}
