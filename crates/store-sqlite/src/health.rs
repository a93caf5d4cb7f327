//! Faults that must never be silent (issue 17, finding 5): the database file
//! deleted or replaced under the running service, writes that fail, audit
//! events that cannot be written. What is found here turns into
//! `StoreError::Unavailable` (HTTP 503) for the request that meets it, an
//! error-level log line, and a readiness report that says which part fails.
//!
//! Also the files' permissions: the database, its WAL and its shared-memory
//! file hold children's NHS numbers, so they are owner-only (0600).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use cpis_domain::ports::StoreError;

/// Which file the store opened, by device and inode: a path that now names
/// another file (replaced) or nothing (deleted) no longer holds what the
/// open connections write to. Writes to an unlinked file succeed and vanish
/// at the next restart, which is why this is checked before every write
/// batch and every read, not only at start.
#[derive(Debug)]
pub(crate) struct FileIdentity {
    path: PathBuf,
    #[cfg(unix)]
    id: (u64, u64),
    /// Set while the file is missing or replaced; for logging each change once.
    lost: AtomicBool,
}

/// The text every caller and the readiness report see (never the path:
/// readiness is answered to anonymous callers).
pub(crate) const FILE_LOST: &str =
    "the database file was deleted or replaced while the service runs";

impl FileIdentity {
    /// Records the identity of the file at `path`, which must exist.
    pub(crate) fn record(path: &Path) -> Result<Self, StoreError> {
        #[cfg(unix)]
        let id = {
            use std::os::unix::fs::MetadataExt;
            let meta = std::fs::metadata(path).map_err(|e| {
                StoreError::Unavailable(format!(
                    "cannot read the database file {}: {}",
                    path.display(),
                    e.kind()
                ))
            })?;
            (meta.dev(), meta.ino())
        };
        Ok(Self {
            path: path.to_owned(),
            #[cfg(unix)]
            id,
            lost: AtomicBool::new(false),
        })
    }

    /// `Ok` while the path still names the file that was opened. A change
    /// is logged at error level once, and again when the file is back.
    pub(crate) fn verify(&self) -> Result<(), StoreError> {
        let same = self.is_same();
        let was_lost = self.lost.swap(!same, Ordering::SeqCst);
        if same {
            if was_lost {
                tracing::warn!(path = %self.path.display(), "the database file is back; writes resume");
            }
            return Ok(());
        }
        if !was_lost {
            tracing::error!(
                path = %self.path.display(),
                "the database file was deleted or replaced while the service runs: every read and write now fails (503) until it is restored or the service is restarted from a backup"
            );
        }
        Err(StoreError::Unavailable(FILE_LOST.to_owned()))
    }

    #[cfg(unix)]
    fn is_same(&self) -> bool {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(&self.path).is_ok_and(|meta| (meta.dev(), meta.ino()) == self.id)
    }

    #[cfg(not(unix))]
    fn is_same(&self) -> bool {
        self.path.exists()
    }
}

/// The last known outcome of writes and of audit appends: a failure stays
/// reported until a later write of the same kind succeeds.
#[derive(Debug, Default)]
pub(crate) struct Outcomes {
    write: Mutex<Option<String>>,
    audit: Mutex<Option<String>>,
}

impl Outcomes {
    pub(crate) fn write(&self, outcome: Result<(), &str>) {
        set(&self.write, outcome);
    }

    pub(crate) fn audit(&self, outcome: Result<(), &str>) {
        set(&self.audit, outcome);
    }

    pub(crate) fn last_write_failure(&self) -> Option<String> {
        get(&self.write)
    }

    pub(crate) fn last_audit_failure(&self) -> Option<String> {
        get(&self.audit)
    }
}

fn set(slot: &Mutex<Option<String>>, outcome: Result<(), &str>) {
    *slot.lock().unwrap_or_else(|e| e.into_inner()) = outcome.err().map(str::to_owned);
}

fn get(slot: &Mutex<Option<String>>) -> Option<String> {
    slot.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// One part of the store, as the readiness route reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Component {
    Ok,
    /// Why it fails: our own words and SQLite's error codes, never a value
    /// or a path.
    Failing(String),
}

impl Component {
    pub fn is_ok(&self) -> bool {
        matches!(self, Self::Ok)
    }
}

/// Whether the store can take writes and audit events now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readiness {
    /// The file opened at start is still the one at its path.
    pub database: Component,
    /// A write transaction can be taken and committed now, and the last
    /// write (if any) committed.
    pub writes: Component,
    /// The last audit event (if any) was written.
    pub audit: Component,
}

impl Readiness {
    pub fn is_ready(&self) -> bool {
        self.database.is_ok() && self.writes.is_ok() && self.audit.is_ok()
    }
}

/// The database file and the files SQLite keeps beside it.
pub(crate) fn database_files(path: &Path) -> [PathBuf; 3] {
    let with = |suffix: &str| {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    };
    [path.to_owned(), with("-wal"), with("-shm")]
}

/// Creates the database file owner-only (0600) if it does not exist, and
/// takes group and world permissions off it and its WAL and shared-memory
/// files if they exist, logging each at warning level. SQLite creates the
/// WAL and shared-memory files with the database file's permissions, so the
/// umask never decides them.
pub(crate) fn make_private(path: &Path, create: bool) -> Result<(), StoreError> {
    let io = |what: &Path, e: std::io::Error| {
        StoreError::Unavailable(format!(
            "cannot secure the database file {}: {}",
            what.display(),
            e.kind()
        ))
    };
    if create && !path.exists() {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        match options.open(path) {
            Ok(_) => {}
            // Created by someone else meanwhile: it is tightened below.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io(path, e)),
        }
    }
    #[cfg(unix)]
    for file in database_files(path) {
        use std::os::unix::fs::PermissionsExt;
        let Ok(meta) = std::fs::metadata(&file) else {
            continue;
        };
        let mode = meta.permissions().mode();
        if mode & 0o077 != 0 {
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode & 0o7700))
                .map_err(|e| io(&file, e))?;
            tracing::warn!(
                path = %file.display(),
                "a database file was readable by other users; it is now owner-only"
            );
        }
    }
    Ok(())
}
