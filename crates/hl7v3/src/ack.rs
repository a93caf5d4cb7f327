//! The Acknowledgement Response, `REPC_MT000003GB01` (root `FileResponse`).

use cpis_domain::{Acknowledgement, AuthorityContact, FileOutcome, RecordOutcomeCode};
use time::OffsetDateTime;

use crate::upload::{read, FileError, Organisation, PlanEcho, RecordEcho, SubjectEcho};
use crate::xml::Xml;
use crate::{oid, ts, RenderError};

const ROOT: &str = "FileResponse";

fn file_code(outcome: FileOutcome) -> (&'static str, &'static str) {
    match outcome {
        FileOutcome::Malformed => ("CPF01", "File Level Error"),
        FileOutcome::AllLoaded => ("CPF02", "Successful File Upload"),
        FileOutcome::Partial => ("CPF03", "Partial File Upload"),
        FileOutcome::NoneLoaded => ("CPF04", "Unsuccessful File Upload"),
    }
}

/// CPR07's display name as the published vocabulary (CPVocab.xsd) spells it.
const CPR07_DISPLAY: &str = "Unsucessful Record Upload";

/// A human-readable reason for a domain detail code. Never a value.
fn detail_text(code: &str) -> &'static str {
    match code {
        "MISSING_NHS_NUMBER" => "the child's NHS number is missing",
        "MISSING_MOTHERS_NHS_NUMBER" => "the mother's NHS number is missing (unborn child plan)",
        "INVALID_NHS_NUMBER" => "the NHS number is not 10 digits with a valid check digit",
        "MISSING_PLAN_TYPE" | "UNKNOWN_PLAN_TYPE" => "the plan type is missing or unknown",
        "MISSING_START_DATE" => "the plan start date is missing",
        "INVALID_DATE" => "a plan date is not a valid date (YYYYMMDD, YYYYMMDDHHmm or YYYYMMDDHHmmss)",
        "START_DATE_IN_FUTURE" => "the plan start date is after the upload date",
        "END_BEFORE_START" => "the plan end date is before its start date",
        "DELETE_BEFORE_START" => "the plan delete date is before its start date",
        "DUE_BEFORE_START" => "the due date is before the plan start date",
        "INVALID_LOCAL_ID" => "the local identifier is empty, longer than 64 characters or holds control characters",
        "DUPLICATE_IN_BATCH" => "the same plan (NHS number, plan type, start date) appears more than once in the file; every occurrence is rejected",
        _ => "the record was rejected",
    }
}

/// Renders the acknowledgement of a processed upload: `upload` is the file
/// in hand (for a replay, the replayed file), `ack` the domain's outcomes for
/// the batch [`crate::UploadFile::batch_json`] made of it.
///
/// Every CPR07 is listed with the XPath of the failing element or attribute
/// in the upload. Every record is echoed (`message`): loaded records as
/// `validCP-ISRecord` (its subjects), rejected ones as `invalidCP-ISRecord`
/// (its plans and subjects); names and dates of birth in the echo are read
/// from `upload` here and not kept. A record is rejected when any of its
/// plans is. `communicationFunctionRcv` is the council as the file names it.
pub fn render_acknowledgement(
    upload: &[u8],
    ack: &Acknowledgement,
    created_at: OffsetDateTime,
) -> Result<String, RenderError> {
    let (file, echoes) = read(upload, true).map_err(|_| RenderError::NotTheFile)?;
    if ack.sequence != file.sequence
        || ack.records.len() != file.rows.len()
        || echoes.len() != file.record_count
    {
        return Err(RenderError::NotTheFile);
    }
    let mut failed_records = vec![false; file.record_count];
    let mut details: Vec<(String, String)> = Vec::new();
    for (index, (outcome, row)) in ack.records.iter().zip(&file.rows).enumerate() {
        if outcome.index != index {
            return Err(RenderError::NotTheFile);
        }
        if outcome.outcome != RecordOutcomeCode::Failure {
            continue;
        }
        failed_records[row.record] = true;
        let (text, location) = match &row.problem {
            Some((problem, at)) => (
                format!("{}: {}", problem.code(), problem.describe()),
                at.clone(),
            ),
            None => {
                let code = outcome
                    .detail
                    .and_then(|d| serde_json::to_value(d).ok())
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_else(|| "REJECTED".to_owned());
                let prefix = format!("/records/{index}");
                let relative = outcome
                    .location
                    .as_deref()
                    .and_then(|l| l.strip_prefix(prefix.as_str()))
                    .unwrap_or("");
                (
                    format!("{code}: {}", detail_text(&code)),
                    row.xpath_for(relative),
                )
            }
        };
        if !details.iter().any(|(t, l)| *t == text && *l == location) {
            details.push((text, location));
        }
    }
    let failed = failed_records.iter().filter(|f| **f).count();
    let mut x = Xml::document(ROOT);
    x.empty("creationTime", &[("value", &ts::instant(created_at))])
        .empty("id", &[("extension", &file.file_id)])
        .empty(
            "transmissionQuantity",
            &[("value", &file.record_count.to_string())],
        );
    let (code, display) = file_code(ack.file_outcome);
    x.open("acknowledgementFile", &[])
        .open("acknowledgementFileDetail", &[])
        .empty("code", &[("code", code), ("displayName", display)])
        .close("acknowledgementFileDetail")
        .close("acknowledgementFile");
    if !details.is_empty() {
        x.open("acknowledgementRecord", &[]);
        for (text, location) in &details {
            x.open("acknowledgementRecordDetail", &[])
                .open(
                    "code",
                    &[
                        ("code", "CPR07"),
                        ("codeSystem", oid::UPLOAD_RECORD_RESPONSE),
                        ("displayName", CPR07_DISPLAY),
                    ],
                )
                .text("originalText", text)
                .close("code")
                .text("location", location)
                .close("acknowledgementRecordDetail");
        }
        x.close("acknowledgementRecord");
    }
    receiver(&mut x, &file.sender);
    count(&mut x, "failedReturnedCP-ISRecords", failed);
    for (echo, failed) in echoes.iter().zip(&failed_records) {
        if echo.echoable {
            message(&mut x, echo, *failed);
        }
    }
    count(
        &mut x,
        "successfulReturnedCP-ISRecords",
        file.record_count - failed,
    );
    Ok(x.finish(ROOT))
}

