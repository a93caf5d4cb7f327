//! [`MemoryTransport`]: SQS semantics in memory, in front of the embedded
//! dispatcher.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use cpis_domain::ports::{AsnQueue, QueueError};

use super::{Received, Transport, MAX_RECEIVES};

#[derive(Debug)]
pub(super) struct MemoryMessage {
    pub(super) id: String,
    pub(super) body: String,
    pub(super) receives: u32,
}

#[derive(Debug, Default)]
pub(super) struct MemoryQueue {
    pub(super) visible: VecDeque<MemoryMessage>,
    pub(super) in_flight: HashMap<String, MemoryMessage>,
    pub(super) dead: Vec<String>,
    pub(super) next: u64,
}

/// An in-memory transport with SQS's semantics (see the module docs): what
/// stands between the check and the embedded dispatcher in the harness. The
/// body of a message is the ASN id.
#[derive(Debug, Default)]
pub struct MemoryTransport {
    pub(super) queue: Mutex<MemoryQueue>,
}

impl MemoryTransport {
    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, MemoryQueue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn push(&self, body: String) {
        let mut q = self.lock();
        q.next += 1;
        let id = format!("m-{}", q.next);
        q.visible.push_back(MemoryMessage {
            id,
            body,
            receives: 0,
        });
    }
}

impl AsnQueue for MemoryTransport {
    async fn enqueue(&self, ids: &[String]) -> Result<(), QueueError> {
        for id in ids {
            self.push(id.clone());
        }
        Ok(())
    }
}

impl Transport for MemoryTransport {
    async fn send_raw(&self, body: &str) -> Result<(), QueueError> {
        self.push(body.to_owned());
        Ok(())
    }

    async fn receive(&self, max: usize) -> Vec<Received> {
        let mut q = self.lock();
        let mut out = Vec::new();
        while out.len() < max {
            let Some(mut m) = q.visible.pop_front() else {
                break;
            };
            if m.receives >= MAX_RECEIVES {
                q.dead.push(m.body);
                continue;
            }
            m.receives += 1;
            out.push(Received {
                message_id: m.id.clone(),
                body: m.body.clone(),
                handle: m.id.clone(),
            });
            q.in_flight.insert(m.id.clone(), m);
        }
        out
    }

    async fn delete(&self, message: &Received) {
        self.lock().in_flight.remove(&message.handle);
    }

    async fn release(&self, message: &Received) {
        let mut q = self.lock();
        if let Some(m) = q.in_flight.remove(&message.handle) {
            q.visible.push_back(m);
        }
    }

    async fn dead_letters(&self) -> Vec<String> {
        self.lock().dead.clone()
    }
}
