//! FHIR R4 representations of the CP-IS answers, so that a trust's existing
//! integration with NHS England's CP-IS FHIR API can point at this service.
//!
//! Pure mapping: parsing the FHIR search inputs and building resources. The
//! routes live in `cpis-http`.

use cpis_domain::{AccessSummary, NhsNumber, VisiblePlan};
use serde_json::{json, Value};
use time::{Date, OffsetDateTime};

pub const FHIR_JSON: &str = "application/fhir+json";
pub const NHS_NUMBER_SYSTEM: &str = "https://fhir.nhs.uk/Id/nhs-number";
pub const ODS_SYSTEM: &str = "https://fhir.nhs.uk/Id/ods-organization-code";
pub const SPINE_ERROR_SYSTEM: &str = "https://fhir.nhs.uk/R4/CodeSystem/Spine-ErrorOrWarningCode";
pub const PLAN_TYPE_SYSTEM: &str = "https://fhir.nhs.uk/CodeSystem/cpis-plan-type";
pub const CONTACT_PURPOSE_URL: &str =
    "https://fhir.nhs.uk/StructureDefinition/Extension-CPIS-ContactPurpose";
/// The search parameter NHS England's API uses.
pub const PATIENT_IDENTIFIER_PARAM: &str = "patient:identifier";
pub const UNSCHEDULED_HEADER: &str = "isunscheduledaccessevent";

/// The FHIR errors of the CP-IS API, each an `OperationOutcome`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FhirError {
    /// 400: the NHS number or identifier system is not valid.
    InvalidSearchData(&'static str),
    /// 400: a required header is missing or invalid.
    PreconditionFailed(&'static str),
    /// 401: no valid credential.
    Unauthorised,
    /// 403: the caller's role may not use this interaction.
    AccessDenied,
    /// 404: no such FHIR endpoint (an unknown resource type or path).
    UnknownEndpoint,
    /// 405: the endpoint does not take that method.
    MethodNotAllowed,
    /// 406: the caller accepts no format we serve (only FHIR JSON is served).
    NotAcceptable,
    /// 413, 414 or 431: the request (body, URL or headers) is larger than
    /// the service reads; `why` says which and the limit.
    TooLarge { status: u16, why: &'static str },
    /// 5xx: the service could not answer.
    Unavailable,
}

impl FhirError {
    pub fn status(&self) -> u16 {
        match self {
            Self::InvalidSearchData(_) | Self::PreconditionFailed(_) => 400,
            Self::Unauthorised => 401,
            Self::AccessDenied => 403,
            Self::UnknownEndpoint => 404,
            Self::MethodNotAllowed => 405,
            Self::NotAcceptable => 406,
            Self::TooLarge { status, .. } => *status,
            Self::Unavailable => 503,
        }
    }

    pub fn spine_code(&self) -> &'static str {
        match self {
            Self::InvalidSearchData(_) => "INVALID_SEARCH_DATA",
            Self::PreconditionFailed(_) => "PRECONDITION_FAILED",
            Self::Unauthorised => "ACCESS_DENIED",
            Self::AccessDenied => "ACCESS_DENIED",
            Self::UnknownEndpoint | Self::MethodNotAllowed | Self::NotAcceptable => {
                "UNSUPPORTED_SERVICE"
            }
            Self::TooLarge { .. } => "INVALID_REQUEST",
            Self::Unavailable => "SERVICE_UNAVAILABLE",
        }
    }

    fn issue_code(&self) -> &'static str {
        match self {
            Self::InvalidSearchData(_) => "invalid",
            Self::PreconditionFailed(_) => "required",
            Self::Unauthorised => "login",
            Self::AccessDenied => "forbidden",
            Self::UnknownEndpoint => "not-found",
            Self::MethodNotAllowed | Self::NotAcceptable => "not-supported",
            Self::TooLarge { .. } => "too-long",
            Self::Unavailable => "transient",
        }
    }

    fn diagnostics(&self) -> &'static str {
        match self {
            Self::InvalidSearchData(why)
            | Self::PreconditionFailed(why)
            | Self::TooLarge { why, .. } => why,
            Self::Unauthorised => "a valid bearer token is required",
            Self::AccessDenied => "your role may not use this interaction",
            Self::UnknownEndpoint => "this FHIR endpoint does not exist; see metadata",
            Self::MethodNotAllowed => "this FHIR endpoint does not take that method; see metadata",
            Self::NotAcceptable => "only application/fhir+json is served; ask for it in Accept",
            Self::Unavailable => "the service cannot answer now; try again shortly",
        }
    }

    /// The `OperationOutcome` body. Diagnostics are fixed texts: they never
    /// repeat what the caller sent.
    pub fn operation_outcome(&self) -> Value {
        json!({
            "resourceType": "OperationOutcome",
            "issue": [{
                "severity": "error",
                "code": self.issue_code(),
                "details": {
                    "coding": [{
                        "system": SPINE_ERROR_SYSTEM,
                        "version": "1",
                        "code": self.spine_code(),
                        "display": self.spine_code().replace('_', " ").to_lowercase(),
                    }]
                },
                "diagnostics": self.diagnostics(),
            }]
        })
    }
}

