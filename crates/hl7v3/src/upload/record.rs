//! One record of the file: its shape checked element by element (CPR07 with
//! the XPath of the first fault), its plans read into domain records.

use serde_json::{Map, Value};

use crate::tree::{shown, Node, Ns};
use crate::{oid, ts};

use super::*;

/// Collects the first structural fault of a record.
pub(super) struct Faults {
    pub(super) first: Option<(RecordProblem, String)>,
}

impl Faults {
    pub(super) fn add(&mut self, problem: RecordProblem, at: String) {
        if self.first.is_none() {
            self.first = Some((problem, at));
        }
    }

    /// Text directly in an element that holds elements only.
    pub(super) fn no_text(&mut self, node: &Node, at: &str) {
        if node.has_text() {
            self.add(RecordProblem::UnexpectedElement, format!("{at}/text()"));
        }
    }

    pub(super) fn leaf(&mut self, node: &Node, at: &str) {
        if let Some(c) = node.children.first() {
            self.add(
                RecordProblem::UnexpectedElement,
                format!("{at}/{}", shown(&c.name)),
            );
        }
        self.no_text(node, at);
    }
}

/// The single HL7 child of `node` named `name`: a fault if missing or repeated.
pub(super) fn one<'n>(
    node: &'n Node,
    name: &str,
    at: &str,
    faults: &mut Faults,
) -> Option<&'n Node> {
    let mut found = None;
    for child in node.children.iter().filter(|c| c.name == name) {
        if found.is_some() {
            faults.add(RecordProblem::RepeatedElement, format!("{at}/{name}[2]"));
            break;
        }
        found = Some(child);
    }
    if found.is_none() {
        faults.add(RecordProblem::MissingElement, format!("{at}/{name}"));
    }
    found
}

/// Faults any child not named in `allowed` (or not in the HL7 namespace).
pub(super) fn only(node: &Node, allowed: &[&str], at: &str, faults: &mut Faults) {
    for child in &node.children {
        let contentid = child.ns == Ns::Npfit && child.name == "contentId";
        let known = child.ns == Ns::Hl7 && allowed.contains(&child.name.as_str());
        if !(known || contentid && allowed.contains(&"npfitlc:contentId")) {
            faults.add(
                RecordProblem::UnexpectedElement,
                format!("{at}/{}", shown(&child.name)),
            );
        }
    }
    faults.no_text(node, at);
}

pub(super) struct SubjectRead {
    pub(super) unborn: bool,
    /// XPath of the subject's template element.
    pub(super) at: String,
    pub(super) nhs: Option<(String, String)>,
    pub(super) local: Option<(String, String)>,
    pub(super) echo: Option<SubjectEcho>,
}

