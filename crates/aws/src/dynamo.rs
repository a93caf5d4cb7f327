//! The DynamoDB store: every storage port on one service table (single-table
//! design, partitioned by child) and an append-only audit table. The key
//! design is documented in the crate README; keep the two in step.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration as StdDuration;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, DeleteRequest, KeysAndAttributes, Put, PutRequest, ReturnValue,
    TransactWriteItem, Update, WriteRequest,
};
use aws_sdk_dynamodb::Client;
use cpis_domain::ports::{
    AccessLog, AccessWrite, AsnOutbox, AuditReader, AuditTrail, AuthorityDirectory, CheckReceipts,
    DeliveryStart, NotificationInbox, Page, PlanStore, PurgeReport, Retention, StoreError,
    StoredPlan, UploadLedger, UploadReceipt,
};
use cpis_domain::sequencing::{HeadState, LedgerHead};
use cpis_domain::{
    AccessRecord, Accessor, AccessorKind, Acknowledgement, Asn, AsnCutoffs, AuditEvent, Authority,
    NhsNumber, OdsCode, Plan, PlanKey, PlanType, Rbac,
};
use time::{Date, Duration, OffsetDateTime, Time};

use crate::errors::{corrupt, unavailable};
use crate::sns::TopicSync;

type Item = HashMap<String, AttributeValue>;

/// How many gsi1 partitions one council's plan listing is spread over, so
/// that a council's bulk upload never writes to a single index partition.
pub const PLAN_SHARDS: u64 = 8;
/// BatchWriteItem takes at most 25 requests, BatchGetItem at most 100 keys.
const BATCH_WRITE_MAX: usize = 25;
const BATCH_GET_MAX: usize = 100;
/// Attempts at a batch's unprocessed items before the store reports itself unavailable.
const BATCH_ATTEMPTS: u32 = 8;
/// TransactWriteItems takes at most 100 actions: the collapse item, the access, the ASNs.
const TRANSACTION_MAX: usize = 100;
/// An item holds at most 400 KB; a large acknowledgement is split in parts below that.
const RECEIPT_PART_BYTES: usize = 300_000;
/// The collapse item outlives the 24-hour window by a margin, then TTL removes it.
const COLLAPSE_ITEM_LIFETIME: Duration = Duration::days(3);
/// The outbox's sparse gsi2 partition: present only while an ASN is undelivered.
const PENDING: &str = "PENDING";
/// An ASN id from a queue message longer than this cannot be ours (poison).
const MAX_ASN_ID: usize = 128;

/// Every storage port on DynamoDB. Cheap to clone: the client is shared.
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
    audit_table: String,
    topics: Option<TopicSync>,
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>, audit_table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            audit_table: audit_table.into(),
            topics: None,
        }
    }

    /// Keeps each council's SNS subscriptions in step with its directory
    /// entry on every `put_authority` (plan-upload only).
    pub fn with_topic_sync(mut self, topics: TopicSync) -> Self {
        self.topics = Some(topics);
        self
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    pub fn audit_table(&self) -> &str {
        &self.audit_table
    }
}

// ---------------------------------------------------------------- keys

fn child_pk(nhs: &NhsNumber) -> String {
    format!("CHILD#{}", nhs.expose())
}

fn council_pk(ods: &OdsCode) -> String {
    format!("LA#{ods}")
}

fn asn_pk(id: &str) -> String {
    format!("ASN#{id}")
}

fn plan_sk(key: &PlanKey) -> String {
    format!(
        "PLAN#{}#{}#{}",
        key.authority,
        key.plan_type.code(),
        key.start_date
    )
}

/// FNV-1a over the digits: stable across releases (the shard is stored in
/// the key), and consecutive numbers land on different shards.
fn plan_shard(nhs: &NhsNumber) -> u64 {
    let hash = nhs
        .expose()
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
    hash % PLAN_SHARDS
}

fn plan_listing_pk(ods: &OdsCode, shard: u64) -> String {
    format!("AUTHPLANS#{ods}#{shard}")
}

/// The listing order of the in-memory store: child, type, start (fixed-width
/// fields, so string order is that order).
fn plan_listing_sk(nhs: &NhsNumber, plan_type: PlanType, start: Date) -> String {
    format!("{}#{}#{}", nhs.expose(), plan_type.code(), start)
}

fn receipt_sk(sequence: u64) -> String {
    format!("RECEIPT#{sequence:020}")
}

fn receipt_part_sk(sequence: u64, digest: &str, part: usize) -> String {
    format!("RECEIPT#{sequence:020}#PART#{digest}#{part}")
}

/// Fixed-width nanoseconds: string order is time order (dates after 1970).
fn time_key(at: OffsetDateTime) -> String {
    format!("{:020}", at.unix_timestamp_nanos())
}

fn key(pk: String, sk: impl Into<String>) -> Item {
    HashMap::from([
        ("pk".to_owned(), AttributeValue::S(pk)),
        ("sk".to_owned(), AttributeValue::S(sk.into())),
    ])
}

// ---------------------------------------------------------------- attributes

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn nanos(at: OffsetDateTime) -> AttributeValue {
    n(at.unix_timestamp_nanos())
}

fn epoch_seconds_of(day: Date) -> i64 {
    day.with_time(Time::MIDNIGHT).assume_utc().unix_timestamp()
}

fn get_s<'a>(item: &'a Item, name: &str) -> Result<&'a str, StoreError> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
        .ok_or_else(|| corrupt(&format!("attribute {name} is missing")))
}

fn opt_s<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

fn opt_n(item: &Item, name: &str) -> Result<Option<i128>, StoreError> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .map(|raw| {
            raw.parse::<i128>()
                .map_err(|_| corrupt(&format!("attribute {name} is not a whole number")))
        })
        .transpose()
}

fn get_n(item: &Item, name: &str) -> Result<i128, StoreError> {
    opt_n(item, name)?.ok_or_else(|| corrupt(&format!("attribute {name} is missing")))
}

fn opt_time(item: &Item, name: &str) -> Result<Option<OffsetDateTime>, StoreError> {
    opt_n(item, name)?
        .map(|ns| {
            OffsetDateTime::from_unix_timestamp_nanos(ns)
                .map_err(|_| corrupt(&format!("attribute {name} is out of range")))
        })
        .transpose()
}

fn get_time(item: &Item, name: &str) -> Result<OffsetDateTime, StoreError> {
    opt_time(item, name)?.ok_or_else(|| corrupt(&format!("attribute {name} is missing")))
}