/// Renders the CPF01 acknowledgement of a file refused whole (nothing
/// loaded): the file id when it was read (otherwise `-1`),
/// `transmissionQuantity` `-1`, zero counts. The file code cannot carry text
/// (the schema's `code` there is empty), so the reason and the XPath of the
/// fault go in one `acknowledgementRecordDetail` coded CPF01 (in the
/// CP-ISUploadFileResponse code system). The receiver is the council as the
/// file names it when that was read, otherwise `council` (the directory
/// entry of the council the MESH mailbox is mapped to).
pub fn render_file_rejection(
    error: &FileError,
    council: &AuthorityContact,
    created_at: OffsetDateTime,
) -> Result<String, RenderError> {
    let reason = format!("{}: {}", error.problem.code(), error.problem.describe());
    render_rejection(
        error.file_id.as_deref(),
        error.sender.as_deref(),
        council,
        &reason,
        &error.location,
        created_at,
    )
}

/// Renders a CPF01 acknowledgement for any whole-file refusal (for example
/// a file id already used for a different file): as
/// [`render_file_rejection`], with the caller's `reason` and `location`,
/// which must carry no personal data.
pub fn render_rejection(
    file_id: Option<&str>,
    sender: Option<&Organisation>,
    council: &AuthorityContact,
    reason: &str,
    location: &str,
    created_at: OffsetDateTime,
) -> Result<String, RenderError> {
    let directory;
    let receiver_org = match sender {
        Some(org) => org,
        None => {
            directory = from_directory(council)?;
            &directory
        }
    };
    let mut x = Xml::document(ROOT);
    x.empty("creationTime", &[("value", &ts::instant(created_at))])
        .empty("id", &[("extension", file_id.unwrap_or("-1"))])
        .empty("transmissionQuantity", &[("value", "-1")]);
    let (code, display) = file_code(FileOutcome::Malformed);
    x.open("acknowledgementFile", &[])
        .open("acknowledgementFileDetail", &[])
        .empty("code", &[("code", code), ("displayName", display)])
        .close("acknowledgementFileDetail")
        .close("acknowledgementFile")
        .open("acknowledgementRecord", &[])
        .open("acknowledgementRecordDetail", &[])
        .open(
            "code",
            &[
                ("code", code),
                ("codeSystem", oid::UPLOAD_FILE_RESPONSE),
                ("displayName", display),
            ],
        )
        .text("originalText", reason)
        .close("code")
        .text("location", if location.is_empty() { "/" } else { location })
        .close("acknowledgementRecordDetail")
        .close("acknowledgementRecord");
    receiver(&mut x, receiver_org);
    count(&mut x, "failedReturnedCP-ISRecords", 0);
    count(&mut x, "successfulReturnedCP-ISRecords", 0);
    Ok(x.finish(ROOT))
}

