//! `Retention`: the purge sweep behind TTL.

use std::collections::HashSet;

use cpis_domain::ports::{PurgeReport, Retention, StoreError};
use cpis_domain::AsnCutoffs;
use time::Date;

use super::item::{get_s, opt_date, opt_time, parse_nhs};
use super::keys::{child_pk, key};
use super::{DynamoStore, Item};
use crate::errors::{corrupt, unavailable};

impl Retention for DynamoStore {
    /// In production TTL (`expires_at`) removes plans on their purge day; this
    /// sweep does the same for any TTL has not reached yet, then removes what
    /// belongs to children with no plan left. It scans the table: run it from
    /// a daily schedule or an operator, never on a request path.
    async fn purge(&self, today: Date) -> Result<PurgeReport, StoreError> {
        let mut report = PurgeReport::default();
        let mut expired_plans = Vec::new();
        let mut with_plans: HashSet<String> = HashSet::new();
        let mut child_items: Vec<(String, String)> = Vec::new();
        // Delivered ASNs past their retention (AsnCutoffs); whether their
        // child still holds a plan is known only once the scan is done.
        let mut delivered_asns: Vec<(String, String)> = Vec::new();
        let cutoffs = AsnCutoffs::on(today);
        let mut start: Option<Item> = None;
        loop {
            let out = self
                .client
                .scan()
                .table_name(&self.table)
                .projection_expression(
                    "pk, sk, purge_from, nhs_number, delivered_at, accessed_at, acknowledged_at",
                )
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| unavailable("the purge scan", &e))?;
            for item in out.items() {
                let pk = get_s(item, "pk")?.to_owned();
                let sk = get_s(item, "sk")?.to_owned();
                if sk.starts_with("PLAN#") {
                    let due = opt_date(item, "purge_from")?.is_some_and(|from| from <= today);
                    if due {
                        expired_plans.push(key(pk, sk));
                    } else {
                        with_plans.insert(pk);
                    }
                } else if pk.starts_with("CHILD#") {
                    child_items.push((pk, sk));
                } else if pk.starts_with("ASN#")
                    && item.contains_key("delivered_at")
                    && cutoffs.purges(
                        opt_time(item, "accessed_at")?
                            .ok_or_else(|| corrupt("attribute accessed_at is missing"))?,
                        item.contains_key("acknowledged_at"),
                    )
                {
                    delivered_asns.push((child_pk(&parse_nhs(get_s(item, "nhs_number")?)?), pk));
                }
            }
            start = out.last_evaluated_key;
            if start.is_none() {
                break;
            }
        }
        report.plans = expired_plans.len();
        let mut doomed = expired_plans;
        for (pk, sk) in child_items {
            if with_plans.contains(&pk) {
                continue;
            }
            if sk.starts_with("ACCESS#") {
                report.accesses += 1;
            } else if sk.starts_with("CHECK#") {
                report.receipts += 1;
            }
            doomed.push(key(pk, sk));
        }
        for (child, pk) in delivered_asns {
            if !with_plans.contains(&child) {
                report.notifications += 1;
                doomed.push(key(pk, "ASN"));
            }
        }
        self.delete_all(doomed).await?;
        Ok(report)
    }
}