fn parse_date(raw: &str, name: &str) -> Result<Date, StoreError> {
    cpis_domain::upload::parse_iso_date(raw)
        .ok_or_else(|| corrupt(&format!("attribute {name} is not a date")))
}

fn opt_date(item: &Item, name: &str) -> Result<Option<Date>, StoreError> {
    opt_s(item, name)
        .map(|raw| parse_date(raw, name))
        .transpose()
}

fn get_strings(item: &Item, name: &str) -> Result<Vec<String>, StoreError> {
    match item.get(name) {
        None => Ok(Vec::new()),
        Some(AttributeValue::L(values)) => values
            .iter()
            .map(|v| {
                v.as_s()
                    .cloned()
                    .map_err(|_| corrupt(&format!("attribute {name} holds a non-string")))
            })
            .collect(),
        Some(_) => Err(corrupt(&format!("attribute {name} is not a list"))),
    }
}

fn strings(values: &[String]) -> AttributeValue {
    AttributeValue::L(values.iter().cloned().map(AttributeValue::S).collect())
}

fn parse_nhs(raw: &str) -> Result<NhsNumber, StoreError> {
    NhsNumber::parse(raw).map_err(|_| corrupt("a stored NHS number is not valid"))
}

fn parse_ods(raw: &str) -> Result<OdsCode, StoreError> {
    OdsCode::parse(raw).map_err(|_| corrupt("a stored ODS code is not valid"))
}

fn parse_plan_type(raw: &str) -> Result<PlanType, StoreError> {
    PlanType::parse(raw).ok_or_else(|| corrupt("a stored plan type is not known"))
}

fn build_err(_: aws_sdk_dynamodb::error::BuildError) -> StoreError {
    StoreError::Unavailable("a DynamoDB request could not be built".to_owned())
}

fn is_conditional_failure<E, R>(err: &SdkError<E, R>) -> bool
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata,
{
    err.as_service_error()
        .and_then(|e| e.code())
        .is_some_and(|code| code == "ConditionalCheckFailedException")
}

// ---------------------------------------------------------------- item shapes

fn plan_item(stored: &StoredPlan) -> Item {
    let plan = &stored.plan;
    let mut item = key(child_pk(&plan.nhs_number), plan_sk(&plan.key()));
    item.insert("entity".into(), s("PLAN"));
    item.insert("authority".into(), s(plan.authority.as_str()));
    item.insert("nhs_number".into(), s(plan.nhs_number.expose()));
    item.insert("plan_type".into(), s(plan.plan_type.code()));
    item.insert("start_date".into(), s(plan.start_date.to_string()));
    for (name, date) in [
        ("end_date", plan.end_date),
        ("delete_date", plan.delete_date),
        ("due_date", plan.due_date),
        ("purge_from", stored.purge_from),
    ] {
        if let Some(date) = date {
            item.insert(name.into(), s(date.to_string()));
        }
    }
    if let Some(local_id) = &plan.local_id {
        item.insert("local_id".into(), s(local_id.as_str()));
    }
    if let Some(purge_from) = stored.purge_from {
        item.insert("expires_at".into(), n(epoch_seconds_of(purge_from)));
    }
    let shard = plan_shard(&plan.nhs_number);
    item.insert("gsi1pk".into(), s(plan_listing_pk(&plan.authority, shard)));
    item.insert(
        "gsi1sk".into(),
        s(plan_listing_sk(
            &plan.nhs_number,
            plan.plan_type,
            plan.start_date,
        )),
    );
    item
}

fn plan_from_item(item: &Item) -> Result<Plan, StoreError> {
    Ok(Plan {
        authority: parse_ods(get_s(item, "authority")?)?,
        nhs_number: parse_nhs(get_s(item, "nhs_number")?)?,
        plan_type: parse_plan_type(get_s(item, "plan_type")?)?,
        start_date: parse_date(get_s(item, "start_date")?, "start_date")?,
        end_date: opt_date(item, "end_date")?,
        delete_date: opt_date(item, "delete_date")?,
        due_date: opt_date(item, "due_date")?,
        local_id: opt_s(item, "local_id").map(str::to_owned),
    })
}

fn plan_key_from_item(item: &Item) -> Result<PlanKey, StoreError> {
    Ok(PlanKey {
        authority: parse_ods(get_s(item, "authority")?)?,
        nhs_number: parse_nhs(get_s(item, "nhs_number")?)?,
        plan_type: parse_plan_type(get_s(item, "plan_type")?)?,
        start_date: parse_date(get_s(item, "start_date")?, "start_date")?,
    })
}

fn plan_cursor(plan: &Plan) -> String {
    format!(
        "{}.{}.{}",
        plan.nhs_number.expose(),
        plan.plan_type.code(),
        plan.start_date
    )
}

/// The cursor is the listing key of the last plan returned.
fn listing_sk_from_cursor(cursor: &str) -> Result<String, StoreError> {
    let mut parts = cursor.split('.');
    let (Some(nhs), Some(plan_type), Some(start), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(StoreError::InvalidCursor);
    };
    let nhs = NhsNumber::parse(nhs).map_err(|_| StoreError::InvalidCursor)?;
    let plan_type = PlanType::parse(plan_type).ok_or(StoreError::InvalidCursor)?;
    let start = cpis_domain::upload::parse_iso_date(start).ok_or(StoreError::InvalidCursor)?;
    Ok(plan_listing_sk(&nhs, plan_type, start))
}

fn authority_item(authority: &Authority) -> Item {
    let mut item = key(council_pk(&authority.ods_code), "DIRECTORY");
    item.insert("entity".into(), s("DIRECTORY"));
    item.insert("ods_code".into(), s(authority.ods_code.as_str()));
    item.insert("name".into(), s(authority.name.as_str()));
    item.insert(
        "office_hours_phone".into(),
        s(authority.office_hours_phone.as_str()),
    );
    item.insert(
        "emergency_duty_phone".into(),
        s(authority.emergency_duty_phone.as_str()),
    );
    item.insert("notify_emails".into(), strings(&authority.notify_emails));
    item.insert("notify_sms".into(), strings(&authority.notify_sms));
    item
}

fn authority_from_item(item: &Item) -> Result<Authority, StoreError> {
    Ok(Authority {
        ods_code: parse_ods(get_s(item, "ods_code")?)?,
        name: get_s(item, "name")?.to_owned(),
        office_hours_phone: get_s(item, "office_hours_phone")?.to_owned(),
        emergency_duty_phone: get_s(item, "emergency_duty_phone")?.to_owned(),
        notify_emails: get_strings(item, "notify_emails")?,
        notify_sms: get_strings(item, "notify_sms")?,
    })
}