pub(super) fn read_record(node: &Node, index: usize, echo: bool) -> (Vec<Row>, Option<RecordEcho>) {
    let at = format!("/File/record[{}]", index + 1);
    let mut faults = Faults { first: None };
    only(node, &["CP-ISRecord"], &at, &mut faults);
    let record = one(node, "CP-ISRecord", &at, &mut faults);
    let at = format!("{at}/CP-ISRecord");
    let mut plans: Vec<(PlanKind, String, PlanRead)> = Vec::new();
    let mut subjects: Vec<SubjectRead> = Vec::new();
    if let Some(record) = record {
        only(
            record,
            &["pertinentInformation", "subject"],
            &at,
            &mut faults,
        );
        let infos: Vec<&Node> = record
            .children
            .iter()
            .filter(|c| c.name == "pertinentInformation")
            .collect();
        if infos.is_empty() {
            faults.add(
                RecordProblem::MissingElement,
                format!("{at}/pertinentInformation"),
            );
        }
        for (m, info) in infos.iter().enumerate() {
            let here = format!("{at}/pertinentInformation[{}]", m + 1);
            if m >= 3 {
                faults.add(RecordProblem::RepeatedElement, here);
                break;
            }
            if let Some((kind, plan_at, plan)) = read_plan(info, &here, &mut faults) {
                plans.push((kind, plan_at, plan));
            }
        }
        let subject_nodes: Vec<&Node> = record
            .children
            .iter()
            .filter(|c| c.name == "subject")
            .collect();
        if subject_nodes.is_empty() {
            faults.add(RecordProblem::MissingElement, format!("{at}/subject"));
        }
        for (k, subject) in subject_nodes.iter().enumerate() {
            let here = format!("{at}/subject[{}]", k + 1);
            if k >= 2 {
                faults.add(RecordProblem::RepeatedElement, here);
                break;
            }
            if let Some(read) = read_subject(subject, &here, echo, &mut faults) {
                if subjects.iter().any(|s| s.unborn == read.unborn) {
                    faults.add(RecordProblem::RepeatedElement, read.at.clone());
                } else {
                    subjects.push(read);
                }
            }
        }
    }

    let mut rows = Vec::new();
    for (kind, plan_at, plan) in &plans {
        let subject = subjects
            .iter()
            .find(|s| s.unborn == (*kind == PlanKind::Ucp));
        let mut value = Map::new();
        let mut locations = Vec::new();
        value.insert("plan_type".into(), Value::from(kind.plan_type()));
        match subject {
            Some(s) => {
                match &s.nhs {
                    Some((number, number_at)) => {
                        value.insert("nhs_number".into(), Value::from(number.as_str()));
                        locations.push(("nhs_number", number_at.clone()));
                    }
                    None => locations.push(("nhs_number", s.at.clone())),
                }
                if let Some((local, local_at)) = &s.local {
                    value.insert("local_id".into(), Value::from(local.as_str()));
                    locations.push(("local_id", local_at.clone()));
                }
            }
            None => {
                let template = if *kind == PlanKind::Ucp {
                    "COCT_TP145100GB01.UnbornChild"
                } else {
                    "COCT_TP145101GB01.Child"
                };
                locations.push(("nhs_number", format!("{at}/subject/{template}")));
            }
        }
        for (member, date) in [
            ("start_date", &plan.start),
            ("end_date", &plan.end),
            ("delete_date", &plan.delete),
        ] {
            match date {
                Some((raw, date_at)) => {
                    let iso = ts::plan_date(raw).map_or_else(String::new, |d| d.iso);
                    value.insert(member.into(), Value::from(iso));
                    locations.push((member, date_at.clone()));
                }
                None => locations.push((member, plan_at.clone())),
            }
        }
        if faults.first.is_some() {
            value.insert(RECORD_ERROR_MEMBER.into(), Value::Bool(true));
        }
        rows.push(Row {
            record: index,
            value,
            locations,
            whole: plan_at.clone(),
            problem: faults.first.clone(),
        });
    }
    if rows.is_empty() {
        // No plan could be read: one failing domain record stands for the
        // record (its child, if named, is still protected in a snapshot).
        let mut value = Map::new();
        if let Some((number, _)) = subjects.iter().find_map(|s| s.nhs.as_ref()) {
            value.insert("nhs_number".into(), Value::from(number.as_str()));
        }
        value.insert(RECORD_ERROR_MEMBER.into(), Value::Bool(true));
        let fault = faults.first.clone().unwrap_or((
            RecordProblem::MissingElement,
            format!("{at}/pertinentInformation"),
        ));
        rows.push(Row {
            record: index,
            value,
            locations: Vec::new(),
            whole: at.clone(),
            problem: Some(fault),
        });
    }

    let echo = echo.then(|| {
        let plan_echoes: Vec<PlanEcho> = plans
            .iter()
            .filter_map(|(kind, _, plan)| {
                let date = |d: &Option<(String, String)>| -> Option<Option<String>> {
                    match d {
                        None => Some(None),
                        Some((raw, _)) => ts::plan_date(raw).map(|d| Some(d.twelve)),
                    }
                };
                Some(PlanEcho {
                    kind: *kind,
                    start: date(&plan.start)??,
                    end: date(&plan.end)?,
                    delete: date(&plan.delete)?,
                })
            })
            .collect();
        let subject_echoes: Vec<SubjectEcho> =
            subjects.into_iter().filter_map(|s| s.echo).collect();
        let echoable = faults.first.is_none()
            && !plan_echoes.is_empty()
            && plan_echoes.len() == plans.len()
            && plan_echoes
                .iter()
                .all(|p| p.kind != PlanKind::Ucp || p.end.is_some())
            && !subject_echoes.is_empty();
        RecordEcho {
            echoable,
            plans: plan_echoes,
            subjects: subject_echoes,
        }
    });
    (rows, echo)
}

pub(super) struct PlanRead {
    pub(super) start: Option<(String, String)>,
    pub(super) end: Option<(String, String)>,
    pub(super) delete: Option<(String, String)>,
}

