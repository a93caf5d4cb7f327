//! Item codecs: attribute values, and each entity's item shape both ways.

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::AttributeValue;
use cpis_domain::ports::{StoreError, StoredPlan};
use cpis_domain::{
    AccessRecord, Accessor, AccessorKind, Asn, Authority, InboxCursor, JobRole, NhsNumber, OdsCode,
    Plan, PlanCursor, PlanKey, PlanType, Rbac,
};
use time::{Date, OffsetDateTime, Time};

use super::keys::{
    asn_pk, child_pk, council_pk, key, plan_listing_pk, plan_listing_sk, plan_shard, plan_sk,
    time_key,
};
use super::{Item, PENDING};
use crate::errors::corrupt;

pub(super) fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub(super) fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

pub(super) fn nanos(at: OffsetDateTime) -> AttributeValue {
    n(at.unix_timestamp_nanos())
}

pub(super) fn epoch_seconds_of(day: Date) -> i64 {
    day.with_time(Time::MIDNIGHT).assume_utc().unix_timestamp()
}

pub(super) fn get_s<'a>(item: &'a Item, name: &str) -> Result<&'a str, StoreError> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
        .ok_or_else(|| corrupt(&format!("attribute {name} is missing")))
}

pub(super) fn opt_s<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

pub(super) fn opt_n(item: &Item, name: &str) -> Result<Option<i128>, StoreError> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .map(|raw| {
            raw.parse::<i128>()
                .map_err(|_| corrupt(&format!("attribute {name} is not a whole number")))
        })
        .transpose()
}

pub(super) fn get_n(item: &Item, name: &str) -> Result<i128, StoreError> {
    opt_n(item, name)?.ok_or_else(|| corrupt(&format!("attribute {name} is missing")))
}

pub(super) fn opt_time(item: &Item, name: &str) -> Result<Option<OffsetDateTime>, StoreError> {
    opt_n(item, name)?
        .map(|ns| {
            OffsetDateTime::from_unix_timestamp_nanos(ns)
                .map_err(|_| corrupt(&format!("attribute {name} is out of range")))
        })
        .transpose()
}

pub(super) fn get_time(item: &Item, name: &str) -> Result<OffsetDateTime, StoreError> {
    opt_time(item, name)?.ok_or_else(|| corrupt(&format!("attribute {name} is missing")))
}

pub(super) fn parse_date(raw: &str, name: &str) -> Result<Date, StoreError> {
    cpis_domain::dates::parse_iso_date(raw)
        .ok_or_else(|| corrupt(&format!("attribute {name} is not a date")))
}

pub(super) fn opt_date(item: &Item, name: &str) -> Result<Option<Date>, StoreError> {
    opt_s(item, name)
        .map(|raw| parse_date(raw, name))
        .transpose()
}