fn access_item(access: &AccessRecord) -> Item {
    let sk = format!("ACCESS#{}#{}", time_key(access.accessed_at), access.id);
    let mut item = key(child_pk(&access.nhs_number), sk);
    let a = &access.accessor;
    item.insert("entity".into(), s("ACCESS"));
    item.insert("id".into(), s(access.id.as_str()));
    item.insert("nhs_number".into(), s(access.nhs_number.expose()));
    item.insert("accessed_at".into(), nanos(access.accessed_at));
    item.insert(
        "accessor_kind".into(),
        s(match a.kind {
            AccessorKind::User => "user",
            AccessorKind::System => "system",
        }),
    );
    item.insert("user_id".into(), s(a.user_id.as_str()));
    item.insert("rbac".into(), s(a.rbac.code()));
    item.insert("organisation_ods".into(), s(a.organisation_ods.as_str()));
    item.insert("organisation_name".into(), s(a.organisation_name.as_str()));
    item.insert("setting".into(), s(a.setting.as_str()));
    item
}

fn access_from_item(item: &Item) -> Result<AccessRecord, StoreError> {
    Ok(AccessRecord {
        id: get_s(item, "id")?.to_owned(),
        nhs_number: parse_nhs(get_s(item, "nhs_number")?)?,
        accessed_at: get_time(item, "accessed_at")?,
        accessor: Accessor {
            kind: match get_s(item, "accessor_kind")? {
                "user" => AccessorKind::User,
                "system" => AccessorKind::System,
                _ => return Err(corrupt("a stored accessor kind is not known")),
            },
            user_id: get_s(item, "user_id")?.to_owned(),
            rbac: Rbac::parse(get_s(item, "rbac")?)
                .ok_or_else(|| corrupt("a stored RBAC code is not known"))?,
            organisation_ods: parse_ods(get_s(item, "organisation_ods")?)?,
            organisation_name: get_s(item, "organisation_name")?.to_owned(),
            setting: get_s(item, "setting")?.to_owned(),
        },
    })
}

fn asn_item(asn: &Asn) -> Result<Item, StoreError> {
    let body = serde_json::to_string(asn).map_err(|_| corrupt("an ASN could not be encoded"))?;
    let order = format!("{}#{}", time_key(asn.accessed_at), asn.id);
    let mut item = key(asn_pk(&asn.id), "ASN");
    item.insert("entity".into(), s("ASN"));
    item.insert("asn".into(), s(body));
    item.insert("authority".into(), s(asn.authority.as_str()));
    item.insert("nhs_number".into(), s(asn.nhs_number.expose()));
    item.insert("accessed_at".into(), nanos(asn.accessed_at));
    item.insert("gsi1pk".into(), s(format!("INBOX#{}", asn.authority)));
    item.insert("gsi1sk".into(), s(order.clone()));
    item.insert("gsi2pk".into(), s(PENDING));
    item.insert("gsi2sk".into(), s(order));
    Ok(item)
}

fn asn_from_item(item: &Item) -> Result<Asn, StoreError> {
    let mut asn: Asn = serde_json::from_str(get_s(item, "asn")?)
        .map_err(|_| corrupt("a stored ASN could not be read"))?;
    asn.acknowledged_at = opt_time(item, "acknowledged_at")?;
    Ok(asn)
}

/// The ASNs of `items` this build can read. An unreadable one (another
/// version wrote it, or a hand edit) is left where it is and logged at error
/// level, which alarms: it must not hide the council's other notifications
/// or hold up the ASNs claimed with it.
fn readable_asns<'a>(items: impl IntoIterator<Item = &'a Item>) -> Vec<Asn> {
    items
        .into_iter()
        .filter_map(|item| match asn_from_item(item) {
            Ok(asn) => Some(asn),
            Err(error) => {
                let asn_id = get_s(item, "pk").map_or("", |pk| pk.trim_start_matches("ASN#"));
                tracing::error!(asn_id, %error, "a stored ASN cannot be read; it is left undelivered and unlisted");
                None
            }
        })
        .collect()
}

/// The cursor after an inbox item, from its index key alone (`<nanos>#<id>`),
/// so that it can be made even when the item itself cannot be read.
fn inbox_cursor_from_item(item: &Item) -> Result<String, StoreError> {
    let (nanos, id) = get_s(item, "gsi1sk")?
        .split_once('#')
        .ok_or_else(|| corrupt("an inbox index key"))?;
    let nanos: i128 = nanos.parse().map_err(|_| corrupt("an inbox index key"))?;
    Ok(format!("{nanos}.{id}"))
}

fn inbox_sk_from_cursor(cursor: &str) -> Result<String, StoreError> {
    let (nanos, id) = cursor.split_once('.').ok_or(StoreError::InvalidCursor)?;
    let nanos: i128 = nanos.parse().map_err(|_| StoreError::InvalidCursor)?;
    let at =
        OffsetDateTime::from_unix_timestamp_nanos(nanos).map_err(|_| StoreError::InvalidCursor)?;
    Ok(format!("{}#{}", time_key(at), id))
}

// ---------------------------------------------------------------- shared operations

impl DynamoStore {
    /// Writes every request, retrying what DynamoDB left unprocessed with
    /// exponential backoff; fails only if some are still unprocessed at the end.
    async fn batch_write(&self, requests: Vec<WriteRequest>) -> Result<(), StoreError> {
        for chunk in requests.chunks(BATCH_WRITE_MAX) {
            let mut pending = chunk.to_vec();
            let mut attempt = 0;
            while !pending.is_empty() {
                if attempt > 0 {
                    backoff(attempt).await;
                }
                if attempt == BATCH_ATTEMPTS {
                    return Err(StoreError::Unavailable(
                        "a batch write stayed unprocessed after every retry".to_owned(),
                    ));
                }
                attempt += 1;
                let out = self
                    .client
                    .batch_write_item()
                    .request_items(self.table.clone(), pending)
                    .send()
                    .await
                    .map_err(|e| unavailable("a batch write", &e))?;
                pending = out
                    .unprocessed_items
                    .and_then(|mut left| left.remove(&self.table))
                    .unwrap_or_default();
            }
        }
        Ok(())
    }

