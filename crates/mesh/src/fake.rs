//! An in-memory MESH for tests (feature `test-support`): several mailboxes,
//! inbox paging, tracking by local id, REPORTs, duplicate deliveries and
//! injected faults, behind the same [`Mailbox`] port as the real client.
//!
//! Faults model a process that dies around a MESH call: [`Fault::Before`]
//! fails the call with nothing done; [`Fault::After`] lets MESH do it (the
//! file is sent, the message acknowledged) and then fails the call, as a
//! crash after the side effect and before the caller recorded it would;
//! [`Fault::Refused`] is MESH refusing it (for example 417, an unknown
//! recipient). Each applies to the next matching call only.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::{InboxPage, Mailbox, MeshError, Message, MessageMeta, MessageType, Outgoing, Tracked};

/// A MESH call, for injecting a fault into the next one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Inbox,
    Download,
    Acknowledge,
    Send,
    Track,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The call fails (transiently) and MESH did nothing.
    Before,
    /// MESH did it; then the call fails, as if the caller had crashed.
    After,
    /// MESH refuses the call.
    Refused,
}

/// A file one mailbox sent, as MESH holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    pub message_id: String,
    pub from: String,
    pub to: String,
    pub workflow_id: String,
    pub file_name: String,
    pub local_id: String,
    pub subject: Option<String>,
    pub body: Vec<u8>,
}

#[derive(Debug, Default)]
struct State {
    registered: Vec<String>,
    /// Each mailbox's inbox, by MESH's order (the message's number).
    inboxes: BTreeMap<String, BTreeMap<u64, Message>>,
    sent: Vec<Sent>,
    faults: Vec<(String, Op, Fault)>,
    faults_met: usize,
    next: u64,
    page_size: usize,
}

/// The whole MESH: clones share it.
#[derive(Debug, Clone)]
pub struct FakeMesh {
    state: Arc<Mutex<State>>,
}

impl Default for FakeMesh {
    fn default() -> Self {
        Self::new()
    }
}

/// Real MESH ids look like `20250301020000123456_ABC123`; numbered here.
fn message_id(n: u64) -> String {
    format!("20250301{n:012}_{n:06X}")
}

fn number_of(id: &str) -> Option<u64> {
    id.get(8..20)?.parse().ok()
}

