//! Where a voicemail's audio lives, per store (issue 16: every node of a cluster must be able
//! to play, mail and transcribe a voicemail another node recorded).
//!
//! - **SQLite (one node):** the WAV file in the node's data directory; the row keeps its path.
//! - **PostgreSQL (several nodes on one database):** the WAV bytes go into the database too
//!   (`voicemail_audio`, migration 0004), in the transaction that registers the voicemail, so a
//!   registered voicemail has its audio on every node, and still has it after the node that
//!   recorded it is gone with its disk. The database is then the one thing to back up and
//!   replicate, and no shared file system (NFS between nodes, its mounts and locking) has to be
//!   set up and kept alive; Asterisk's ODBC voicemail storage works the same way. The cost is
//!   small: 8 kHz 16-bit mono is 16 kB a second, so a 60 s voicemail is about 1 MB (see
//!   BENCHMARKS.md for what storing and reading one takes).
//!
//! Either way the recorder still writes the local WAV file as the call goes (a crash keeps what
//! was said, and start-up recovery registers recordings whose voicemail was never stored), and
//! readers on the node that recorded it use that file first; the database copy is for the
//! other nodes, and for this one once the file is gone.

use std::path::Path;

use super::StoreError;

/// The bytes of the recording at `path`; `None` when there is no such file.
pub(super) fn read_recording(path: &Path) -> Result<Option<Vec<u8>>, StoreError> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StoreError::Audio {
            path: path.to_path_buf(),
            reason: e.to_string(),
        }),
    }
}