    /// Which of the keys exist (consistent reads, unprocessed keys retried).
    async fn existing_keys(&self, keys: Vec<Item>) -> Result<usize, StoreError> {
        let mut found = 0;
        for chunk in keys.chunks(BATCH_GET_MAX) {
            let mut pending = chunk.to_vec();
            let mut attempt = 0;
            while !pending.is_empty() {
                if attempt > 0 {
                    backoff(attempt).await;
                }
                if attempt == BATCH_ATTEMPTS {
                    return Err(StoreError::Unavailable(
                        "a batch read stayed unprocessed after every retry".to_owned(),
                    ));
                }
                attempt += 1;
                let request = KeysAndAttributes::builder()
                    .set_keys(Some(pending))
                    .projection_expression("pk")
                    .consistent_read(true)
                    .build()
                    .map_err(build_err)?;
                let out = self
                    .client
                    .batch_get_item()
                    .request_items(self.table.clone(), request)
                    .send()
                    .await
                    .map_err(|e| unavailable("a batch read", &e))?;
                found += out
                    .responses
                    .as_ref()
                    .and_then(|r| r.get(&self.table))
                    .map_or(0, Vec::len);
                pending = out
                    .unprocessed_keys
                    .and_then(|mut left| left.remove(&self.table))
                    .map(|k| k.keys)
                    .unwrap_or_default();
            }
        }
        Ok(found)
    }

    async fn delete_all(&self, keys: Vec<Item>) -> Result<(), StoreError> {
        let requests = keys
            .into_iter()
            .map(|k| {
                DeleteRequest::builder()
                    .set_key(Some(k))
                    .build()
                    .map(|d| WriteRequest::builder().delete_request(d).build())
                    .map_err(build_err)
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.batch_write(requests).await
    }

    async fn get(&self, key: Item) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| unavailable("a read", &e))?;
        Ok(out.item)
    }

    /// Sets `attribute` (nanoseconds) to `at` unless it holds a later time
    /// already: a late writer never moves it back.
    async fn move_time_forward(
        &self,
        item_key: Item,
        attribute: &str,
        entity: &str,
        at: OffsetDateTime,
        what: &str,
    ) -> Result<(), StoreError> {
        let written = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(item_key))
            .update_expression("SET #at = :at, entity = :entity")
            .condition_expression("attribute_not_exists(#at) OR #at < :at")
            .expression_attribute_names("#at", attribute)
            .expression_attribute_values(":at", nanos(at))
            .expression_attribute_values(":entity", s(entity))
            .send()
            .await;
        match written {
            Ok(_) => Ok(()),
            Err(e) if is_conditional_failure(&e) => Ok(()),
            Err(e) => Err(unavailable(what, &e)),
        }
    }

    /// Every item of one partition whose sort key begins with `prefix` (all
    /// of them for ""), in order.
    async fn query_prefix(
        &self,
        pk: String,
        prefix: &str,
        forward: bool,
        limit: Option<usize>,
    ) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let mut query = self
                .client
                .query()
                .table_name(&self.table)
                .expression_attribute_values(":pk", s(pk.clone()))
                .scan_index_forward(forward)
                .consistent_read(true)
                .set_exclusive_start_key(start);
            // DynamoDB refuses an empty `begins_with`: "" means the whole partition.
            query = if prefix.is_empty() {
                query.key_condition_expression("pk = :pk")
            } else {
                query
                    .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                    .expression_attribute_values(":prefix", s(prefix))
            };
            if let Some(limit) = limit {
                query = query.limit(i32::try_from(limit - items.len()).unwrap_or(i32::MAX));
            }
            let out = query.send().await.map_err(|e| unavailable("a query", &e))?;
            items.extend(out.items.unwrap_or_default());
            start = out.last_evaluated_key;
            if start.is_none() || limit.is_some_and(|l| items.len() >= l) {
                return Ok(items);
            }
        }
    }

    /// Up to `limit` items of one gsi1 partition after `after`, in key order.
    async fn query_gsi1(
        &self,
        pk: String,
        after: Option<&str>,
        forward: bool,
        limit: usize,
    ) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        let mut start: Option<Item> = None;
        let condition = match (after, forward) {
            (None, _) => "gsi1pk = :pk",
            (Some(_), true) => "gsi1pk = :pk AND gsi1sk > :after",
            (Some(_), false) => "gsi1pk = :pk AND gsi1sk < :after",
        };
        loop {
            let mut query = self
                .client
                .query()
                .table_name(&self.table)
                .index_name("gsi1")
                .key_condition_expression(condition)
                .expression_attribute_values(":pk", s(pk.clone()))
                .scan_index_forward(forward)
                .limit(i32::try_from(limit - items.len()).unwrap_or(i32::MAX))
                .set_exclusive_start_key(start);
            if let Some(after) = after {
                query = query.expression_attribute_values(":after", s(after));
            }
            let out = query
                .send()
                .await
                .map_err(|e| unavailable("an index query", &e))?;
            items.extend(out.items.unwrap_or_default());
            start = out.last_evaluated_key;
            if start.is_none() || items.len() >= limit {
                return Ok(items);
            }
        }
    }

    async fn receipt_parts(
        &self,
        authority: &OdsCode,
        sequence: u64,
        head: &Item,
    ) -> Result<UploadReceipt, StoreError> {
        let digest = get_s(head, "digest")?.to_owned();
        let parts = usize::try_from(get_n(head, "parts")?)
            .map_err(|_| corrupt("a receipt's part count is not valid"))?;
        let mut json = get_s(head, "acknowledgement")?.to_owned();
        for part in 1..parts {
            let item = self
                .get(key(
                    council_pk(authority),
                    receipt_part_sk(sequence, &digest, part),
                ))
                .await?
                .ok_or_else(|| corrupt("a part of a stored receipt is missing"))?;
            json.push_str(get_s(&item, "acknowledgement")?);
        }
        let acknowledgement: Acknowledgement = serde_json::from_str(&json)
            .map_err(|_| corrupt("a stored acknowledgement could not be read"))?;
        Ok(UploadReceipt {
            sequence,
            digest,
            acknowledgement,
        })
    }
}

/// 50 ms, 100 ms, 200 ms … capped at 2 s, with jitter from the clock so that
/// concurrent writers do not retry in step.
async fn backoff(attempt: u32) {
    let base = 50u64.saturating_mul(1 << attempt.min(6)).min(2_000);
    let jitter = u64::from(OffsetDateTime::now_utc().nanosecond()) % (base / 2 + 1);
    tokio::time::sleep(StdDuration::from_millis(base / 2 + jitter)).await;
}