pub(super) fn read_plan(
    info: &Node,
    at: &str,
    faults: &mut Faults,
) -> Option<(PlanKind, String, PlanRead)> {
    let mut template = None;
    for child in &info.children {
        if child.ns == Ns::Npfit && child.name == "contentId" {
            continue;
        }
        match (child.ns, PlanKind::from_element(&child.name)) {
            (Ns::Hl7, Some(kind)) if template.is_none() => template = Some((kind, child)),
            (Ns::Hl7, Some(_)) => faults.add(
                RecordProblem::RepeatedElement,
                format!("{at}/{}", shown(&child.name)),
            ),
            _ => faults.add(
                RecordProblem::UnexpectedElement,
                format!("{at}/{}", shown(&child.name)),
            ),
        }
    }
    faults.no_text(info, at);
    let Some((kind, plan)) = template else {
        faults.add(
            RecordProblem::MissingElement,
            format!("{at}/COCT_TP146101GB01.CPPInformation"),
        );
        return None;
    };
    let plan_at = format!("{at}/{}", kind.element());
    only(
        plan,
        &["component", "component1", "component2"],
        &plan_at,
        faults,
    );
    let prefix = kind.prefix();
    let mut date = |component: &str, suffix: &str, required: bool| {
        let mut found = None;
        for c in plan.children.iter().filter(|c| c.name == component) {
            if found.is_some() {
                faults.add(
                    RecordProblem::RepeatedElement,
                    format!("{plan_at}/{component}[2]"),
                );
                break;
            }
            found = Some(c);
        }
        let Some(c) = found else {
            if required {
                faults.add(
                    RecordProblem::MissingElement,
                    format!("{plan_at}/{component}"),
                );
            }
            return None;
        };
        let c_at = format!("{plan_at}/{component}");
        let name = format!("{prefix}{suffix}");
        only(c, &[name.as_str()], &c_at, faults);
        let inner = one(c, &name, &c_at, faults)?;
        let inner_at = format!("{c_at}/{name}");
        only(inner, &["value"], &inner_at, faults);
        let value = one(inner, "value", &inner_at, faults)?;
        let value_at = format!("{inner_at}/value");
        faults.leaf(value, &value_at);
        let Some(raw) = value.attr("value") else {
            faults.add(RecordProblem::MissingElement, format!("{value_at}/@value"));
            return None;
        };
        Some((raw.to_owned(), format!("{value_at}/@value")))
    };
    let start = date("component", "StartDate", true);
    let end = date("component1", "EndDate", kind == PlanKind::Ucp);
    let delete = date("component2", "DeleteDate", false);
    Some((kind, plan_at, PlanRead { start, end, delete }))
}

