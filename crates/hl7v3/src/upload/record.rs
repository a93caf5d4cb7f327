//! One record of the file: its shape checked element by element (CPR07 with
//! the XPath of the first fault), its plans read into domain records.

use crate::tree::{shown, Node, Ns};
use crate::{oid, ts};

use super::path::At;
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
    pub(super) fn no_text(&mut self, node: Node<'_>, at: &At<'_>) {
        if node.has_text() {
            self.add(RecordProblem::UnexpectedElement, at.join("text()"));
        }
    }

    pub(super) fn leaf(&mut self, node: Node<'_>, at: &At<'_>) {
        if let Some(c) = node.first_child() {
            self.add(RecordProblem::UnexpectedElement, at.join(shown(c.name())));
        }
        self.no_text(node, at);
    }
}

/// The single HL7 child of `node` named `name`: a fault if missing or repeated.
pub(super) fn one<'n>(
    node: Node<'n>,
    name: &str,
    at: &At<'_>,
    faults: &mut Faults,
) -> Option<Node<'n>> {
    let mut found = None;
    for child in node.children().filter(|c| c.name() == name) {
        if found.is_some() {
            faults.add(RecordProblem::RepeatedElement, at.nth(name, 2).xpath());
            break;
        }
        found = Some(child);
    }
    if found.is_none() {
        faults.add(RecordProblem::MissingElement, at.join(name));
    }
    found
}

/// Faults any child not named in `allowed` (or not in the HL7 namespace).
pub(super) fn only(node: Node<'_>, allowed: &[&str], at: &At<'_>, faults: &mut Faults) {
    for child in node.children() {
        let contentid = child.ns() == Ns::Npfit && child.name() == "contentId";
        let known = child.ns() == Ns::Hl7 && allowed.contains(&child.name());
        if !(known || contentid && allowed.contains(&"npfitlc:contentId")) {
            faults.add(
                RecordProblem::UnexpectedElement,
                at.join(shown(child.name())),
            );
        }
    }
    faults.no_text(node, at);
}

/// A subject read: which of the record's `subject` elements, and the
/// position of each identifier it gave.
pub(super) struct SubjectRead {
    pub(super) unborn: bool,
    /// 0-based index of the `subject` element.
    pub(super) index: usize,
    /// The NHS number and the 0-based index of its `id`.
    pub(super) nhs: Option<(String, usize)>,
    pub(super) local: Option<(String, usize)>,
    pub(super) echo: Option<SubjectEcho>,
}

/// The subject template element of a child or an unborn child.
pub(super) fn subject_template(unborn: bool) -> &'static str {
    if unborn {
        "COCT_TP145100GB01.UnbornChild"
    } else {
        "COCT_TP145101GB01.Child"
    }
}