/// Splits at character boundaries into pieces of at most `max` bytes.
fn split_utf8(text: &str, max: usize) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut rest = text;
    while rest.len() > max {
        let mut cut = max;
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        let (head, tail) = rest.split_at(cut);
        parts.push(head);
        rest = tail;
    }
    parts.push(rest);
    parts
}

// ---------------------------------------------------------------- ports

impl PlanStore for DynamoStore {
    async fn plans_for_child(&self, nhs_number: &NhsNumber) -> Result<Vec<Plan>, StoreError> {
        self.query_prefix(child_pk(nhs_number), "PLAN#", true, None)
            .await?
            .iter()
            .map(plan_from_item)
            .collect()
    }

    async fn plans_for_authority(
        &self,
        authority: &OdsCode,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<Plan>, StoreError> {
        let after = cursor.map(listing_sk_from_cursor).transpose()?;
        // Each shard is read in order up to one more than a page; the merge
        // of the shards' heads is the page.
        let mut merged: BTreeMap<String, Item> = BTreeMap::new();
        for shard in 0..PLAN_SHARDS {
            let items = self
                .query_gsi1(
                    plan_listing_pk(authority, shard),
                    after.as_deref(),
                    true,
                    limit + 1,
                )
                .await?;
            for item in items {
                merged.insert(get_s(&item, "gsi1sk")?.to_owned(), item);
            }
        }
        let mut items = merged
            .values()
            .take(limit + 1)
            .map(plan_from_item)
            .collect::<Result<Vec<_>, _>>()?;
        let next_cursor = if items.len() > limit {
            items.truncate(limit);
            items.last().map(plan_cursor)
        } else {
            None
        };
        Ok(Page { items, next_cursor })
    }

    async fn plan_keys_for_authority(
        &self,
        authority: &OdsCode,
    ) -> Result<Vec<PlanKey>, StoreError> {
        let mut keys = Vec::new();
        for shard in 0..PLAN_SHARDS {
            let mut start: Option<Item> = None;
            loop {
                let out = self
                    .client
                    .query()
                    .table_name(&self.table)
                    .index_name("gsi1")
                    .key_condition_expression("gsi1pk = :pk")
                    .expression_attribute_values(":pk", s(plan_listing_pk(authority, shard)))
                    .projection_expression("authority, nhs_number, plan_type, start_date")
                    .set_exclusive_start_key(start)
                    .send()
                    .await
                    .map_err(|e| unavailable("an index query", &e))?;
                for item in out.items() {
                    keys.push(plan_key_from_item(item)?);
                }
                start = out.last_evaluated_key;
                if start.is_none() {
                    break;
                }
            }
        }
        Ok(keys)
    }

    async fn apply_changes(
        &self,
        authority: &OdsCode,
        upserts: &[StoredPlan],
        withdrawals: &[PlanKey],
    ) -> Result<usize, StoreError> {
        // One write per identity (a batch may not name a key twice); the last
        // upsert of an identity wins, as it would applied in order.
        let mut puts: BTreeMap<PlanKey, &StoredPlan> = BTreeMap::new();
        for stored in upserts.iter().filter(|s| &s.plan.authority == authority) {
            puts.insert(stored.plan.key(), stored);
        }
        let requests = puts
            .values()
            .map(|stored| {
                PutRequest::builder()
                    .set_item(Some(plan_item(stored)))
                    .build()
                    .map(|p| WriteRequest::builder().put_request(p).build())
                    .map_err(build_err)
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.batch_write(requests).await?;

        let withdraw: HashSet<&PlanKey> = withdrawals
            .iter()
            .filter(|k| &k.authority == authority)
            .collect();
        let keys: Vec<Item> = withdraw
            .iter()
            .map(|k| key(child_pk(&k.nhs_number), plan_sk(k)))
            .collect();
        let existed = self.existing_keys(keys.clone()).await?;
        self.delete_all(keys).await?;
        Ok(existed)
    }
}

impl UploadLedger for DynamoStore {
    async fn receipt(
        &self,
        authority: &OdsCode,
        sequence: u64,
    ) -> Result<Option<UploadReceipt>, StoreError> {
        match self
            .get(key(council_pk(authority), receipt_sk(sequence)))
            .await?
        {
            Some(head) => Ok(Some(self.receipt_parts(authority, sequence, &head).await?)),
            None => Ok(None),
        }
    }

    async fn record_receipt(
        &self,
        authority: &OdsCode,
        receipt: &UploadReceipt,
    ) -> Result<UploadReceipt, StoreError> {
        let json = serde_json::to_string(&receipt.acknowledgement)
            .map_err(|_| corrupt("an acknowledgement could not be encoded"))?;
        let parts = split_utf8(&json, RECEIPT_PART_BYTES);
        // Later parts first, keyed by digest, so a head that wins the race
        // below always finds its own parts.
        for (index, part) in parts.iter().enumerate().skip(1) {
            let mut item = key(
                council_pk(authority),
                receipt_part_sk(receipt.sequence, &receipt.digest, index),
            );
            item.insert("acknowledgement".into(), s(*part));
            self.client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item))
                .send()
                .await
                .map_err(|e| unavailable("a receipt write", &e))?;
        }
        let mut head = key(council_pk(authority), receipt_sk(receipt.sequence));
        head.insert("entity".into(), s("RECEIPT"));
        head.insert("sequence".into(), n(receipt.sequence));
        head.insert("digest".into(), s(receipt.digest.as_str()));
        head.insert("parts".into(), n(parts.len()));
        head.insert(
            "acknowledgement".into(),
            s(parts.first().copied().unwrap_or_default()),
        );
        let written = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(head))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match written {
            Ok(_) => Ok(receipt.clone()),
            Err(e) if is_conditional_failure(&e) => self
                .receipt(authority, receipt.sequence)
                .await?
                .ok_or_else(|| corrupt("a receipt vanished while it was being read")),
            Err(e) => Err(unavailable("a receipt write", &e)),
        }
    }