/// The council's directory entry as an organisation: office-hours phone as
/// `WP`, emergency duty phone as `EC`, each as a `tel:` URI (digits and a
/// leading `+` kept; a national `0` number becomes `+44`).
fn from_directory(council: &AuthorityContact) -> Result<Organisation, RenderError> {
    let telecoms: Vec<_> = [
        ("WP", &council.office_hours_phone),
        ("EC", &council.emergency_duty_phone),
    ]
    .into_iter()
    .filter_map(|(use_code, phone)| {
        tel_uri(phone).map(|value| crate::upload::Telecom {
            use_code: use_code.to_owned(),
            value,
        })
    })
    .collect();
    if telecoms.is_empty() {
        return Err(RenderError::NoPhone);
    }
    Ok(Organisation {
        id_root: oid::ODS_ORGANISATION.to_owned(),
        ods_code: council.ods_code.clone(),
        name: council.name.clone(),
        telecoms,
    })
}

pub(crate) fn tel_uri(phone: &str) -> Option<String> {
    let plus = phone.trim_start().starts_with('+');
    let digits: String = phone.chars().filter(char::is_ascii_digit).collect();
    if digits.is_empty() || digits.len() > 20 {
        return None;
    }
    Some(match (plus, digits.strip_prefix('0')) {
        (true, _) => format!("tel:+{digits}"),
        (false, Some(national)) => format!("tel:+44{national}"),
        (false, None) => format!("tel:{digits}"),
    })
}

fn receiver(x: &mut Xml, org: &Organisation) {
    x.open("communicationFunctionRcv", &[])
        .open("organisation", &[])
        .empty(
            "id",
            &[("root", &org.id_root), ("extension", org.ods_code.as_str())],
        )
        .text("name", &org.name);
    for telecom in &org.telecoms {
        x.empty(
            "telecom",
            &[("use", &telecom.use_code), ("value", &telecom.value)],
        );
    }
    x.close("organisation").close("communicationFunctionRcv");
}

fn count(x: &mut Xml, name: &str, n: usize) {
    x.open(name, &[])
        .empty("value", &[("value", &n.to_string())])
        .close(name);
}

fn message(x: &mut Xml, echo: &RecordEcho, failed: bool) {
    x.open("message", &[])
        .open("cP-ISLAAcknowledgementResponse", &[])
        .open("pertinentInformation1", &[]);
    let kind = if failed {
        "invalidCP-ISRecord"
    } else {
        "validCP-ISRecord"
    };
    x.open(kind, &[]);
    if failed {
        for plan in &echo.plans {
            plan_echo(x, plan);
        }
    }
    for subject in &echo.subjects {
        subject_echo(x, subject);
    }
    x.close(kind)
        .close("pertinentInformation1")
        .close("cP-ISLAAcknowledgementResponse")
        .close("message");
}

fn plan_echo(x: &mut Xml, plan: &PlanEcho) {
    let prefix = plan.kind.prefix();
    x.open("pertinentInformation", &[])
        .content_id(plan.kind.content_id())
        .open(plan.kind.element(), &[]);
    for (component, suffix, value) in [
        ("component", "StartDate", Some(&plan.start)),
        ("component1", "EndDate", plan.end.as_ref()),
        ("component2", "DeleteDate", plan.delete.as_ref()),
    ] {
        if let Some(value) = value {
            let name = format!("{prefix}{suffix}");
            x.open(component, &[])
                .open(&name, &[])
                .empty("value", &[("value", value)])
                .close(&name)
                .close(component);
        }
    }
    x.close(plan.kind.element()).close("pertinentInformation");
}

fn subject_echo(x: &mut Xml, subject: &SubjectEcho) {
    x.open("subject", &[]);
    let ids = |x: &mut Xml| {
        for id in &subject.ids {
            let mut attrs = vec![("root", id.root), ("extension", id.extension.as_str())];
            if let Some(name) = &id.assigning_authority_name {
                attrs.push(("assigningAuthorityName", name.as_str()));
            }
            x.empty("id", &attrs);
        }
    };
    let person = |x: &mut Xml| {
        x.empty("birthTime", &[("value", &subject.birth_time)])
            .open("name", &[])
            .text("given", &subject.given)
            .text("family", &subject.family)
            .close("name");
    };
    if subject.unborn {
        x.content_id("COCT_TP145100GB01#UnbornChild")
            .open("COCT_TP145100GB01.UnbornChild", &[])
            .open("parentMotherPerson", &[]);
        person(x);
        x.open("playedMother", &[]);
        ids(x);
        x.close("playedMother")
            .close("parentMotherPerson")
            .close("COCT_TP145100GB01.UnbornChild");
    } else {
        x.content_id("COCT_TP145101GB01#Child")
            .open("COCT_TP145101GB01.Child", &[]);
        ids(x);
        x.open("childPerson", &[]);
        person(x);
        x.close("childPerson").close("COCT_TP145101GB01.Child");
    }
    x.close("subject");
}