pub(super) fn get_strings(item: &Item, name: &str) -> Result<Vec<String>, StoreError> {
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

pub(super) fn strings(values: &[String]) -> AttributeValue {
    AttributeValue::L(values.iter().cloned().map(AttributeValue::S).collect())
}

pub(super) fn parse_nhs(raw: &str) -> Result<NhsNumber, StoreError> {
    NhsNumber::parse(raw).map_err(|_| corrupt("a stored NHS number is not valid"))
}

pub(super) fn parse_ods(raw: &str) -> Result<OdsCode, StoreError> {
    OdsCode::parse(raw).map_err(|_| corrupt("a stored ODS code is not valid"))
}

pub(super) fn parse_plan_type(raw: &str) -> Result<PlanType, StoreError> {
    PlanType::parse(raw).ok_or_else(|| corrupt("a stored plan type is not known"))
}

pub(super) fn build_err(_: aws_sdk_dynamodb::error::BuildError) -> StoreError {
    StoreError::Unavailable("a DynamoDB request could not be built".to_owned())
}

pub(super) fn is_conditional_failure<E, R>(err: &SdkError<E, R>) -> bool
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata,
{
    err.as_service_error()
        .and_then(|e| e.code())
        .is_some_and(|code| code == "ConditionalCheckFailedException")
}

pub(super) fn plan_item(stored: &StoredPlan) -> Item {
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
    if let Some(sequence) = plan.upload_sequence {
        item.insert("upload_sequence".into(), n(sequence));
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

pub(super) fn plan_from_item(item: &Item) -> Result<Plan, StoreError> {
    Ok(Plan {
        authority: parse_ods(get_s(item, "authority")?)?,
        nhs_number: parse_nhs(get_s(item, "nhs_number")?)?,
        plan_type: parse_plan_type(get_s(item, "plan_type")?)?,
        start_date: parse_date(get_s(item, "start_date")?, "start_date")?,
        end_date: opt_date(item, "end_date")?,
        delete_date: opt_date(item, "delete_date")?,
        due_date: opt_date(item, "due_date")?,
        local_id: opt_s(item, "local_id").map(str::to_owned),
        upload_sequence: opt_n(item, "upload_sequence")?
            .map(|n| u64::try_from(n).map_err(|_| corrupt("a plan's upload sequence")))
            .transpose()?,
    })
}

pub(super) fn plan_key_from_item(item: &Item) -> Result<PlanKey, StoreError> {
    Ok(PlanKey {
        authority: parse_ods(get_s(item, "authority")?)?,
        nhs_number: parse_nhs(get_s(item, "nhs_number")?)?,
        plan_type: parse_plan_type(get_s(item, "plan_type")?)?,
        start_date: parse_date(get_s(item, "start_date")?, "start_date")?,
    })
}

/// The cursor is the listing key of the last plan returned.
pub(super) fn listing_sk_from_cursor(cursor: &str) -> Result<String, StoreError> {
    let after = PlanCursor::parse(cursor)?;
    Ok(plan_listing_sk(
        &after.nhs_number,
        after.plan_type,
        after.start_date,
    ))
}

pub(super) fn authority_item(authority: &Authority) -> Item {
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

pub(super) fn authority_from_item(item: &Item) -> Result<Authority, StoreError> {
    Ok(Authority {
        ods_code: parse_ods(get_s(item, "ods_code")?)?,
        name: get_s(item, "name")?.to_owned(),
        office_hours_phone: get_s(item, "office_hours_phone")?.to_owned(),
        emergency_duty_phone: get_s(item, "emergency_duty_phone")?.to_owned(),
        notify_emails: get_strings(item, "notify_emails")?,
        notify_sms: get_strings(item, "notify_sms")?,
    })
}

pub(super) fn access_item(access: &AccessRecord) -> Item {
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
    if let Some(role) = &a.job_role {
        item.insert("job_role".into(), s(role.code.as_str()));
        item.insert("job_role_name".into(), s(role.name.as_str()));
    }
    item
}

pub(super) fn access_from_item(item: &Item) -> Result<AccessRecord, StoreError> {
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
            job_role: match (opt_s(item, "job_role"), opt_s(item, "job_role_name")) {
                (Some(code), Some(name)) => Some(
                    JobRole::parse(code, name)
                        .ok_or_else(|| corrupt("a stored job role is not valid"))?,
                ),
                _ => None,
            },
        },
    })
}

pub(super) fn asn_item(asn: &Asn) -> Result<Item, StoreError> {
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

pub(super) fn asn_from_item(item: &Item) -> Result<Asn, StoreError> {
    let mut asn: Asn = serde_json::from_str(get_s(item, "asn")?)
        .map_err(|_| corrupt("a stored ASN could not be read"))?;
    asn.acknowledged_at = opt_time(item, "acknowledged_at")?;
    asn.acknowledgement_note = match item.get("acknowledgement_note") {
        Some(value) => Some(
            value
                .as_s()
                .map_err(|_| corrupt("a stored acknowledgement note is not text"))?
                .clone(),
        ),
        None => None,
    };
    Ok(asn)
}

/// The ASNs of `items` this build can read. An unreadable one (another
/// version wrote it, or a hand edit) is left where it is and logged at error
/// level, which alarms: it must not hide the council's other notifications
/// or hold up the ASNs claimed with it.
pub(super) fn readable_asns<'a>(items: impl IntoIterator<Item = &'a Item>) -> Vec<Asn> {
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
pub(super) fn inbox_cursor_from_item(item: &Item) -> Result<String, StoreError> {
    let (nanos, id) = get_s(item, "gsi1sk")?
        .split_once('#')
        .ok_or_else(|| corrupt("an inbox index key"))?;
    let at = nanos
        .parse::<i128>()
        .ok()
        .and_then(|nanos| OffsetDateTime::from_unix_timestamp_nanos(nanos).ok())
        .ok_or_else(|| corrupt("an inbox index key"))?;
    Ok(InboxCursor::after(at, id).to_string())
}

pub(super) fn inbox_sk_from_cursor(cursor: &str) -> Result<String, StoreError> {
    let before = InboxCursor::parse(cursor)?;
    Ok(format!("{}#{}", time_key(before.at), before.id))
}