    async fn ledger_head(&self, authority: &OdsCode) -> Result<Option<LedgerHead>, StoreError> {
        if let Some(item) = self.get(key(council_pk(authority), LEDGER_SK)).await? {
            let sequence = u64::try_from(get_n(&item, "sequence")?)
                .map_err(|_| corrupt("a ledger sequence is out of range"))?;
            let version = u64::try_from(get_n(&item, "version")?)
                .map_err(|_| corrupt("a ledger version is out of range"))?;
            let state = match opt_time(&item, "lease_until")? {
                None => HeadState::Done,
                Some(lease_until) => HeadState::Pending { lease_until },
            };
            return Ok(Some(LedgerHead {
                sequence,
                digest: get_s(&item, "digest")?.to_owned(),
                state,
                version,
            }));
        }
        // A council whose receipts predate the ledger: its highest receipt,
        // done, at version 0 (which swaps only while no head item exists).
        let newest = self
            .query_prefix(council_pk(authority), "RECEIPT#", false, Some(1))
            .await?;
        newest
            .first()
            .map(|item| {
                let sequence = get_s(item, "sk")?
                    .get(8..28)
                    .and_then(|digits| digits.parse::<u64>().ok())
                    .ok_or_else(|| corrupt("a receipt key is not valid"))?;
                Ok(LedgerHead {
                    sequence,
                    digest: String::new(),
                    state: HeadState::Done,
                    version: 0,
                })
            })
            .transpose()
    }

    async fn swap_ledger_head(
        &self,
        authority: &OdsCode,
        expected: Option<&LedgerHead>,
        new: &LedgerHead,
    ) -> Result<bool, StoreError> {
        let mut item = key(council_pk(authority), LEDGER_SK);
        item.insert("entity".into(), s("LEDGER"));
        item.insert("sequence".into(), n(new.sequence));
        item.insert("digest".into(), s(new.digest.as_str()));
        item.insert("version".into(), n(new.version));
        if let HeadState::Pending { lease_until } = new.state {
            item.insert("lease_until".into(), nanos(lease_until));
        }
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item));
        // One conditional write: atomic across every Lambda instance.
        let put = match expected.map(|h| h.version).filter(|v| *v > 0) {
            None => put.condition_expression("attribute_not_exists(pk)"),
            Some(version) => put
                .condition_expression("version = :expected")
                .expression_attribute_values(":expected", n(version)),
        };
        match put.send().await {
            Ok(_) => Ok(true),
            Err(e) if is_conditional_failure(&e) => Ok(false),
            Err(e) => Err(unavailable("a ledger head write", &e)),
        }
    }

    async fn retire_receipts_above(
        &self,
        authority: &OdsCode,
        sequence: u64,
    ) -> Result<usize, StoreError> {
        // Heads and parts of every sequence above: "RECEIPT#" then 20 digits
        // sorts numerically, and '~' sorts after every digit.
        let Some(from) = sequence.checked_add(1) else {
            return Ok(0);
        };
        let mut keys = Vec::new();
        let mut heads = 0;
        let mut start: Option<Item> = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND sk BETWEEN :from AND :to")
                .expression_attribute_values(":pk", s(council_pk(authority)))
                .expression_attribute_values(":from", s(receipt_sk(from)))
                .expression_attribute_values(":to", s("RECEIPT#~"))
                .projection_expression("pk, sk")
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| unavailable("a receipt query", &e))?;
            for item in out.items.unwrap_or_default() {
                if !get_s(&item, "sk")?.contains("#PART#") {
                    heads += 1;
                }
                keys.push(item);
            }
            start = out.last_evaluated_key;
            if start.is_none() {
                break;
            }
        }
        self.delete_all(keys).await?;
        Ok(heads)
    }
}

/// Feed freshness: one item per council in the `FEEDS` partition (153
/// councils: one query lists them all), `last_full_at` in nanoseconds.
const FEEDS_PK: &str = "FEEDS";

impl cpis_domain::FeedLog for DynamoStore {
    fn tracks_feeds(&self) -> bool {
        true
    }

    async fn record_full_snapshot(
        &self,
        authority: &OdsCode,
        at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        // A slow upload recorded late keeps the later time.
        self.move_time_forward(
            key(FEEDS_PK.to_owned(), authority.as_str()),
            "last_full_at",
            "FEED",
            at,
            "a feed write",
        )
        .await
    }

    async fn last_full_snapshot(
        &self,
        authority: &OdsCode,
    ) -> Result<Option<OffsetDateTime>, StoreError> {
        match self
            .get(key(FEEDS_PK.to_owned(), authority.as_str()))
            .await?
        {
            Some(item) => opt_time(&item, "last_full_at"),
            None => Ok(None),
        }
    }

    async fn last_full_snapshots(&self) -> Result<Vec<(OdsCode, OffsetDateTime)>, StoreError> {
        let items = self
            .query_prefix(FEEDS_PK.to_owned(), "", true, None)
            .await?;
        items
            .iter()
            .map(|item| {
                let council = OdsCode::parse(get_s(item, "sk")?)
                    .map_err(|_| corrupt("a feed's council is not an ODS code"))?;
                let at = opt_time(item, "last_full_at")?
                    .ok_or_else(|| corrupt("attribute last_full_at is missing"))?;
                Ok((council, at))
            })
            .collect()
    }
}

/// The sort key of a council's upload ledger head (partition `council_pk`).
const LEDGER_SK: &str = "LEDGER";

impl AuthorityDirectory for DynamoStore {
    async fn authority(&self, ods_code: &OdsCode) -> Result<Option<Authority>, StoreError> {
        self.get(key(council_pk(ods_code), "DIRECTORY"))
            .await?
            .as_ref()
            .map(authority_from_item)
            .transpose()
    }

    async fn put_authority(&self, authority: &Authority) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(authority_item(authority)))
            .send()
            .await
            .map_err(|e| unavailable("a directory write", &e))?;
        // After the entry is stored, so a failed sync is repaired by the
        // council's retry of the same (idempotent) PUT; racing updates are
        // reconciled with the stored entry (`directory_sync.rs`).
        if let Some(topics) = &self.topics {
            crate::directory_sync::sync_to_stored(self, topics, authority).await?;
        }
        Ok(())
    }
}

