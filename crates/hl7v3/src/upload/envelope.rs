//! The file's envelope: its id, creation time, sender and counts, and the
//! CPF01 of a file that cannot be read.

use cpis_domain::OdsCode;

use crate::tree::{shown, Node, Ns, XmlError};
use crate::{oid, ts};

use super::*;

pub(super) fn xml_fail(e: XmlError, envelope: &Envelope) -> FileError {
    let (problem, location) = match e {
        XmlError::NotUtf8 | XmlError::UnsupportedEncoding => (FileProblem::NotUtf8, "/".to_owned()),
        XmlError::Doctype => (FileProblem::Doctype, "/".to_owned()),
        XmlError::UndefinedEntity => (FileProblem::UndefinedEntity, "/".to_owned()),
        XmlError::NotWellFormed { position } => (
            FileProblem::NotWellFormed,
            // Not an XPath: where the reader stopped.
            format!("byte offset {position}"),
        ),
        XmlError::TooLarge { path } => (FileProblem::TooLarge, path),
        XmlError::UnexpectedText { path } => (FileProblem::UnexpectedElement, path),
        XmlError::NoDocumentElement => (FileProblem::NotAnUpload, "/".to_owned()),
    };
    FileError {
        problem,
        location,
        file_id: envelope.file_id.as_ref().map(|(text, _)| text.clone()),
        sender: envelope.sender.clone().map(Box::new),
    }
}

#[derive(Default)]
pub(super) struct Envelope {
    pub(super) file_id: Option<(String, u64)>,
    pub(super) creation_time: Option<String>,
    pub(super) quantity: Option<u64>,
    pub(super) sender: Option<Organisation>,
}

pub(super) type EnvelopeFault = (FileProblem, String);

pub(super) fn no_children(node: Node<'_>, at: &str) -> Result<(), EnvelopeFault> {
    if let Some(child) = node.first_child() {
        return Err((
            FileProblem::UnexpectedElement,
            format!("{at}/{}", shown(child.name())),
        ));
    }
    if node.has_text() {
        return Err((FileProblem::UnexpectedElement, format!("{at}/text()")));
    }
    Ok(())
}

pub(super) fn required_attr<'n>(
    node: Node<'n>,
    name: &str,
    at: &str,
) -> Result<&'n str, EnvelopeFault> {
    node.attr(name)
        .ok_or_else(|| (FileProblem::MissingElement, format!("{at}/@{name}")))
}

impl Envelope {
    pub(super) fn read(&mut self, name: &'static str, node: Node<'_>) -> Result<(), EnvelopeFault> {
        let at = format!("/File/{name}");
        match name {
            "creationTime" => {
                no_children(node, &at)?;
                let value = required_attr(node, "value", &at)?;
                if !ts::is_ts(value) {
                    return Err((FileProblem::InvalidValue, format!("{at}/@value")));
                }
                self.creation_time = Some(value.to_owned());
            }
            "id" => {
                no_children(node, &at)?;
                let value = required_attr(node, "extension", &at)?;
                let sequence = (!value.is_empty()
                    && value.len() <= MAX_FILE_ID
                    && value.bytes().all(|b| b.is_ascii_digit()))
                .then(|| value.parse::<u64>().ok())
                .flatten()
                .filter(|s| (1..=cpis_domain::MAX_SEQUENCE).contains(s))
                .ok_or_else(|| (FileProblem::InvalidValue, format!("{at}/@extension")))?;
                self.file_id = Some((value.to_owned(), sequence));
            }
            "transmissionQuantity" => {
                no_children(node, &at)?;
                let value = required_attr(node, "value", &at)?;
                let quantity = (!value.is_empty()
                    && value.len() <= 10
                    && value.bytes().all(|b| b.is_ascii_digit()))
                .then(|| value.parse::<u64>().ok())
                .flatten()
                .ok_or_else(|| (FileProblem::InvalidValue, format!("{at}/@value")))?;
                self.quantity = Some(quantity);
            }
            _ => {
                self.sender = Some(read_sender(node, &at)?);
            }
        }
        Ok(())
    }
}

