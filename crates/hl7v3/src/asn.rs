//! The Access to Service Notification, `REPC_MT000004GB01` (root
//! `CP-ISAccessToServiceNotification`).

use cpis_domain::{AccessorKind, Asn, JobRole};
use time::OffsetDateTime;

use crate::xml::Xml;
use crate::{oid, ts, RenderError};

const ROOT: &str = "CP-ISAccessToServiceNotification";

/// What an ASN needs beyond the domain's [`Asn`].
#[derive(Debug, Clone)]
pub struct AsnContext<'a> {
    /// When the notification is made (`effectiveTime`).
    pub created_at: OffsetDateTime,
    /// The council's name, from the directory (`representedSourceOrganization/name`).
    pub council_name: &'a str,
    /// The id of the LA Upload file the child's plan came from
    /// (`referredToLAUploadFile`), as the council sent it.
    pub upload_file_id: &'a str,
    /// The author's SDS job role: mandatory in the schema for a person
    /// (`AssignedAuthor/code`); for a system, the nominated responsible
    /// person's role, rendered with `responsible_person` when both are given.
    pub job_role: Option<&'a JobRole>,
    /// The person's name as the care setting's credential gives it (a user,
    /// or a system's nominated responsible person). Without it a user's
    /// name is sent as `nullFlavor="UNK"`.
    pub person_name: Option<&'a str>,
}

/// An upper-case UUID (`II.NPfIT.root.uuid`).
fn uuid_upper(id: &str) -> Result<String, RenderError> {
    let parsed = uuid::Uuid::parse_str(id).map_err(|_| RenderError::NotAUuid)?;
    Ok(parsed.hyphenated().to_string().to_ascii_uppercase())
}

/// Renders one ASN: one `pertinentCP-ISRecordAccess` holding the one access
/// the domain's ASN records, `TotalReturnedRecords` 1, the council as the
/// recipient. The child's NHS number and the council's local id are in
/// `queryByParameter` (the file goes only to the council).
pub fn render_asn(asn: &Asn, context: &AsnContext<'_>) -> Result<String, RenderError> {
    let asn_id = uuid_upper(&asn.id)?;
    let query_id = uuid_upper(&asn.access_id)?;
    if context.upload_file_id.is_empty() {
        return Err(RenderError::MissingUploadFileId);
    }
    let accessor = &asn.accessor;
    let mut x = Xml::document(ROOT);
    x.empty(
        "effectiveTime",
        &[("value", &ts::instant(context.created_at))],
    )
    .empty("id", &[("root", &asn_id)])
    .open("pertinentInformation", &[])
    .open("pertinentTotalReturnedRecords", &[])
    .empty("value", &[("value", "1")])
    .close("pertinentTotalReturnedRecords")
    .close("pertinentInformation")
    .open("pertinentInformation1", &[])
    .open("pertinentCP-ISRecordAccess", &[])
    .open("pertinentInformation2", &[])
    .open("pertinentCP-ISNHSQuery", &[])
    .empty("effectiveTime", &[("value", &ts::instant(asn.accessed_at))])
    .empty("id", &[("root", &query_id)])
    .open("author", &[]);
    match accessor.kind {
        AccessorKind::User => {
            let role = context.job_role.ok_or(RenderError::MissingJobRole)?;
            x.content_id("COCT_TP145102GB01#AssignedAuthor")
                .open("COCT_TP145102GB01.AssignedAuthor", &[])
                .empty(
                    "code",
                    &[
                        ("code", &role.code),
                        ("codeSystem", oid::SDS_JOB_ROLE),
                        ("displayName", &role.name),
                    ],
                )
                .empty(
                    "id",
                    &[("root", oid::SDS_USER), ("extension", &accessor.user_id)],
                )
                .open("assignedAuthorPerson", &[]);
            match context.person_name {
                Some(name) => x.text("name", name),
                None => x.empty("name", &[("nullFlavor", "UNK")]),
            };
            x.close("assignedAuthorPerson")
                .open("representedOrganization", &[])
                .empty(
                    "id",
                    &[
                        ("root", oid::ODS_ORGANISATION),
                        ("extension", accessor.organisation_ods.as_str()),
                    ],
                )
                .text("name", &accessor.organisation_name)
                .close("representedOrganization")
                .close("COCT_TP145102GB01.AssignedAuthor");
        }
        AccessorKind::System => {
            let asid = &accessor.user_id;
            if asid.len() != 12 || !asid.bytes().all(|b| b.is_ascii_digit()) {
                return Err(RenderError::NotAnAsid);
            }
            x.content_id("COCT_TP145104GB01#System")
                .open("COCT_TP145104GB01.System", &[])
                .empty("id", &[("root", oid::SDS_DEVICE), ("extension", asid)]);
            if let (Some(role), Some(name)) = (context.job_role, context.person_name) {
                x.open("indirectAuthority", &[])
                    .open("superiorAssignedEntity", &[])
                    .empty(
                        "code",
                        &[
                            ("code", &role.code),
                            ("codeSystem", oid::SDS_JOB_ROLE),
                            ("displayName", &role.name),
                        ],
                    )
                    .open("assignedPerson", &[])
                    .text("name", name)
                    .close("assignedPerson")
                    .close("superiorAssignedEntity")
                    .close("indirectAuthority");
            }
            x.open("maintainingOrganization", &[])
                .empty(
                    "id",
                    &[
                        ("root", oid::ODS_ORGANISATION),
                        ("extension", accessor.organisation_ods.as_str()),
                    ],
                )
                .text("name", &accessor.organisation_name)
                .close("maintainingOrganization")
                .close("COCT_TP145104GB01.System");
        }
    }
    let nhs = asn.nhs_number.expose();
    x.close("author")
        .open("queryByParameter", &[])
        .open("person.id", &[])
        .empty("value", &[("root", oid::NHS_NUMBER), ("extension", &nhs)]);
    if let Some(local) = asn.first_plan().and_then(|p| p.local_id.as_ref()) {
        x.empty("value", &[("root", oid::LOCAL_ID), ("extension", local)]);
    }
    x.close("person.id")
        .close("queryByParameter")
        .close("pertinentCP-ISNHSQuery")
        .close("pertinentInformation2")
        .open("reference", &[])
        .open("referredToLAUploadFile", &[])
        .empty("value", &[("extension", context.upload_file_id)])
        .close("referredToLAUploadFile")
        .close("reference")
        .close("pertinentCP-ISRecordAccess")
        .close("pertinentInformation1")
        .open("primaryInformationRecipient", &[])
        .content_id("COCT_TP145103GB01#IntendedRecipient")
        .open("COCT_TP145103GB01.IntendedRecipient", &[])
        .open("representedSourceOrganization", &[])
        .empty(
            "id",
            &[
                ("root", oid::ODS_ORGANISATION),
                ("extension", asn.authority.as_str()),
            ],
        )
        .text("name", context.council_name)
        .close("representedSourceOrganization")
        .close("COCT_TP145103GB01.IntendedRecipient")
        .close("primaryInformationRecipient");
    Ok(x.finish(ROOT))
}
