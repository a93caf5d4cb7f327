//! The key design (crate README): partition and sort keys of every item.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use cpis_domain::{NhsNumber, OdsCode, PlanKey, PlanType};
use time::{Date, OffsetDateTime};

use super::{Item, PLAN_SHARDS};

pub(super) fn child_pk(nhs: &NhsNumber) -> String {
    format!("CHILD#{}", nhs.expose())
}

pub(super) fn council_pk(ods: &OdsCode) -> String {
    format!("LA#{ods}")
}

pub(super) fn asn_pk(id: &str) -> String {
    format!("ASN#{id}")
}

pub(super) fn plan_sk(key: &PlanKey) -> String {
    format!(
        "PLAN#{}#{}#{}",
        key.authority,
        key.plan_type.code(),
        key.start_date
    )
}

/// FNV-1a over the digits: stable across releases (the shard is stored in
/// the key), and consecutive numbers land on different shards.
pub(super) fn plan_shard(nhs: &NhsNumber) -> u64 {
    let hash = nhs
        .expose()
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
    hash % PLAN_SHARDS
}

pub(super) fn plan_listing_pk(ods: &OdsCode, shard: u64) -> String {
    format!("AUTHPLANS#{ods}#{shard}")
}

/// The listing order of the in-memory store: child, type, start (fixed-width
/// fields, so string order is that order).
pub(super) fn plan_listing_sk(nhs: &NhsNumber, plan_type: PlanType, start: Date) -> String {
    format!("{}#{}#{}", nhs.expose(), plan_type.code(), start)
}

pub(super) fn receipt_sk(sequence: u64) -> String {
    format!("RECEIPT#{sequence:020}")
}

pub(super) fn receipt_part_sk(sequence: u64, digest: &str, part: usize) -> String {
    format!("RECEIPT#{sequence:020}#PART#{digest}#{part}")
}

/// Fixed-width nanoseconds: string order is time order (dates after 1970).
pub(super) fn time_key(at: OffsetDateTime) -> String {
    format!("{:020}", at.unix_timestamp_nanos())
}

pub(super) fn key(pk: String, sk: impl Into<String>) -> Item {
    HashMap::from([
        ("pk".to_owned(), AttributeValue::S(pk)),
        ("sk".to_owned(), AttributeValue::S(sk.into())),
    ])
}
