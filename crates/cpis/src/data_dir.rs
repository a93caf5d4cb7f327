//! The data directory: the SQLite database, the local keys and the outbox.

use std::io::Write;
use std::path::{Path, PathBuf};

use cpis_domain::ports::StoreError;
use cpis_domain::Pseudonymiser;
use cpis_http::LocalKeys;
use cpis_store_sqlite::SqliteStore;

#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    #[error("cannot use the data directory {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the key in {0} is damaged: delete it only if no audit trail or token depends on it")]
    BadKey(PathBuf),
    #[error("no randomness available from the operating system")]
    Random,
    #[error("{0} is a symbolic link; the data directory must hold only its own files")]
    Symlink(PathBuf),
    #[error(
        "the database {database} is missing, but {marker} records that it was created: restore \
         the database from a backup (with its -wal file if there is one); to start again with an \
         empty database on purpose, delete {marker}"
    )]
    DatabaseMissing { database: PathBuf, marker: PathBuf },
    #[error("cannot open the store: {0}")]
    Store(#[from] StoreError),
}

/// What the marker file says to whoever finds it.
const MARKER_TEXT: &str =
    "cpis created its database (cpis.sqlite3) in this directory and will not \
start without it, so that a lost database is never silently replaced by an empty one. Delete this \
file only to start again with an empty database.\n";

#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
}

/// Owner-only: the directories and files hold children's NHS numbers,
/// councils' case references and the service's keys (issue 17, finding 4).
#[cfg(unix)]
const PRIVATE_DIR: u32 = 0o700;
/// Any of these bits lets another local user in.
#[cfg(unix)]
const GROUP_OR_WORLD: u32 = 0o077;

impl DataDir {
    /// Opens the data directory, creating it (and `keys/`, `outbox/`) owner
    /// only, mode 0700; then [`DataDir::secure`]s what is already there.
    ///
    /// Errors: the directory cannot be created, read or tightened (for
    /// instance it belongs to another user), or holds a symbolic link.
    pub fn open(root: &Path) -> Result<Self, DataDirError> {
        let data = Self {
            root: root.to_owned(),
        };
        for dir in [data.root.clone(), data.root.join("keys"), data.outbox()] {
            create_private_dir(&dir).map_err(|source| DataDirError::Io { path: dir, source })?;
        }
        data.secure()?;
        Ok(data)
    }