pub(super) fn read_sender(node: Node<'_>, at: &str) -> Result<Organisation, EnvelopeFault> {
    let mut organisation = None;
    for child in node.children() {
        if child.ns() != Ns::Hl7 || child.name() != "organisation" {
            return Err((
                FileProblem::UnexpectedElement,
                format!("{at}/{}", shown(child.name())),
            ));
        }
        if organisation.is_some() {
            return Err((
                FileProblem::RepeatedElement,
                format!("{at}/organisation[2]"),
            ));
        }
        organisation = Some(child);
    }
    if node.has_text() {
        return Err((FileProblem::UnexpectedElement, format!("{at}/text()")));
    }
    let org =
        organisation.ok_or_else(|| (FileProblem::MissingElement, format!("{at}/organisation")))?;
    let at = format!("{at}/organisation");
    let (mut id, mut name, mut telecoms) = (None, None, Vec::new());
    for child in org.children() {
        match (child.ns(), child.name()) {
            (Ns::Hl7, "id") => {
                let here = format!("{at}/id");
                if id.is_some() {
                    return Err((FileProblem::RepeatedElement, format!("{at}/id[2]")));
                }
                no_children(child, &here)?;
                let root = required_attr(child, "root", &here)?;
                if root != oid::ODS_ORGANISATION && root != oid::ODS_SITE {
                    return Err((FileProblem::InvalidValue, format!("{here}/@root")));
                }
                let ods = required_attr(child, "extension", &here)?;
                let ods = OdsCode::parse(ods)
                    .map_err(|_| (FileProblem::InvalidValue, format!("{here}/@extension")))?;
                id = Some((root.to_owned(), ods));
            }
            (Ns::Hl7, "name") => {
                let here = format!("{at}/name");
                if name.is_some() {
                    return Err((FileProblem::RepeatedElement, format!("{at}/name[2]")));
                }
                if let Some(c) = child.first_child() {
                    return Err((
                        FileProblem::UnexpectedElement,
                        format!("{here}/{}", shown(c.name())),
                    ));
                }
                let text = child.text().trim();
                if text.is_empty() || text.chars().any(char::is_control) {
                    return Err((FileProblem::InvalidValue, here));
                }
                name = Some(text.to_owned());
            }
            (Ns::Hl7, "telecom") => {
                let here = format!("{at}/telecom[{}]", telecoms.len() + 1);
                if telecoms.len() == 2 {
                    return Err((FileProblem::RepeatedElement, here));
                }
                no_children(child, &here)?;
                let use_code = required_attr(child, "use", &here)?;
                let value = required_attr(child, "value", &here)?;
                // The schema's TelecommunicationAddressUse codes (a list):
                // anything else would make the acknowledgement's echo invalid.
                const USES: [&str; 8] = ["H", "HP", "HV", "WP", "AS", "EC", "PG", "MC"];
                let valid_use = use_code.len() <= 40
                    && use_code.split_whitespace().next().is_some()
                    && use_code.split_whitespace().all(|u| USES.contains(&u));
                if !valid_use {
                    return Err((FileProblem::InvalidValue, format!("{here}/@use")));
                }
                if !is_tel(value) {
                    return Err((FileProblem::InvalidValue, format!("{here}/@value")));
                }
                telecoms.push(Telecom {
                    use_code: use_code.to_owned(),
                    value: value.to_owned(),
                });
            }
            _ => {
                return Err((
                    FileProblem::UnexpectedElement,
                    format!("{at}/{}", shown(child.name())),
                ))
            }
        }
    }
    if org.has_text() {
        return Err((FileProblem::UnexpectedElement, format!("{at}/text()")));
    }
    let (id_root, ods_code) =
        id.ok_or_else(|| (FileProblem::MissingElement, format!("{at}/id")))?;
    let name = name.ok_or_else(|| (FileProblem::MissingElement, format!("{at}/name")))?;
    if telecoms.is_empty() {
        return Err((FileProblem::MissingElement, format!("{at}/telecom")));
    }
    Ok(Organisation {
        id_root,
        ods_code,
        name,
        telecoms,
    })
}

/// `TEL.NHS.value.mandatory`: `tel:`, an optional `+`, digits.
pub(crate) fn is_tel(value: &str) -> bool {
    value.strip_prefix("tel:").is_some_and(|rest| {
        let digits = rest.strip_prefix('+').unwrap_or(rest);
        digits.len() <= 20 && digits.bytes().all(|b| b.is_ascii_digit())
    })
}
