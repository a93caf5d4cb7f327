//! The pool of read connections (WAL lets them read beside the writer).

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration as StdDuration;

use cpis_domain::ports::StoreError;
use rusqlite::Connection;

use crate::{existing_file, failed};

/// Idle read connections kept for reuse; more are opened when all are busy.
const IDLE_READERS: usize = 8;

pub(crate) struct Readers {
    pub(crate) path: PathBuf,
    pub(crate) idle: Mutex<Vec<Connection>>,
}

impl Readers {
    pub(crate) fn take(&self) -> Result<Connection, StoreError> {
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        match idle {
            Some(conn) => Ok(conn),
            None => {
                // Never CREATE: a reader must not make an empty file where
                // the database was deleted.
                let conn = Connection::open_with_flags(&self.path, existing_file())
                    .map_err(failed("opening a read connection"))?;
                conn.busy_timeout(StdDuration::from_secs(5))
                    .map_err(failed("setting the busy timeout"))?;
                // A reader that tried to write would be a bug; make it fail loudly.
                conn.pragma_update(None, "query_only", "ON")
                    .map_err(failed("making a read connection read-only"))?;
                Ok(conn)
            }
        }
    }

    pub(crate) fn give_back(&self, conn: Connection) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < IDLE_READERS {
            idle.push(conn);
        }
    }
}