    /// Takes group and world permissions off the data directory and every
    /// file and directory in it (mode `& !0o077`: 0644 becomes 0600, 0755
    /// becomes 0700), logging each change at warning level: something
    /// created it looser than this build does (an older build, an operator's
    /// copy, a restored backup). Run at start and again once the store, the
    /// keys and the outbox are open, so nothing they created is missed.
    ///
    /// Returns the paths it tightened. Symbolic links are refused rather
    /// than followed: one could point the service's writes elsewhere.
    pub fn secure(&self) -> Result<Vec<PathBuf>, DataDirError> {
        let mut tightened = Vec::new();
        secure_tree(&self.root, &mut tightened)?;
        for path in &tightened {
            tracing::warn!(
                path = %path.display(),
                "a data directory entry was readable by other users; it is now owner-only"
            );
        }
        Ok(tightened)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn database(&self) -> PathBuf {
        Self::database_in(&self.root)
    }

    /// The database file of the data directory `root`.
    pub fn database_in(root: &Path) -> PathBuf {
        root.join("cpis.sqlite3")
    }

    /// Written once the database has been created: from then on a missing
    /// database is an error, not a fresh start.
    pub fn database_marker(&self) -> PathBuf {
        self.root.join("cpis.sqlite3.created")
    }

    /// Opens the store. The first time, it creates the database and then
    /// the marker ([`DataDir::database_marker`]); once the marker exists the
    /// database must exist too ([`SqliteStore::open_existing`]): a restart
    /// after the file was deleted or moved stops with
    /// [`DataDirError::DatabaseMissing`] instead of serving an empty one.
    /// A database without a marker (an older build's) gets one.
    pub fn open_store(&self) -> Result<SqliteStore, DataDirError> {
        let database = self.database();
        let marker = self.database_marker();
        if marker.exists() {
            if !database.exists() {
                return Err(DataDirError::DatabaseMissing { database, marker });
            }
            return Ok(SqliteStore::open_existing(&database)?);
        }
        let store = SqliteStore::open(&database)?;
        write_private(&marker, MARKER_TEXT.as_bytes()).map_err(|source| DataDirError::Io {
            path: marker.clone(),
            source,
        })?;
        Ok(store)
    }

    pub fn outbox(&self) -> PathBuf {
        self.root.join("outbox")
    }

    /// The key that pseudonymises NHS numbers in the audit trail, created on
    /// first use (32 random bytes, hex, mode 0600).
    pub fn pseudonymiser(&self) -> Result<Pseudonymiser, DataDirError> {
        let (path, text) = self.key_file("pseudonym.key", || {
            let mut key = [0u8; 32];
            getrandom::fill(&mut key).map_err(|_| DataDirError::Random)?;
            Ok(key.iter().map(|b| format!("{b:02x}")).collect())
        })?;
        let bytes = decode_hex(text.trim()).ok_or_else(|| DataDirError::BadKey(path.clone()))?;
        Pseudonymiser::new(&bytes).map_err(|_| DataDirError::BadKey(path))
    }

    /// The service's token signing key pair (`keys/signing-key.pem`,
    /// Ed25519 PKCS#8, mode 0600), created on first use. Tokens minted
    /// with one data directory are refused by another.
    pub fn local_keys(&self) -> Result<LocalKeys, DataDirError> {
        let (path, pem) = self.key_file("signing-key.pem", || {
            LocalKeys::generate_pem().map_err(|_| DataDirError::Random)
        })?;
        LocalKeys::from_pem(&pem).map_err(|_| DataDirError::BadKey(path))
    }

    /// `keys/<name>`'s text, written first (owner only) from `create` when
    /// the file does not exist yet.
    fn key_file(
        &self,
        name: &str,
        create: impl FnOnce() -> Result<String, DataDirError>,
    ) -> Result<(PathBuf, String), DataDirError> {
        let dir = self.root.join("keys");
        let path = dir.join(name);
        let io = |source| DataDirError::Io {
            path: path.clone(),
            source,
        };
        if !path.exists() {
            create_private_dir(&dir).map_err(io)?;
            write_private(&path, create()?.as_bytes()).map_err(io)?;
        }
        let text = std::fs::read_to_string(&path).map_err(io)?;
        Ok((path, text))
    }
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(PRIVATE_DIR);
    }
    builder.create(dir)
}

/// `path` itself may be a symbolic link only at the top (a data directory
/// placed on another volume); nothing inside it may be.
#[cfg(unix)]
fn secure_tree(path: &Path, tightened: &mut Vec<PathBuf>) -> Result<(), DataDirError> {
    secure_entry(path, true, tightened)
}

#[cfg(unix)]
fn secure_entry(path: &Path, top: bool, tightened: &mut Vec<PathBuf>) -> Result<(), DataDirError> {
    use std::os::unix::fs::PermissionsExt;
    let io = |source| DataDirError::Io {
        path: path.to_owned(),
        source,
    };
    let meta = if top {
        std::fs::metadata(path)
    } else {
        std::fs::symlink_metadata(path)
    }
    .map_err(io)?;
    if meta.file_type().is_symlink() {
        return Err(DataDirError::Symlink(path.to_owned()));
    }
    let mode = meta.permissions().mode();
    if mode & GROUP_OR_WORLD != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o7700))
            .map_err(io)?;
        tightened.push(path.to_owned());
    }
    if meta.is_dir() {
        for entry in std::fs::read_dir(path).map_err(io)? {
            secure_entry(&entry.map_err(io)?.path(), false, tightened)?;
        }
    }
    Ok(())
}

