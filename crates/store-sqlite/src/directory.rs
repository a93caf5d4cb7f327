//! `AuthorityDirectory`: the councils' directory entries.

use cpis_domain::ports::{AuthorityDirectory, StoreError};
use cpis_domain::{Authority, OdsCode};
use rusqlite::{params, OptionalExtension};

use crate::codec::{from_json, to_json};
use crate::{failed, SqliteStore};

impl AuthorityDirectory for SqliteStore {
    async fn authority(&self, ods_code: &OdsCode) -> Result<Option<Authority>, StoreError> {
        let code = ods_code.as_str().to_owned();
        let entry: Option<String> = self
            .read_point(move |conn| {
                conn.prepare_cached("SELECT entry FROM authorities WHERE ods_code = ?1")
                    .and_then(|mut q| q.query_row([code], |r| r.get(0)).optional())
                    .map_err(failed("reading a directory entry"))
            })
            .await?;
        entry
            .as_deref()
            .map(|e| from_json(e, "a stored directory entry"))
            .transpose()
    }

    async fn put_authority(&self, authority: &Authority) -> Result<(), StoreError> {
        let code = authority.ods_code.as_str().to_owned();
        let entry = to_json(authority, "a directory entry")?;
        self.run(move |conn| {
            conn.prepare_cached(
                "INSERT INTO authorities (ods_code, entry) VALUES (?1, ?2)
                 ON CONFLICT (ods_code) DO UPDATE SET entry = excluded.entry",
            )
            .and_then(|mut q| q.execute(params![code, entry]))
            .map_err(failed("writing a directory entry"))?;
            Ok(())
        })
        .await
    }
}