impl AccessLog for DynamoStore {
    async fn record_access(
        &self,
        access: &AccessRecord,
        asns: &[Asn],
        collapse_since: OffsetDateTime,
    ) -> Result<AccessWrite, StoreError> {
        if asns.len() + 2 > TRANSACTION_MAX {
            return Err(StoreError::Unavailable(
                "too many notifications for one transaction".to_owned(),
            ));
        }
        let child = child_pk(&access.nhs_number);
        let collapse_key = key(
            child.clone(),
            format!("LASTACCESS#{}", access.accessor.author_key()),
        );
        let expires = access.accessed_at + COLLAPSE_ITEM_LIFETIME;
        // The collapse rule as a condition: the author's last access is older
        // than the window (or there is none). Its failure cancels everything.
        let collapse = Update::builder()
            .table_name(&self.table)
            .set_key(Some(collapse_key))
            .update_expression("SET last_at = :at, expires_at = :expires, entity = :entity")
            .condition_expression("attribute_not_exists(pk) OR last_at < :since")
            .expression_attribute_values(":at", nanos(access.accessed_at))
            .expression_attribute_values(":since", nanos(collapse_since))
            .expression_attribute_values(":expires", n(expires.unix_timestamp()))
            .expression_attribute_values(":entity", s("LASTACCESS"))
            .build()
            .map_err(build_err)?;
        let mut actions = vec![TransactWriteItem::builder().update(collapse).build()];
        let mut new_items = vec![access_item(access)];
        for asn in asns {
            new_items.push(asn_item(asn)?);
        }
        for item in new_items {
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(pk)")
                .build()
                .map_err(build_err)?;
            actions.push(TransactWriteItem::builder().put(put).build());
        }
        let written = self
            .client
            .transact_write_items()
            .set_transact_items(Some(actions))
            .send()
            .await;
        match written {
            Ok(_) => Ok(AccessWrite::Recorded),
            Err(SdkError::ServiceError(service)) => match service.err() {
                TransactWriteItemsError::TransactionCanceledException(cancelled)
                    if cancelled
                        .cancellation_reasons()
                        .first()
                        .and_then(|r| r.code())
                        == Some("ConditionalCheckFailed") =>
                {
                    Ok(AccessWrite::Collapsed)
                }
                other => Err(unavailable("the access transaction", other)),
            },
            Err(e) => Err(unavailable("the access transaction", &e)),
        }
    }

    async fn recent_accesses(
        &self,
        nhs_number: &NhsNumber,
        limit: usize,
    ) -> Result<Vec<AccessRecord>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        self.query_prefix(child_pk(nhs_number), "ACCESS#", false, Some(limit))
            .await?
            .iter()
            .map(access_from_item)
            .collect()
    }
}

impl CheckReceipts for DynamoStore {
    async fn note_check(
        &self,
        nhs_number: &NhsNumber,
        organisation: &OdsCode,
        at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        // Keeps the latest time: an older note never overwrites a newer one.
        self.move_time_forward(
            key(child_pk(nhs_number), format!("CHECK#{organisation}")),
            "checked_at",
            "CHECK",
            at,
            "a check receipt write",
        )
        .await
    }

    async fn last_check(
        &self,
        nhs_number: &NhsNumber,
        organisation: &OdsCode,
    ) -> Result<Option<OffsetDateTime>, StoreError> {
        match self
            .get(key(child_pk(nhs_number), format!("CHECK#{organisation}")))
            .await?
        {
            Some(item) => Ok(Some(get_time(&item, "checked_at")?)),
            None => Ok(None),
        }
    }
}

impl NotificationInbox for DynamoStore {
    async fn notifications(
        &self,
        authority: &OdsCode,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<Asn>, StoreError> {
        let before = cursor.map(inbox_sk_from_cursor).transpose()?;
        let items = self
            .query_gsi1(
                format!("INBOX#{authority}"),
                before.as_deref(),
                false,
                limit + 1,
            )
            .await?;
        let mut items = items;
        let next_cursor = if items.len() > limit {
            items.truncate(limit);
            items.last().map(inbox_cursor_from_item).transpose()?
        } else {
            None
        };
        Ok(Page {
            items: readable_asns(&items),
            next_cursor,
        })
    }

    async fn notification(&self, authority: &OdsCode, id: &str) -> Result<Option<Asn>, StoreError> {
        if id.is_empty() || id.len() > MAX_ASN_ID {
            return Ok(None);
        }
        match self.get(key(asn_pk(id), "ASN")).await? {
            Some(item) if get_s(&item, "authority")? == authority.as_str() => {
                Ok(Some(asn_from_item(&item)?))
            }
            _ => Ok(None),
        }
    }

    async fn acknowledge(
        &self,
        authority: &OdsCode,
        id: &str,
        at: OffsetDateTime,
    ) -> Result<Option<Asn>, StoreError> {
        if id.is_empty() || id.len() > MAX_ASN_ID {
            return Ok(None);
        }
        // Scoped by the council in the condition: another council's ASN
        // behaves exactly like a missing one.
        let updated = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(asn_pk(id), "ASN")))
            .update_expression("SET acknowledged_at = if_not_exists(acknowledged_at, :at)")
            .condition_expression("attribute_exists(pk) AND authority = :authority")
            .expression_attribute_values(":at", nanos(at))
            .expression_attribute_values(":authority", s(authority.as_str()))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match updated {
            Ok(out) => out.attributes.as_ref().map(asn_from_item).transpose(),
            Err(e) if is_conditional_failure(&e) => Ok(None),
            Err(e) => Err(unavailable("an acknowledgement", &e)),
        }
    }
}

impl AsnOutbox for DynamoStore {
    async fn claim_undelivered(
        &self,
        now: OffsetDateTime,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<Asn>, StoreError> {
        let mut claimed = Vec::new();
        let mut start: Option<Item> = None;
        while claimed.len() < limit {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .index_name("gsi2")
                .key_condition_expression("gsi2pk = :pending")
                .filter_expression("attribute_not_exists(claimed_until) OR claimed_until <= :now")
                .expression_attribute_values(":pending", s(PENDING))
                .expression_attribute_values(":now", nanos(now))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| unavailable("the outbox query", &e))?;
            for candidate in out.items() {
                if claimed.len() == limit {
                    break;
                }
                // The index lags the table: the conditional claim is what
                // makes two sweepers never claim the same ASN.
                let taken = self
                    .client
                    .update_item()
                    .table_name(&self.table)
                    .set_key(Some(key(get_s(candidate, "pk")?.to_owned(), "ASN")))
                    .update_expression("SET claimed_until = :until")
                    .condition_expression(
                        "attribute_exists(pk) AND attribute_not_exists(delivered_at) \
                         AND (attribute_not_exists(claimed_until) OR claimed_until <= :now)",
                    )
                    .expression_attribute_values(":until", nanos(now + lease))
                    .expression_attribute_values(":now", nanos(now))
                    .return_values(ReturnValue::AllNew)
                    .send()
                    .await;
                match taken {
                    // Claimed even when unreadable, so that it rotates out of
                    // the sweep's window instead of filling it every time.
                    Ok(out) => claimed.extend(readable_asns(out.attributes.as_ref())),
                    Err(e) if is_conditional_failure(&e) => {}
                    Err(e) => return Err(unavailable("an outbox claim", &e)),
                }
            }
            start = out.last_evaluated_key;
            if start.is_none() {
                break;
            }
        }
        Ok(claimed)
    }

