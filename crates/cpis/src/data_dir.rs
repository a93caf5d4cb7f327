//! The data directory: the SQLite database, the local keys and the outbox.

use std::io::Write;
use std::path::{Path, PathBuf};

use cpis_domain::Pseudonymiser;

#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    #[error("cannot use the data directory {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the pseudonymisation key in {0} is damaged: delete it only if no audit trail depends on it")]
    BadKey(PathBuf),
    #[error("no randomness available from the operating system")]
    Random,
}

#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    pub fn open(root: &Path) -> Result<Self, DataDirError> {
        std::fs::create_dir_all(root).map_err(|source| DataDirError::Io {
            path: root.to_owned(),
            source,
        })?;
        Ok(Self {
            root: root.to_owned(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn database(&self) -> PathBuf {
        self.root.join("cpis.sqlite3")
    }

    pub fn outbox(&self) -> PathBuf {
        self.root.join("outbox")
    }

    /// The key that pseudonymises NHS numbers in the audit trail, created on
    /// first use (32 random bytes, hex, mode 0600).
    pub fn pseudonymiser(&self) -> Result<Pseudonymiser, DataDirError> {
        let dir = self.root.join("keys");
        let path = dir.join("pseudonym.key");
        let io = |source| DataDirError::Io {
            path: path.clone(),
            source,
        };
        if !path.exists() {
            std::fs::create_dir_all(&dir).map_err(io)?;
            let mut key = [0u8; 32];
            getrandom::fill(&mut key).map_err(|_| DataDirError::Random)?;
            let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
            write_private(&path, hex.as_bytes()).map_err(io)?;
        }
        let text = std::fs::read_to_string(&path).map_err(io)?;
        let bytes = decode_hex(text.trim()).ok_or_else(|| DataDirError::BadKey(path.clone()))?;
        Pseudonymiser::new(&bytes).map_err(|_| DataDirError::BadKey(path))
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
}
