//! Storage forms (module doc of `lib.rs`) both ways: dates, instants,
//! sequences, JSON bodies, and the rows of plans and ASNs.

use cpis_domain::ports::StoreError;
use cpis_domain::{Asn, NhsNumber, OdsCode, Plan, PlanType};
use rusqlite::{params, Connection, Row};
use time::{Date, Duration, OffsetDateTime};

use crate::{corrupt, failed};

pub(crate) fn parse_date(text: &str) -> Result<Date, StoreError> {
    cpis_domain::dates::parse_iso_date(text).ok_or_else(|| corrupt("a stored date"))
}

pub(crate) fn opt_date(text: Option<String>) -> Result<Option<Date>, StoreError> {
    text.as_deref().map(parse_date).transpose()
}

pub(crate) fn nanos(at: OffsetDateTime) -> Result<i64, StoreError> {
    i64::try_from(at.unix_timestamp_nanos()).map_err(|_| {
        StoreError::Unavailable("a time outside the years 1677 to 2262 cannot be stored".to_owned())
    })
}

/// For query bounds only: a bound outside the storable range clamps.
pub(crate) fn nanos_clamped(at: OffsetDateTime) -> i64 {
    let n = at.unix_timestamp_nanos();
    i64::try_from(n).unwrap_or(if n < 0 { i64::MIN } else { i64::MAX })
}

pub(crate) fn from_nanos(n: i64) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(n)).map_err(|_| corrupt("a stored time"))
}

pub(crate) fn later(now: OffsetDateTime, by: Duration) -> Result<i64, StoreError> {
    now.checked_add(by)
        .ok_or_else(|| StoreError::Unavailable("a lease ends beyond the calendar".to_owned()))
        .and_then(nanos)
}

pub(crate) fn parse_nhs(text: &str) -> Result<NhsNumber, StoreError> {
    NhsNumber::parse(text).map_err(|_| corrupt("a stored NHS number"))
}

pub(crate) fn sequence_text(sequence: u64) -> String {
    format!("{sequence:020}")
}

pub(crate) fn parse_sequence(text: &str) -> Result<u64, StoreError> {
    text.parse()
        .map_err(|_| corrupt("a stored upload sequence"))
}

pub(crate) fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

pub(crate) fn to_json<T: serde::Serialize>(
    value: &T,
    what: &'static str,
) -> Result<String, StoreError> {
    serde_json::to_string(value)
        .map_err(|_| StoreError::Unavailable(format!("{what} could not be encoded")))
}

pub(crate) fn from_json<T: serde::de::DeserializeOwned>(
    text: &str,
    what: &'static str,
) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|_| StoreError::Corrupt(format!("{what} could not be read")))
}

pub(crate) const PLAN_COLUMNS: &str = "authority, nhs_number, plan_type, start_date, end_date, \
     delete_date, due_date, local_id, upload_sequence";

pub(crate) struct PlanRow {
    authority: String,
    nhs_number: String,
    plan_type: String,
    start_date: String,
    end_date: Option<String>,
    delete_date: Option<String>,
    due_date: Option<String>,
    local_id: Option<String>,
    upload_sequence: Option<String>,
}

pub(crate) fn plan_row(row: &Row<'_>) -> rusqlite::Result<PlanRow> {
    Ok(PlanRow {
        authority: row.get(0)?,
        nhs_number: row.get(1)?,
        plan_type: row.get(2)?,
        start_date: row.get(3)?,
        end_date: row.get(4)?,
        delete_date: row.get(5)?,
        due_date: row.get(6)?,
        local_id: row.get(7)?,
        upload_sequence: row.get(8)?,
    })
}

impl PlanRow {
    fn into_plan(self) -> Result<Plan, StoreError> {
        Ok(Plan {
            authority: OdsCode::parse(&self.authority).map_err(|_| corrupt("a stored ODS code"))?,
            nhs_number: parse_nhs(&self.nhs_number)?,
            plan_type: PlanType::parse(&self.plan_type)
                .ok_or_else(|| corrupt("a stored plan type"))?,
            start_date: parse_date(&self.start_date)?,
            end_date: opt_date(self.end_date)?,
            delete_date: opt_date(self.delete_date)?,
            due_date: opt_date(self.due_date)?,
            local_id: self.local_id,
            upload_sequence: self
                .upload_sequence
                .as_deref()
                .map(parse_sequence)
                .transpose()?,
        })
    }
}

pub(crate) fn collect_plans(rows: Vec<PlanRow>) -> Result<Vec<Plan>, StoreError> {
    rows.into_iter().map(PlanRow::into_plan).collect()
}

/// An ASN as stored: the body, with the acknowledgement kept in its own column
/// so that acknowledging never rewrites the body.
pub(crate) fn asn_from(body: &str, acknowledged_at: Option<i64>) -> Result<Asn, StoreError> {
    let mut asn: Asn = from_json(body, "a stored ASN")?;
    asn.acknowledged_at = acknowledged_at.map(from_nanos).transpose()?;
    Ok(asn)
}

/// [`asn_from`] with the note kept with the acknowledgement (read by the
/// inbox; the dispatcher's reads leave it out, as a notice never carries it).
pub(crate) fn asn_with_note(
    body: &str,
    acknowledged_at: Option<i64>,
    note: Option<String>,
) -> Result<Asn, StoreError> {
    let mut asn = asn_from(body, acknowledged_at)?;
    asn.acknowledgement_note = note;
    Ok(asn)
}

pub(crate) fn insert_asn(tx: &Connection, asn: &Asn) -> Result<(), StoreError> {
    let body = to_json(
        &Asn {
            acknowledged_at: None,
            acknowledgement_note: None,
            ..asn.clone()
        },
        "an ASN",
    )?;
    tx.prepare_cached(
        "INSERT INTO asns (id, authority, nhs_number, access_id, accessed_at, asn, acknowledged_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )
    .and_then(|mut insert| {
        insert.execute(params![
            asn.id,
            asn.authority.as_str(),
            asn.nhs_number.expose(),
            asn.access_id,
            nanos_clamped(asn.accessed_at),
            body,
            asn.acknowledged_at.map(nanos_clamped),
        ])
    })
    .map_err(failed("writing an ASN"))?;
    Ok(())
}

/// Id, accessed at, body, acknowledged at, note.
pub(crate) type AsnRow = (String, i64, String, Option<i64>, Option<String>);

/// Body, acknowledged, lease until, delivered.
pub(crate) type DeliveryRow = (String, Option<i64>, Option<i64>, Option<i64>);

pub(crate) fn asn_row(r: &Row<'_>) -> rusqlite::Result<AsnRow> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
}