    async fn begin_delivery(
        &self,
        id: &str,
        now: OffsetDateTime,
        lease: Duration,
    ) -> Result<DeliveryStart, StoreError> {
        if id.is_empty() || id.len() > MAX_ASN_ID {
            return Ok(DeliveryStart::Unknown);
        }
        let taken = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(asn_pk(id), "ASN")))
            .update_expression("SET lease_until = :until")
            .condition_expression(
                "attribute_exists(pk) AND attribute_not_exists(delivered_at) \
                 AND (attribute_not_exists(lease_until) OR lease_until <= :now)",
            )
            .expression_attribute_values(":until", nanos(now + lease))
            .expression_attribute_values(":now", nanos(now))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match taken {
            Ok(out) => {
                let item = out
                    .attributes
                    .ok_or_else(|| corrupt("a leased ASN came back empty"))?;
                Ok(DeliveryStart::Proceed(Box::new(asn_from_item(&item)?)))
            }
            Err(e) if is_conditional_failure(&e) => {
                // Why it failed decides the answer; read it back.
                match self.get(key(asn_pk(id), "ASN")).await? {
                    None => Ok(DeliveryStart::Unknown),
                    Some(item) if item.contains_key("delivered_at") => {
                        Ok(DeliveryStart::AlreadyDelivered)
                    }
                    Some(_) => Ok(DeliveryStart::InProgress),
                }
            }
            Err(e) => Err(unavailable("a delivery lease", &e)),
        }
    }

    async fn finish_delivery(&self, id: &str, at: OffsetDateTime) -> Result<(), StoreError> {
        if id.is_empty() || id.len() > MAX_ASN_ID {
            return Ok(());
        }
        // Leaving the sparse outbox index is what takes it out of every sweep.
        let written = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(asn_pk(id), "ASN")))
            .update_expression(
                "SET delivered_at = if_not_exists(delivered_at, :at) REMOVE gsi2pk, gsi2sk",
            )
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":at", nanos(at))
            .send()
            .await;
        match written {
            Ok(_) => Ok(()),
            Err(e) if is_conditional_failure(&e) => Ok(()),
            Err(e) => Err(unavailable("a delivery record", &e)),
        }
    }
}

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

impl AuditTrail for DynamoStore {
    async fn append(&self, event: &AuditEvent) -> Result<(), StoreError> {
        let body = serde_json::to_string(event)
            .map_err(|_| corrupt("an audit event could not be encoded"))?;
        let mut item = key(
            format!("DAY#{}", event.at.date()),
            format!("{}#{}", time_key(event.at), event.id),
        );
        item.insert("event".into(), s(body));
        item.insert("actor_id".into(), s(event.actor_id.as_str()));
        item.insert("organisation".into(), s(event.organisation.as_str()));
        if let Some(subject) = &event.subject {
            item.insert("subject".into(), s(subject.as_str()));
        }
        // Append-only: an event is never overwritten, even by a retry.
        let written = self
            .client
            .put_item()
            .table_name(&self.audit_table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match written {
            Ok(_) => Ok(()),
            Err(e) if is_conditional_failure(&e) => Ok(()),
            Err(e) => Err(unavailable("an audit write", &e)),
        }
    }
}

impl AuditReader for DynamoStore {
    /// The most recent `limit` events, oldest first. Scans the audit table:
    /// for operators and tests, never on a request path.
    async fn audit_events(&self, limit: usize) -> Result<Vec<AuditEvent>, StoreError> {
        let mut events = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let out = self
                .client
                .scan()
                .table_name(&self.audit_table)
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| unavailable("the audit scan", &e))?;
            for item in out.items() {
                let event: AuditEvent = serde_json::from_str(get_s(item, "event")?)
                    .map_err(|_| corrupt("a stored audit event could not be read"))?;
                events.push(event);
            }
            start = out.last_evaluated_key;
            if start.is_none() {
                break;
            }
        }
        events.sort_by(|a, b| (a.at, &a.id).cmp(&(b.at, &b.id)));
        let skip = events.len().saturating_sub(limit);
        Ok(events.split_off(skip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_acknowledgements_split_on_character_boundaries() {
        let text = "ab£cd£ef".repeat(10);
        let parts = split_utf8(&text, 7);
        assert!(parts.iter().all(|p| p.len() <= 7));
        assert_eq!(parts.concat(), text);
        assert_eq!(split_utf8("short", 7), ["short"]);
    }

    #[test]
    fn listing_keys_sort_like_the_reference_order() {
        let a = NhsNumber::parse("9990000018").unwrap();
        let b = NhsNumber::parse("9990000026").unwrap();
        let d1 = time::macros::date!(2024 - 01 - 10);
        let d2 = time::macros::date!(2024 - 02 - 01);
        let ordered = [
            plan_listing_sk(&a, PlanType::ChildProtection, d2),
            plan_listing_sk(&a, PlanType::LookedAfter, d1),
            plan_listing_sk(&a, PlanType::UnbornChildProtection, d1),
            plan_listing_sk(&b, PlanType::ChildProtection, d1),
        ];
        let mut sorted = ordered.clone();
        sorted.sort();
        assert_eq!(sorted, ordered);
    }

    #[test]
    fn plan_cursors_round_trip_and_bad_ones_are_refused() {
        let nhs = NhsNumber::parse("9990000018").unwrap();
        let plan = Plan {
            authority: OdsCode::parse("E09000033").unwrap(),
            nhs_number: nhs,
            plan_type: PlanType::LookedAfter,
            start_date: time::macros::date!(2024 - 01 - 10),
            end_date: None,
            delete_date: None,
            due_date: None,
            local_id: None,
        };
        assert_eq!(
            listing_sk_from_cursor(&plan_cursor(&plan)).unwrap(),
            plan_listing_sk(&nhs, PlanType::LookedAfter, plan.start_date)
        );
        for bad in ["", "x.y.z", "9990000018.LAC", "9990000010.LAC.2024-01-10"] {
            assert!(matches!(
                listing_sk_from_cursor(bad),
                Err(StoreError::InvalidCursor)
            ));
        }
    }

    #[test]
    fn shards_spread_consecutive_numbers() {
        let shards: HashSet<u64> = [
            "9990000018",
            "9990000026",
            "9990000034",
            "9990000042",
            "9990000050",
        ]
        .iter()
        .map(|n| plan_shard(&NhsNumber::parse(n).unwrap()))
        .collect();
        assert!(shards.len() >= 4);
    }
}