impl FakeMesh {
    /// An empty MESH listing at most 500 ids a page.
    pub fn new() -> Self {
        Self {
            state: Arc::new(Mutex::new(State {
                page_size: 500,
                ..State::default()
            })),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Lists at most `size` ids a page (to exercise paging).
    pub fn with_page_size(self, size: usize) -> Self {
        self.state().page_size = size.max(1);
        self
    }

    /// Registers `id` and returns it as a [`Mailbox`].
    pub fn mailbox(&self, id: &str) -> FakeMailbox {
        let mut state = self.state();
        if !state.registered.iter().any(|m| m == id) {
            state.registered.push(id.to_owned());
        }
        FakeMailbox {
            id: id.to_owned(),
            mesh: self.clone(),
        }
    }

    /// A DATA message from `from` in `to`'s inbox (a council's case system
    /// sending its file); returns its message id.
    pub fn deliver(&self, from: &str, to: &str, workflow_id: &str, body: &[u8]) -> String {
        self.put(
            to,
            MessageMeta {
                id: String::new(),
                message_type: MessageType::Data,
                from: from.to_owned(),
                workflow_id: Some(workflow_id.to_owned()),
                file_name: Some("LA_UPLOAD.xml".to_owned()),
                local_id: None,
                linked_message_id: None,
                status_code: None,
                status_description: None,
            },
            body.to_vec(),
        )
    }

    /// A REPORT in `to`'s inbox on the message it sent with `local_id`
    /// (e.g. status `14`, "not collected by the recipient within 5 days").
    pub fn report(&self, to: &str, local_id: &str, status_code: &str, description: &str) -> String {
        let linked = self
            .state()
            .sent
            .iter()
            .find(|s| s.from == to && s.local_id == local_id)
            .map(|s| s.message_id.clone());
        self.put(
            to,
            MessageMeta {
                id: String::new(),
                message_type: MessageType::Report,
                from: "MESHREPORT".to_owned(),
                workflow_id: None,
                file_name: None,
                local_id: Some(local_id.to_owned()),
                linked_message_id: linked,
                status_code: Some(status_code.to_owned()),
                status_description: Some(description.to_owned()),
            },
            Vec::new(),
        )
    }

    fn put(&self, to: &str, mut meta: MessageMeta, body: Vec<u8>) -> String {
        let mut state = self.state();
        state.next += 1;
        let n = state.next;
        meta.id = message_id(n);
        let id = meta.id.clone();
        state
            .inboxes
            .entry(to.to_owned())
            .or_default()
            .insert(n, Message { meta, body });
        id
    }

    /// Delivers message `id` to `to` again, as at-least-once delivery may
    /// (after an acknowledgement MESH lost, say): the same id back in the
    /// inbox, content unchanged. `message` is what was delivered first.
    pub fn deliver_again(&self, to: &str, message: &Message) {
        let n = number_of(&message.meta.id).expect("an id this fake made");
        self.state()
            .inboxes
            .entry(to.to_owned())
            .or_default()
            .insert(n, message.clone());
    }

    /// What is in `mailbox`'s inbox now, oldest first.
    pub fn inbox_of(&self, mailbox: &str) -> Vec<Message> {
        self.state()
            .inboxes
            .get(mailbox)
            .map(|inbox| inbox.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Every file sent to `mailbox`, in sending order.
    pub fn sent_to(&self, mailbox: &str) -> Vec<Sent> {
        self.state()
            .sent
            .iter()
            .filter(|s| s.to == mailbox)
            .cloned()
            .collect()
    }

    /// Injects `fault` into `mailbox`'s next `op` call.
    pub fn fail_next(&self, mailbox: &str, op: Op, fault: Fault) {
        self.state().faults.push((mailbox.to_owned(), op, fault));
    }

    /// Faults injected and not yet met.
    pub fn pending_faults(&self) -> usize {
        self.state().faults.len()
    }

    /// Faults met so far (so a test can show its faults happened).
    pub fn faults_met(&self) -> usize {
        self.state().faults_met
    }

    /// Drops the faults not yet met.
    pub fn clear_faults(&self) {
        self.state().faults.clear();
    }

    fn take_fault(&self, mailbox: &str, op: Op) -> Option<Fault> {
        let mut state = self.state();
        let at = state
            .faults
            .iter()
            .position(|(m, o, _)| m == mailbox && *o == op)?;
        state.faults_met += 1;
        Some(state.faults.remove(at).2)
    }
}

/// One mailbox of a [`FakeMesh`].
#[derive(Debug, Clone)]
pub struct FakeMailbox {
    id: String,
    mesh: FakeMesh,
}

fn injected(fault: Fault, op: Op) -> MeshError {
    match fault {
        Fault::Refused => MeshError::Refused(format!("{op:?} refused (injected)")),
        _ => MeshError::Transient(format!("{op:?} failed (injected)")),
    }
}

impl FakeMailbox {
    /// Runs `op`'s side effect unless a fault comes first; fails after it
    /// for [`Fault::After`].
    fn call<T>(&self, op: Op, effect: impl FnOnce(&mut State) -> T) -> Result<T, MeshError> {
        let fault = self.mesh.take_fault(&self.id, op);
        if let Some(f @ (Fault::Before | Fault::Refused)) = fault {
            return Err(injected(f, op));
        }
        let value = effect(&mut self.mesh.state());
        match fault {
            Some(Fault::After) => Err(injected(Fault::After, op)),
            _ => Ok(value),
        }
    }
}

impl Mailbox for FakeMailbox {
    fn mailbox_id(&self) -> &str {
        &self.id
    }

    async fn inbox(&self, continue_from: Option<&str>) -> Result<InboxPage, MeshError> {
        self.call(Op::Inbox, |state| {
            let after = continue_from.and_then(number_of).unwrap_or(0);
            let size = state.page_size;
            let ids: Vec<(u64, String)> = state
                .inboxes
                .get(&self.id)
                .map(|inbox| {
                    inbox
                        .range(after + 1..)
                        .take(size + 1)
                        .map(|(n, m)| (*n, m.meta.id.clone()))
                        .collect()
                })
                .unwrap_or_default();
            let more = ids.len() > size;
            let ids: Vec<String> = ids.into_iter().take(size).map(|(_, id)| id).collect();
            InboxPage {
                continue_from: more.then(|| ids.last().cloned()).flatten(),
                ids,
            }
        })
    }

    async fn download(&self, id: &str) -> Result<Option<Message>, MeshError> {
        self.call(Op::Download, |state| {
            let n = number_of(id)?;
            state.inboxes.get(&self.id)?.get(&n).cloned()
        })
    }

    async fn acknowledge(&self, id: &str) -> Result<(), MeshError> {
        self.call(Op::Acknowledge, |state| {
            if let (Some(n), Some(inbox)) = (number_of(id), state.inboxes.get_mut(&self.id)) {
                inbox.remove(&n);
            }
        })
    }

    async fn send(&self, file: &Outgoing<'_>) -> Result<String, MeshError> {
        let known = self.mesh.state().registered.iter().any(|m| m == file.to);
        if !known {
            return Err(MeshError::Refused(
                "417: the recipient mailbox is not known".to_owned(),
            ));
        }
        let sent = self.call(Op::Send, |state| {
            state.next += 1;
            let n = state.next;
            let sent = Sent {
                message_id: message_id(n),
                from: self.id.clone(),
                to: file.to.to_owned(),
                workflow_id: file.workflow_id.to_owned(),
                file_name: file.file_name.to_owned(),
                local_id: file.local_id.to_owned(),
                subject: file.subject.map(str::to_owned),
                body: file.body.to_vec(),
            };
            let meta = MessageMeta {
                id: sent.message_id.clone(),
                message_type: MessageType::Data,
                from: self.id.clone(),
                workflow_id: Some(sent.workflow_id.clone()),
                file_name: Some(sent.file_name.clone()),
                local_id: Some(sent.local_id.clone()),
                linked_message_id: None,
                status_code: None,
                status_description: None,
            };
            state.inboxes.entry(sent.to.clone()).or_default().insert(
                n,
                Message {
                    meta,
                    body: sent.body.clone(),
                },
            );
            state.sent.push(sent.clone());
            sent.message_id
        })?;
        Ok(sent)
    }

    async fn track(&self, local_id: &str) -> Result<Option<Tracked>, MeshError> {
        self.call(Op::Track, |state| {
            state
                .sent
                .iter()
                .find(|s| s.from == self.id && s.local_id == local_id)
                .map(|s| Tracked {
                    message_id: s.message_id.clone(),
                    status: "Accepted".to_owned(),
                })
        })
    }
}