#[cfg(not(unix))]
fn secure_tree(_path: &Path, _tightened: &mut Vec<PathBuf>) -> Result<(), DataDirError> {
    Ok(())
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pseudonym_key_is_created_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::open(dir.path()).unwrap();
        let nhs = cpis_domain::NhsNumber::parse("9990000018").unwrap();
        let first = data.pseudonymiser().unwrap().pseudonym(&nhs);
        let again = DataDir::open(dir.path())
            .unwrap()
            .pseudonymiser()
            .unwrap()
            .pseudonym(&nhs);
        assert_eq!(first, again);
    }

    #[test]
    fn the_signing_key_is_created_once_kept_and_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::open(dir.path()).unwrap();
        let claims = cpis_http::CallerClaims {
            job_role: None,
            job_role_name: None,
            sub: "client-1".into(),
            role: "council".into(),
            ods_code: "E09000033".into(),
            rbac: None,
            org_name: None,
            setting: None,
        };
        let token = data
            .local_keys()
            .unwrap()
            .mint(
                &claims,
                time::OffsetDateTime::now_utc(),
                time::Duration::hours(1),
            )
            .unwrap();
        // The same directory, loaded again, keeps accepting its tokens;
        // another directory's keys refuse them.
        let reloaded = DataDir::open(dir.path()).unwrap().local_keys().unwrap();
        assert!(reloaded.verifier().verify(&token).is_some());
        let other = tempfile::tempdir().unwrap();
        let stranger = DataDir::open(other.path()).unwrap().local_keys().unwrap();
        assert!(stranger.verifier().verify(&token).is_none());
        #[cfg(unix)]
        assert_eq!(mode(&dir.path().join("keys/signing-key.pem")), 0o600);
        std::fs::write(dir.path().join("keys/signing-key.pem"), "not a key").unwrap();
        assert!(matches!(data.local_keys(), Err(DataDirError::BadKey(_))));
    }

    #[cfg(unix)]
    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[cfg(unix)]
    #[test]
    fn a_new_data_directory_is_owner_only_and_a_loose_one_is_tightened() {
        use std::os::unix::fs::PermissionsExt;
        let parent = tempfile::tempdir().unwrap();
        let root = parent.path().join("data");
        let data = DataDir::open(&root).unwrap();
        data.pseudonymiser().unwrap();
        drop(data.open_store().unwrap());
        for dir in [root.clone(), root.join("keys"), root.join("outbox")] {
            assert_eq!(mode(&dir), 0o700, "{}", dir.display());
        }
        for file in [
            root.join("keys/pseudonym.key"),
            data.database(),
            data.database_marker(),
        ] {
            assert_eq!(mode(&file), 0o600, "{}", file.display());
        }
        assert!(
            data.secure().unwrap().is_empty(),
            "nothing was created loose"
        );

        // As an older build or a careless copy would leave it.
        let loose = |path: &Path, m| {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(m)).unwrap()
        };
        loose(&root, 0o755);
        loose(&root.join("keys"), 0o750);
        loose(&data.database(), 0o644);
        loose(&root.join("keys/pseudonym.key"), 0o640);
        let reopened = DataDir::open(&root).unwrap();
        let mut tightened = reopened.secure().unwrap();
        assert!(tightened.is_empty(), "open already tightened everything");
        assert_eq!(mode(&root), 0o700);
        assert_eq!(mode(&root.join("keys")), 0o700);
        assert_eq!(mode(&data.database()), 0o600);
        assert_eq!(mode(&root.join("keys/pseudonym.key")), 0o600);
        loose(&data.database(), 0o604);
        tightened = reopened.secure().unwrap();
        assert_eq!(tightened, vec![data.database()]);
    }

    #[cfg(unix)]
    #[test]
    fn a_symbolic_link_inside_the_data_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::open(dir.path()).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("outbox/messages.jsonl"))
            .unwrap();
        assert!(matches!(data.secure(), Err(DataDirError::Symlink(_))));
    }

    #[tokio::test]
    async fn a_database_once_created_is_never_silently_recreated_empty() {
        use cpis_domain::ports::AuditReader;
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::open(dir.path()).unwrap();
        drop(data.open_store().unwrap());
        assert!(data.database_marker().exists());
        // A restart finds it.
        let store = data.open_store().unwrap();
        assert!(store.audit_events(1).await.unwrap().is_empty());
        drop(store);

        std::fs::remove_file(data.database()).unwrap();
        let error = data.open_store().unwrap_err();
        assert!(
            matches!(error, DataDirError::DatabaseMissing { .. }),
            "{error}"
        );
        let message = error.to_string();
        assert!(message.contains("cpis.sqlite3 is missing"), "{message}");
        assert!(message.contains("cpis.sqlite3.created"), "{message}");
        assert!(!data.database().exists(), "no empty database was made");

        // Starting again empty is a deliberate act: delete the marker.
        std::fs::remove_file(data.database_marker()).unwrap();
        drop(data.open_store().unwrap());
        assert!(data.database().exists() && data.database_marker().exists());
    }

    #[test]
    fn a_database_from_before_the_marker_gets_one() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::open(dir.path()).unwrap();
        drop(SqliteStore::open(data.database()).unwrap());
        assert!(!data.database_marker().exists());
        drop(data.open_store().unwrap());
        assert!(data.database_marker().exists());
    }
}