/// Parses `https://fhir.nhs.uk/Id/nhs-number|9990000018`.
pub fn parse_patient_identifier(value: Option<&str>) -> Result<NhsNumber, FhirError> {
    let value = value.ok_or(FhirError::InvalidSearchData(
        "the patient:identifier search parameter is required",
    ))?;
    let (system, number) = value.split_once('|').ok_or(FhirError::InvalidSearchData(
        "patient:identifier must be system|value",
    ))?;
    if system != NHS_NUMBER_SYSTEM {
        return Err(FhirError::InvalidSearchData(
            "the identifier system must be https://fhir.nhs.uk/Id/nhs-number",
        ));
    }
    NhsNumber::parse(number)
        .map_err(|_| FhirError::InvalidSearchData("the NHS number is not valid"))
}

/// Parses the `IsUnscheduledAccessEvent` header: `true` or `false`, nothing else.
pub fn parse_unscheduled_header(value: Option<&str>) -> Result<bool, FhirError> {
    match value.map(str::trim) {
        Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
        Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
        Some(_) => Err(FhirError::PreconditionFailed(
            "the IsUnscheduledAccessEvent header must be true or false",
        )),
        None => Err(FhirError::PreconditionFailed(
            "the IsUnscheduledAccessEvent header is required",
        )),
    }
}

fn patient_reference(nhs: &NhsNumber) -> Value {
    json!({ "identifier": { "system": NHS_NUMBER_SYSTEM, "value": nhs.expose() } })
}

fn period(start: Date, end: Option<Date>) -> Value {
    match end {
        Some(end) => json!({ "start": start.to_string(), "end": end.to_string() }),
        None => json!({ "start": start.to_string() }),
    }
}

fn contact(purpose: &str, rank: u32, phone: &str) -> Option<Value> {
    (!phone.is_empty()).then(|| {
        json!({
            "extension": [{ "url": CONTACT_PURPOSE_URL, "valueString": purpose }],
            "system": "phone",
            "value": phone,
            "use": "work",
            "rank": rank,
        })
    })
}

fn searchset(resources: Vec<Value>) -> Value {
    let entries: Vec<Value> = resources
        .into_iter()
        .map(|resource| {
            let full_url = format!("urn:uuid:{}", resource["id"].as_str().unwrap_or_default());
            json!({ "fullUrl": full_url, "resource": resource, "search": { "mode": "match" } })
        })
        .collect();
    let mut bundle = json!({
        "resourceType": "Bundle",
        "id": uuid::Uuid::new_v4().to_string(),
        "type": "searchset",
        "total": entries.len(),
    });
    // FHIR JSON never carries an empty array: no match is a Bundle without `entry`.
    if !entries.is_empty() {
        bundle["entry"] = Value::Array(entries);
    }
    bundle
}