pub(super) fn read_record(
    node: Node<'_>,
    index: usize,
    echo: bool,
) -> (Vec<Row>, Option<RecordEcho>) {
    let file = At::file();
    let record_at = file.nth("record", index + 1);
    let mut faults = Faults { first: None };
    only(node, &["CP-ISRecord"], &record_at, &mut faults);
    let record = one(node, "CP-ISRecord", &record_at, &mut faults);
    let at = record_at.child("CP-ISRecord");
    let mut plans: Vec<(PlanKind, usize, PlanRead<'_>)> = Vec::new();
    let mut subjects: Vec<SubjectRead> = Vec::new();
    if let Some(record) = record {
        only(
            record,
            &["pertinentInformation", "subject"],
            &at,
            &mut faults,
        );
        let mut infos = record
            .children()
            .filter(|c| c.name() == "pertinentInformation")
            .peekable();
        if infos.peek().is_none() {
            faults.add(
                RecordProblem::MissingElement,
                at.join("pertinentInformation"),
            );
        }
        for (m, info) in infos.enumerate() {
            let here = at.nth("pertinentInformation", m + 1);
            if m >= 3 {
                faults.add(RecordProblem::RepeatedElement, here.xpath());
                break;
            }
            if let Some((kind, plan)) = read_plan(info, &here, &mut faults) {
                plans.push((kind, m, plan));
            }
        }
        let mut subject_nodes = record
            .children()
            .filter(|c| c.name() == "subject")
            .peekable();
        if subject_nodes.peek().is_none() {
            faults.add(RecordProblem::MissingElement, at.join("subject"));
        }
        for (k, subject) in subject_nodes.enumerate() {
            let here = at.nth("subject", k + 1);
            if k >= 2 {
                faults.add(RecordProblem::RepeatedElement, here.xpath());
                break;
            }
            if let Some(read) = read_subject(subject, k, &here, echo, &mut faults) {
                if subjects.iter().any(|s| s.unborn == read.unborn) {
                    faults.add(
                        RecordProblem::RepeatedElement,
                        here.join(subject_template(read.unborn)),
                    );
                } else {
                    subjects.push(read);
                }
            }
        }
    }

    let mut rows = Vec::new();
    for (kind, m, plan) in &plans {
        let subject = subjects
            .iter()
            .find(|s| s.unborn == (*kind == PlanKind::Ucp));
        let date =
            |d: &Option<&str>| d.map(|raw| ts::plan_date(raw).map_or_else(String::new, |d| d.iso));
        rows.push(Row {
            record: index,
            value: RowValue {
                delete_date: date(&plan.delete),
                end_date: date(&plan.end),
                record_error: faults.first.is_some(),
                local_id: subject.and_then(|s| s.local.as_ref().map(|(l, _)| l.clone())),
                nhs_number: subject.and_then(|s| s.nhs.as_ref().map(|(n, _)| n.clone())),
                plan_type: Some(kind.plan_type()),
                start_date: date(&plan.start),
            },
            paths: RowPaths::Plan {
                kind: *kind,
                info: *m,
                dates: [
                    plan.start.is_some(),
                    plan.end.is_some(),
                    plan.delete.is_some(),
                ],
                subject: subject.map(|s| SubjectPath {
                    index: s.index,
                    unborn: s.unborn,
                    nhs_id: s.nhs.as_ref().map(|(_, j)| *j),
                    local_id: s.local.as_ref().map(|(_, j)| *j),
                }),
            },
            problem: faults.first.clone(),
        });
    }
    if rows.is_empty() {
        // No plan could be read: one failing domain record stands for the
        // record (its child, if named, is still protected in a snapshot).
        let fault = faults.first.clone().unwrap_or((
            RecordProblem::MissingElement,
            at.join("pertinentInformation"),
        ));
        rows.push(Row {
            record: index,
            value: RowValue {
                nhs_number: subjects
                    .iter()
                    .find_map(|s| s.nhs.as_ref().map(|(n, _)| n.clone())),
                record_error: true,
                ..RowValue::default()
            },
            paths: RowPaths::Record,
            problem: Some(fault),
        });
    }

    let echo = echo.then(|| {
        let plan_echoes: Vec<PlanEcho> = plans
            .iter()
            .filter_map(|(kind, _, plan)| {
                let date = |d: &Option<&str>| -> Option<Option<String>> {
                    match d {
                        None => Some(None),
                        Some(raw) => ts::plan_date(raw).map(|d| Some(d.twelve)),
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

/// A plan's dates as the file gives them (`value/@value`).
pub(super) struct PlanRead<'t> {
    pub(super) start: Option<&'t str>,
    pub(super) end: Option<&'t str>,
    pub(super) delete: Option<&'t str>,
}

/// The components holding a plan's start, end and delete dates.
pub(super) const DATE_COMPONENTS: [&str; 3] = ["component", "component1", "component2"];

pub(super) fn read_plan<'t>(
    info: Node<'t>,
    at: &At<'_>,
    faults: &mut Faults,
) -> Option<(PlanKind, PlanRead<'t>)> {
    let mut template = None;
    for child in info.children() {
        if child.ns() == Ns::Npfit && child.name() == "contentId" {
            continue;
        }
        match (child.ns(), PlanKind::from_element(child.name())) {
            (Ns::Hl7, Some(kind)) if template.is_none() => template = Some((kind, child)),
            (Ns::Hl7, Some(_)) => {
                faults.add(RecordProblem::RepeatedElement, at.join(shown(child.name())))
            }
            _ => faults.add(
                RecordProblem::UnexpectedElement,
                at.join(shown(child.name())),
            ),
        }
    }
    faults.no_text(info, at);
    let Some((kind, plan)) = template else {
        faults.add(
            RecordProblem::MissingElement,
            at.join("COCT_TP146101GB01.CPPInformation"),
        );
        return None;
    };
    let plan_at = at.child(kind.element());
    only(plan, &DATE_COMPONENTS, &plan_at, faults);
    let mut date = |which: usize, required: bool| {
        let component = DATE_COMPONENTS[which];
        let mut found = None;
        for c in plan.children().filter(|c| c.name() == component) {
            if found.is_some() {
                faults.add(
                    RecordProblem::RepeatedElement,
                    plan_at.nth(component, 2).xpath(),
                );
                break;
            }
            found = Some(c);
        }
        let Some(c) = found else {
            if required {
                faults.add(RecordProblem::MissingElement, plan_at.join(component));
            }
            return None;
        };
        let c_at = plan_at.child(component);
        let name = kind.date_element(which);
        only(c, &[name], &c_at, faults);
        let inner = one(c, name, &c_at, faults)?;
        let inner_at = c_at.child(name);
        only(inner, &["value"], &inner_at, faults);
        let value = one(inner, "value", &inner_at, faults)?;
        let value_at = inner_at.child("value");
        faults.leaf(value, &value_at);
        let Some(raw) = value.attr("value") else {
            faults.add(RecordProblem::MissingElement, value_at.join("@value"));
            return None;
        };
        Some(raw)
    };
    let start = date(0, true);
    let end = date(1, kind == PlanKind::Ucp);
    let delete = date(2, false);
    Some((kind, PlanRead { start, end, delete }))
}

pub(super) fn read_subject(
    subject: Node<'_>,
    index: usize,
    at: &At<'_>,
    echo: bool,
    faults: &mut Faults,
) -> Option<SubjectRead> {
    let mut template = None;
    for child in subject.children() {
        if child.ns() == Ns::Npfit && child.name() == "contentId" {
            continue;
        }
        let unborn = match (child.ns(), child.name()) {
            (Ns::Hl7, "COCT_TP145101GB01.Child") => false,
            (Ns::Hl7, "COCT_TP145100GB01.UnbornChild") => true,
            _ => {
                faults.add(
                    RecordProblem::UnexpectedElement,
                    at.join(shown(child.name())),
                );
                continue;
            }
        };
        if template.is_some() {
            faults.add(RecordProblem::RepeatedElement, at.join(shown(child.name())));
        } else {
            template = Some((unborn, child));
        }
    }
    faults.no_text(subject, at);
    let Some((unborn, node)) = template else {
        faults.add(
            RecordProblem::MissingElement,
            at.join("COCT_TP145101GB01.Child"),
        );
        return None;
    };
    let t_at = at.child(subject_template(unborn));
    // Child: id[1..2], childPerson. UnbornChild: parentMotherPerson, whose
    // playedMother holds the ids.
    let person_step = if unborn {
        "parentMotherPerson"
    } else {
        "childPerson"
    };
    let person_at = t_at.child(person_step);
    let mother_at = person_at.child("playedMother");
    let (person, id_holder, id_holder_at) = if unborn {
        only(node, &["parentMotherPerson"], &t_at, faults);
        let person = one(node, "parentMotherPerson", &t_at, faults);
        let holder = person.and_then(|p| {
            only(
                p,
                &["birthTime", "name", "playedMother"],
                &person_at,
                faults,
            );
            let mother = one(p, "playedMother", &person_at, faults)?;
            only(mother, &["id"], &mother_at, faults);
            Some(mother)
        });
        (person, holder, &mother_at)
    } else {
        only(node, &["id", "childPerson"], &t_at, faults);
        let person = one(node, "childPerson", &t_at, faults);
        if let Some(p) = person {
            only(p, &["birthTime", "name"], &person_at, faults);
        }
        (person, Some(node), &t_at)
    };
    let mut nhs = None;
    let mut local = None;
    let mut ids = Vec::new();
    if let Some(holder) = id_holder {
        let mut id_nodes = holder.children().filter(|c| c.name() == "id").peekable();
        if id_nodes.peek().is_none() {
            faults.add(RecordProblem::MissingElement, id_holder_at.join("id"));
        }
        for (j, id) in id_nodes.enumerate() {
            let id_at = id_holder_at.nth("id", j + 1);
            if j >= 2 {
                faults.add(RecordProblem::RepeatedElement, id_at.xpath());
                break;
            }
            faults.leaf(id, &id_at);
            let (Some(root), Some(extension)) = (id.attr("root"), id.attr("extension")) else {
                faults.add(RecordProblem::MissingElement, id_at.xpath());
                continue;
            };
            let slot = match root {
                oid::NHS_NUMBER => &mut nhs,
                oid::LOCAL_ID => &mut local,
                _ => {
                    faults.add(RecordProblem::InvalidValue, id_at.join("@root"));
                    continue;
                }
            };
            if slot.is_some() {
                faults.add(RecordProblem::RepeatedElement, id_at.xpath());
                continue;
            }
            *slot = Some((extension.to_owned(), j));
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
            let b_at = person_at.child("birthTime");
            faults.leaf(b, &b_at);
            match b.attr("value") {
                Some(v) if ts::is_ts(v) => Some(v),
                Some(_) => {
                    faults.add(RecordProblem::InvalidValue, b_at.join("@value"));
                    None
                }
                None => {
                    faults.add(RecordProblem::MissingElement, b_at.join("@value"));
                    None
                }
            }
        });
        let name_at = person_at.child("name");
        let name = one(person, "name", &person_at, faults).and_then(|n| {
            only(n, &["given", "family"], &name_at, faults);
            let given = one(n, "given", &name_at, faults);
            let family = one(n, "family", &name_at, faults);
            for (part, step) in [(given, "given"), (family, "family")] {
                if let Some(p) = part {
                    let part_at = name_at.child(step);
                    if let Some(c) = p.first_child() {
                        faults.add(
                            RecordProblem::UnexpectedElement,
                            part_at.join(shown(c.name())),
                        );
                    }
                    if p.text().trim().is_empty() {
                        faults.add(RecordProblem::MissingElement, part_at.join("text()"));
                    }
                }
            }
            Some((given?, family?))
        });
        if echo {
            if let (Some(b), Some((g, f))) = (birth_time, name) {
                demographics = Some((
                    b.to_owned(),
                    g.text().trim().to_owned(),
                    f.text().trim().to_owned(),
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
        index,
        nhs,
        local,
        echo,
    })
}