pub(super) fn read_subject(
    subject: &Node,
    at: &str,
    echo: bool,
    faults: &mut Faults,
) -> Option<SubjectRead> {
    let mut template = None;
    for child in &subject.children {
        if child.ns == Ns::Npfit && child.name == "contentId" {
            continue;
        }
        let unborn = match (child.ns, child.name.as_str()) {
            (Ns::Hl7, "COCT_TP145101GB01.Child") => false,
            (Ns::Hl7, "COCT_TP145100GB01.UnbornChild") => true,
            _ => {
                faults.add(
                    RecordProblem::UnexpectedElement,
                    format!("{at}/{}", shown(&child.name)),
                );
                continue;
            }
        };
        if template.is_some() {
            faults.add(
                RecordProblem::RepeatedElement,
                format!("{at}/{}", shown(&child.name)),
            );
        } else {
            template = Some((unborn, child));
        }
    }
    faults.no_text(subject, at);
    let Some((unborn, node)) = template else {
        faults.add(
            RecordProblem::MissingElement,
            format!("{at}/COCT_TP145101GB01.Child"),
        );
        return None;
    };
    let t_at = format!("{at}/{}", node.name);
    // Child: id[1..2], childPerson. UnbornChild: parentMotherPerson, whose
    // playedMother holds the ids.
    let (person, person_at, id_holder, id_holder_at) = if unborn {
        only(node, &["parentMotherPerson"], &t_at, faults);
        let person = one(node, "parentMotherPerson", &t_at, faults);
        let person_at = format!("{t_at}/parentMotherPerson");
        let holder = person.and_then(|p| {
            only(
                p,
                &["birthTime", "name", "playedMother"],
                &person_at,
                faults,
            );
            let mother = one(p, "playedMother", &person_at, faults)?;
            only(
                mother,
                &["id"],
                &format!("{person_at}/playedMother"),
                faults,
            );
            Some(mother)
        });
        let holder_at = format!("{person_at}/playedMother");
        (person, person_at, holder, holder_at)
    } else {
        only(node, &["id", "childPerson"], &t_at, faults);
        let person = one(node, "childPerson", &t_at, faults);
        let person_at = format!("{t_at}/childPerson");
        if let Some(p) = person {
            only(p, &["birthTime", "name"], &person_at, faults);
        }
        (person, person_at, Some(node), t_at.clone())
    };
    let mut nhs = None;
    let mut local = None;
    let mut ids = Vec::new();
    if let Some(holder) = id_holder {
        let id_nodes: Vec<&Node> = holder.children.iter().filter(|c| c.name == "id").collect();
        if id_nodes.is_empty() {
            faults.add(RecordProblem::MissingElement, format!("{id_holder_at}/id"));
        }
        for (j, id) in id_nodes.iter().enumerate() {
            let id_at = format!("{id_holder_at}/id[{}]", j + 1);
            if j >= 2 {
                faults.add(RecordProblem::RepeatedElement, id_at);
                break;
            }
            faults.leaf(id, &id_at);
            let (Some(root), Some(extension)) = (id.attr("root"), id.attr("extension")) else {
                faults.add(RecordProblem::MissingElement, id_at);
                continue;
            };
            let slot = match root {
                oid::NHS_NUMBER => &mut nhs,
                oid::LOCAL_ID => &mut local,
                _ => {
                    faults.add(RecordProblem::InvalidValue, format!("{id_at}/@root"));
                    continue;
                }
            };
            if slot.is_some() {
                faults.add(RecordProblem::RepeatedElement, id_at);
                continue;
            }
            *slot = Some((extension.to_owned(), format!("{id_at}/@extension")));
            if echo {
                ids.push(IdEcho {
                    root: if root == oid::NHS_NUMBER {
                        oid::NHS_NUMBER
                    } else {
                        oid::LOCAL_ID
                    },
                    extension: extension.to_owned(),
                    assigning_authority_name: id.attr("assigningAuthorityName").map(str::to_owned),
                });
            }
        }
    }
    // Date of birth and name: the shape is checked, the values are kept only
    // for an acknowledgement's echo.
    let mut demographics = None;
    if let Some(person) = person {
        let birth = one(person, "birthTime", &person_at, faults);
        let birth_time = birth.and_then(|b| {
            let b_at = format!("{person_at}/birthTime");
            faults.leaf(b, &b_at);
            match b.attr("value") {
                Some(v) if ts::is_ts(v) => Some(v),
                Some(_) => {
                    faults.add(RecordProblem::InvalidValue, format!("{b_at}/@value"));
                    None
                }
                None => {
                    faults.add(RecordProblem::MissingElement, format!("{b_at}/@value"));
                    None
                }
            }
        });
        let name_at = format!("{person_at}/name");
        let name = one(person, "name", &person_at, faults).and_then(|n| {
            only(n, &["given", "family"], &name_at, faults);
            let given = one(n, "given", &name_at, faults);
            let family = one(n, "family", &name_at, faults);
            for (part, part_at) in [(given, "given"), (family, "family")] {
                if let Some(p) = part {
                    if let Some(c) = p.children.first() {
                        faults.add(
                            RecordProblem::UnexpectedElement,
                            format!("{name_at}/{part_at}/{}", shown(&c.name)),
                        );
                    }
                    if p.text.trim().is_empty() {
                        faults.add(
                            RecordProblem::MissingElement,
                            format!("{name_at}/{part_at}/text()"),
                        );
                    }
                }
            }
            Some((given?, family?))
        });
        if echo {
            if let (Some(b), Some((g, f))) = (birth_time, name) {
                demographics = Some((
                    b.to_owned(),
                    g.text.trim().to_owned(),
                    f.text.trim().to_owned(),
                ));
            }
        }
    }
    let echo = match demographics {
        Some((birth_time, given, family)) if !ids.is_empty() => Some(SubjectEcho {
            unborn,
            ids,
            birth_time,
            given,
            family,
        }),
        _ => None,
    };
    Some(SubjectRead {
        unborn,
        at: t_at,
        nhs,
        local,
        echo,
    })
}