/// One CareTeam per visible plan: the plan type as category, the plan dates
/// as period, the council as managing organisation with its phone numbers.
/// `today` is the UK civil date (`Clock::today`): a plan whose end date is
/// today is still `active`.
pub fn care_team_bundle(nhs: &NhsNumber, plans: &[VisiblePlan], today: Date) -> Value {
    let resources = plans
        .iter()
        .map(|plan| {
            let active = plan.end_date.is_none_or(|end| end >= today);
            let telecom: Vec<Value> = [
                contact("office-hours", 1, &plan.authority.office_hours_phone),
                contact("emergency-duty-team", 2, &plan.authority.emergency_duty_phone),
            ]
            .into_iter()
            .flatten()
            .collect();
            let mut team = json!({
                "resourceType": "CareTeam",
                "id": uuid::Uuid::new_v4().to_string(),
                "status": if active { "active" } else { "inactive" },
                "category": [{ "coding": [{
                    "system": PLAN_TYPE_SYSTEM,
                    "code": plan.plan_type.code(),
                    "display": plan.plan_type.name(),
                }]}],
                "name": plan.plan_type.name(),
                "subject": patient_reference(nhs),
                "period": period(plan.start_date, plan.end_date),
                "managingOrganization": [{
                    "identifier": { "system": ODS_SYSTEM, "value": plan.authority.ods_code.as_str() },
                    "display": plan.authority.name,
                }],
            });
            if !telecom.is_empty() {
                team["telecom"] = Value::Array(telecom);
            }
            team
        })
        .collect();
    searchset(resources)
}

/// The CP-IS flag for scheduled care: one Flag per visible plan.
pub fn flag_bundle(nhs: &NhsNumber, plans: &[VisiblePlan]) -> Value {
    let resources = plans
        .iter()
        .map(|plan| {
            json!({
                "resourceType": "Flag",
                "id": uuid::Uuid::new_v4().to_string(),
                "status": "active",
                "category": [{ "coding": [{
                    "system": PLAN_TYPE_SYSTEM,
                    "code": plan.plan_type.code(),
                    "display": plan.plan_type.name(),
                }]}],
                "code": { "coding": [{
                    "system": PLAN_TYPE_SYSTEM,
                    "code": plan.plan_type.code(),
                    "display": plan.plan_type.name(),
                }], "text": format!("CP-IS: {}", plan.plan_type.name()) },
                "subject": patient_reference(nhs),
                "period": period(plan.start_date, plan.end_date),
                "author": {
                    "identifier": { "system": ODS_SYSTEM, "value": plan.authority.ods_code.as_str() },
                    "display": plan.authority.name,
                },
            })
        })
        .collect();
    searchset(resources)
}

fn instant(at: OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_owned())
}

/// The access history as AuditEvents: who (organisation, setting) and when.
pub fn audit_event_bundle(nhs: &NhsNumber, history: &[AccessSummary]) -> Value {
    let resources = history
        .iter()
        .map(|access| {
            json!({
                "resourceType": "AuditEvent",
                "id": uuid::Uuid::new_v4().to_string(),
                "type": {
                    "system": "http://terminology.hl7.org/CodeSystem/audit-event-type",
                    "code": "rest",
                    "display": "RESTful Operation",
                },
                "action": "R",
                "recorded": instant(access.accessed_at),
                "outcome": "0",
                "agent": [{
                    "type": { "text": access.setting },
                    "who": {
                        "identifier": { "system": ODS_SYSTEM, "value": access.organisation_ods.as_str() },
                        "display": access.organisation_name,
                    },
                    "requestor": true,
                }],
                "source": {
                    "observer": { "display": "CP-IS" },
                    "type": [{
                        "system": "http://terminology.hl7.org/CodeSystem/security-source-type",
                        "code": "4",
                        "display": "Application Server",
                    }],
                },
                "entity": [{ "what": patient_reference(nhs) }],
            })
        })
        .collect();
    searchset(resources)
}

