//! `PlanStore`: the `plans` table.

use cpis_domain::dates::iso_date;
use cpis_domain::ports::{Page, PlanStore, StoreError, StoredPlan};
use cpis_domain::{NhsNumber, OdsCode, Plan, PlanCursor, PlanKey, PlanType};
use rusqlite::params;

use crate::codec::{
    collect_plans, parse_date, parse_nhs, plan_row, sequence_text, sql_limit, PLAN_COLUMNS,
};
use crate::{corrupt, failed, SqliteStore};

impl PlanStore for SqliteStore {
    async fn plans_for_child(&self, nhs_number: &NhsNumber) -> Result<Vec<Plan>, StoreError> {
        let nhs = nhs_number.expose();
        self.read_point(move |conn| {
            let rows = conn
                .prepare_cached(&format!(
                    "SELECT {PLAN_COLUMNS} FROM plans WHERE nhs_number = ?1
                     ORDER BY authority, plan_type, start_date"
                ))
                .and_then(|mut q| q.query_map([nhs], plan_row)?.collect::<Result<Vec<_>, _>>())
                .map_err(failed("reading a child's plans"))?;
            collect_plans(rows)
        })
        .await
    }

    async fn plans_for_authority(
        &self,
        authority: &OdsCode,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<Plan>, StoreError> {
        let after = cursor.map(PlanCursor::parse).transpose()?.map(|c| {
            (
                c.nhs_number.expose(),
                c.plan_type.code(),
                iso_date(c.start_date),
            )
        });
        let authority = authority.as_str().to_owned();
        let fetch = sql_limit(limit.saturating_add(1));
        let rows = self
            .read(move |conn| {
                let rows = match after {
                    None => conn
                        .prepare_cached(&format!(
                            "SELECT {PLAN_COLUMNS} FROM plans WHERE authority = ?1
                             ORDER BY nhs_number, plan_type, start_date LIMIT ?2"
                        ))
                        .and_then(|mut q| {
                            q.query_map(params![authority, fetch], plan_row)?
                                .collect::<Result<Vec<_>, _>>()
                        }),
                    Some((nhs, plan_type, start)) => conn
                        .prepare_cached(&format!(
                            "SELECT {PLAN_COLUMNS} FROM plans WHERE authority = ?1
                               AND (nhs_number, plan_type, start_date) > (?2, ?3, ?4)
                             ORDER BY nhs_number, plan_type, start_date LIMIT ?5"
                        ))
                        .and_then(|mut q| {
                            q.query_map(params![authority, nhs, plan_type, start, fetch], plan_row)?
                                .collect::<Result<Vec<_>, _>>()
                        }),
                };
                rows.map_err(failed("listing a council's plans"))
            })
            .await?;
        Ok(Page::of_plans(collect_plans(rows)?, limit))
    }

    async fn plan_keys_for_authority(
        &self,
        authority: &OdsCode,
    ) -> Result<Vec<PlanKey>, StoreError> {
        let code = authority.as_str().to_owned();
        let owner = authority.clone();
        let rows: Vec<(String, String, String)> = self
            .read(move |conn| {
                conn.prepare_cached(
                    "SELECT nhs_number, plan_type, start_date FROM plans WHERE authority = ?1",
                )
                .and_then(|mut q| {
                    q.query_map([code], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                        .collect::<Result<Vec<_>, _>>()
                })
                .map_err(failed("listing a council's plan keys"))
            })
            .await?;
        rows.into_iter()
            .map(|(nhs, plan_type, start)| {
                Ok(PlanKey {
                    authority: owner.clone(),
                    nhs_number: parse_nhs(&nhs)?,
                    plan_type: PlanType::parse(&plan_type)
                        .ok_or_else(|| corrupt("a stored plan type"))?,
                    start_date: parse_date(&start)?,
                })
            })
            .collect()
    }

    async fn apply_changes(
        &self,
        authority: &OdsCode,
        upserts: &[StoredPlan],
        withdrawals: &[PlanKey],
    ) -> Result<usize, StoreError> {
        // Keys of another council are ignored, as the port requires.
        let mut rows = Vec::with_capacity(upserts.len());
        for stored in upserts.iter().filter(|s| &s.plan.authority == authority) {
            let p = &stored.plan;
            rows.push((
                p.nhs_number.expose(),
                p.plan_type.code(),
                iso_date(p.start_date),
                p.end_date.map(iso_date),
                p.delete_date.map(iso_date),
                p.due_date.map(iso_date),
                p.local_id.clone(),
                stored.purge_from.map(iso_date),
                p.upload_sequence.map(sequence_text),
            ));
        }
        let mut doomed = Vec::with_capacity(withdrawals.len());
        for key in withdrawals.iter().filter(|k| &k.authority == authority) {
            doomed.push((
                key.nhs_number.expose(),
                key.plan_type.code(),
                iso_date(key.start_date),
            ));
        }
        let authority = authority.as_str().to_owned();
        self.run(move |conn| {
            let tx = conn.savepoint().map_err(failed("starting an upload"))?;
            {
                let mut upsert = tx
                    .prepare_cached(
                        "INSERT INTO plans (authority, nhs_number, plan_type, start_date, end_date,
                                            delete_date, due_date, local_id, purge_from,
                                            upload_sequence)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
                         ON CONFLICT (authority, nhs_number, plan_type, start_date) DO UPDATE SET
                            end_date = excluded.end_date, delete_date = excluded.delete_date,
                            due_date = excluded.due_date, local_id = excluded.local_id,
                            purge_from = excluded.purge_from,
                            upload_sequence = excluded.upload_sequence",
                    )
                    .map_err(failed("storing plans"))?;
                for (nhs, plan_type, start, end, delete, due, local_id, purge, sequence) in &rows {
                    upsert
                        .execute(params![
                            authority, nhs, plan_type, start, end, delete, due, local_id, purge,
                            sequence
                        ])
                        .map_err(failed("storing a plan"))?;
                }
            }
            let mut withdrawn = 0;
            {
                let mut delete = tx
                    .prepare_cached(
                        "DELETE FROM plans WHERE authority = ?1 AND nhs_number = ?2
                           AND plan_type = ?3 AND start_date = ?4",
                    )
                    .map_err(failed("withdrawing plans"))?;
                for (nhs, plan_type, start) in &doomed {
                    withdrawn += delete
                        .execute(params![authority, nhs, plan_type, start])
                        .map_err(failed("withdrawing a plan"))?;
                }
            }
            tx.commit().map_err(failed("committing an upload"))?;
            Ok(withdrawn)
        })
        .await
    }
}