/// The CapabilityStatement for exactly the interactions served.
pub fn capability_statement(now: OffsetDateTime) -> Value {
    let search = |resource: &str, doc: &str| {
        json!({
            "type": resource,
            "interaction": [{ "code": "search-type" }],
            "searchParam": [{
                "name": "patient",
                "type": "reference",
                "documentation": format!("Use the :identifier modifier: patient:identifier={NHS_NUMBER_SYSTEM}|<NHS number>. {doc}"),
            }],
        })
    };
    json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": instant(now),
        "publisher": "cpis",
        "kind": "instance",
        "software": { "name": "cpis" },
        "implementation": { "description": "Child Protection - Information Sharing (cpis)" },
        "fhirVersion": "4.0.1",
        "format": [FHIR_JSON],
        "rest": [{
            "mode": "server",
            "security": {
                "cors": false,
                "description": "Bearer token (OAuth 2.0) for clinicians and care-setting systems",
            },
            "resource": [
                search("CareTeam", "Requires the IsUnscheduledAccessEvent header (true notifies the responsible councils)."),
                search("AuditEvent", "The 25 most recent unscheduled accesses, newest first."),
                search("Flag", "A silent read for scheduled care: nothing is recorded and nobody is notified."),
            ],
        }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use cpis_domain::{find_nhs_numbers, AuthorityContact, OdsCode, PlanType};
    use time::macros::{date, datetime};

    fn nhs() -> NhsNumber {
        NhsNumber::parse("9990000018").unwrap()
    }

    fn plan(end: Option<Date>) -> VisiblePlan {
        VisiblePlan {
            plan_type: PlanType::ChildProtection,
            start_date: date!(2026 - 01 - 01),
            end_date: end,
            due_date: None,
            authority: AuthorityContact {
                ods_code: OdsCode::parse("E09000033").unwrap(),
                name: "Example Borough".into(),
                office_hours_phone: "020 7946 0000".into(),
                emergency_duty_phone: "020 7946 0999".into(),
            },
        }
    }

    #[test]
    fn patient_identifier_parsing() {
        let ok = format!("{NHS_NUMBER_SYSTEM}|9990000018");
        assert_eq!(parse_patient_identifier(Some(&ok)), Ok(nhs()));
        for bad in [
            None,
            Some("9990000018"),
            Some("https://example.org/id|9990000018"),
        ] {
            assert!(matches!(
                parse_patient_identifier(bad),
                Err(FhirError::InvalidSearchData(_))
            ));
        }
        let wrong_digit = format!("{NHS_NUMBER_SYSTEM}|9990000010");
        assert!(matches!(
            parse_patient_identifier(Some(&wrong_digit)),
            Err(FhirError::InvalidSearchData(_))
        ));
    }

    #[test]
    fn unscheduled_header_parsing() {
        assert_eq!(parse_unscheduled_header(Some("true")), Ok(true));
        assert_eq!(parse_unscheduled_header(Some("False")), Ok(false));
        for bad in [None, Some(""), Some("yes"), Some("1")] {
            assert!(matches!(
                parse_unscheduled_header(bad),
                Err(FhirError::PreconditionFailed(_))
            ));
        }
    }

    #[test]
    fn care_teams_carry_type_period_council_and_phones() {
        let bundle = care_team_bundle(
            &nhs(),
            &[plan(None), plan(Some(date!(2026 - 02 - 01)))],
            date!(2026 - 11 - 25),
        );
        assert_eq!(bundle["type"], "searchset");
        assert_eq!(bundle["total"], 2);
        let team = &bundle["entry"][0]["resource"];
        assert_eq!(team["status"], "active");
        assert_eq!(team["category"][0]["coding"][0]["code"], "CPP");
        assert_eq!(
            team["managingOrganization"][0]["identifier"]["value"],
            "E09000033"
        );
        assert_eq!(team["telecom"][1]["value"], "020 7946 0999");
        assert_eq!(bundle["entry"][1]["resource"]["status"], "inactive");
    }

    #[test]
    fn no_match_is_an_empty_searchset() {
        let bundle = audit_event_bundle(&nhs(), &[]);
        assert_eq!(bundle["type"], "searchset");
        assert_eq!(bundle["total"], 0);
        assert!(
            bundle.get("entry").is_none(),
            "FHIR JSON has no empty arrays"
        );
    }

    #[test]
    fn operation_outcomes_never_repeat_input() {
        let outcome = parse_patient_identifier(Some(&format!("{NHS_NUMBER_SYSTEM}|9990000026x")))
            .unwrap_err()
            .operation_outcome();
        assert_eq!(
            outcome["issue"][0]["details"]["coding"][0]["code"],
            "INVALID_SEARCH_DATA"
        );
        assert!(find_nhs_numbers(&outcome.to_string()).is_empty());
    }

    #[test]
    fn audit_events_record_organisation_and_time() {
        let entry = AccessSummary {
            organisation_ods: OdsCode::parse("RJ1").unwrap(),
            organisation_name: "Hospital".into(),
            setting: "emergency-department".into(),
            accessed_at: datetime!(2026-11-25 10:00 UTC),
        };
        let bundle = audit_event_bundle(&nhs(), &[entry]);
        let event = &bundle["entry"][0]["resource"];
        assert_eq!(event["recorded"], "2026-11-25T10:00:00Z");
        assert_eq!(event["agent"][0]["who"]["identifier"]["value"], "RJ1");
    }
}
