//! The faults: a notification channel that crashes where it is told, and
//! a queue hand-off that duplicates, delays and poisons messages.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;

use cpis_domain::ports::{AsnQueue, DeliveryError, NotificationChannel, QueueError};
use cpis_domain::{Authority, NoticeText};
use rand::rngs::StdRng;
use rand::Rng;

use super::{CrashPoint, FaultConfig, Transport};

#[derive(Debug, Default)]
pub(super) struct ChannelState {
    pub(super) crashes: HashMap<String, CrashPoint>,
    pub(super) fired: HashSet<String>,
    /// The invocation has crashed: nothing more in its batch has an effect.
    pub(super) dead: bool,
    pub(super) published: BTreeMap<String, usize>,
    /// How often each ASN was published by a call after which the
    /// invocation crashed before recording it: the documented duplicate
    /// window (one ASN for `deliver`, the whole call for `deliver_batch`).
    pub(super) in_window: BTreeMap<String, usize>,
}

/// The real channel with crashes injected around it; counts every publish
/// that reached the real channel.
pub struct FaultyChannel<C> {
    pub(super) inner: C,
    pub(super) state: Mutex<ChannelState>,
}

impl<C> FaultyChannel<C> {
    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, ChannelState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub(super) fn crashed() -> DeliveryError {
    DeliveryError::Transient("the dispatcher crashed (injected)".to_owned())
}

impl<C: NotificationChannel> NotificationChannel for FaultyChannel<C> {
    async fn deliver(
        &self,
        authority: &Authority,
        notice: &NoticeText,
    ) -> Result<(), DeliveryError> {
        let id = &notice.reference;
        {
            let mut state = self.lock();
            if state.dead {
                return Err(crashed());
            }
            if state.crashes.get(id) == Some(&CrashPoint::AfterLeaseBeforePublish)
                && state.fired.insert(id.clone())
            {
                state.dead = true;
                return Err(crashed());
            }
        }
        self.inner.deliver(authority, notice).await?;
        let mut state = self.lock();
        *state.published.entry(id.clone()).or_default() += 1;
        if state.crashes.get(id) == Some(&CrashPoint::AfterPublishBeforeRecord)
            && state.fired.insert(id.clone())
        {
            state.dead = true;
            *state.in_window.entry(id.clone()).or_default() += 1;
            return Err(crashed());
        }
        Ok(())
    }

    /// One call to the real channel for the whole batch, so a crash is
    /// before the call (nothing of it sent) or after it (all of it sent,
    /// nothing of it recorded).
    async fn deliver_batch(
        &self,
        notices: &[(&Authority, &NoticeText)],
    ) -> Vec<Result<(), DeliveryError>> {
        let all_crashed = || notices.iter().map(|_| Err(crashed())).collect();
        {
            let mut state = self.lock();
            if state.dead {
                return all_crashed();
            }
            let before = notices.iter().find(|(_, n)| {
                state.crashes.get(&n.reference) == Some(&CrashPoint::AfterLeaseBeforePublish)
                    && !state.fired.contains(&n.reference)
            });
            if let Some((_, notice)) = before {
                state.fired.insert(notice.reference.clone());
                state.dead = true;
                return all_crashed();
            }
        }
        let answers = self.inner.deliver_batch(notices).await;
        let mut state = self.lock();
        let sent: Vec<&String> = notices
            .iter()
            .zip(&answers)
            .filter(|(_, answer)| answer.is_ok())
            .map(|((_, n), _)| &n.reference)
            .collect();
        for id in &sent {
            *state.published.entry((*id).clone()).or_default() += 1;
        }
        let after = sent.iter().find(|id| {
            state.crashes.get(**id) == Some(&CrashPoint::AfterPublishBeforeRecord)
                && !state.fired.contains(**id)
        });
        if let Some(id) = after {
            let id = (*id).clone();
            state.fired.insert(id);
            state.dead = true;
            for id in &sent {
                *state.in_window.entry((*id).clone()).or_default() += 1;
            }
            return all_crashed();
        }
        answers
    }
}

#[derive(Debug, Default)]
pub(super) struct QueueState {
    pub(super) generated: Vec<String>,
    /// Poison body -> the ASN it should have carried.
    pub(super) poison: HashMap<String, String>,
    pub(super) late_duplicates: Vec<String>,
    pub(super) duplicate_messages: usize,
}

/// What the check hands its ASN ids to: the transport, with duplicates and
/// poison injected and crashes planned.
pub(super) struct FaultyQueue<'a, T> {
    pub(super) transport: &'a T,
    pub(super) config: FaultConfig,
    pub(super) rng: &'a Mutex<StdRng>,
    pub(super) channel_state: &'a Mutex<ChannelState>,
    pub(super) state: Mutex<QueueState>,
}

pub(super) enum Fate {
    Normal,
    Duplicate { later: bool },
    Poison(String),
}

impl<T: Transport> AsnQueue for FaultyQueue<'_, T> {
    async fn enqueue(&self, ids: &[String]) -> Result<(), QueueError> {
        let fates: Vec<(String, Fate)> = {
            let mut rng = self.rng.lock().unwrap_or_else(|e| e.into_inner());
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            let mut channel = self.channel_state.lock().unwrap_or_else(|e| e.into_inner());
            ids.iter()
                .map(|id| {
                    state.generated.push(id.clone());
                    if rng.gen_bool(self.config.crash_rate) {
                        let point = match rng.gen_range(0..3) {
                            0 => CrashPoint::AfterLeaseBeforePublish,
                            1 => CrashPoint::AfterPublishBeforeRecord,
                            _ => CrashPoint::AfterRecordBeforeAck,
                        };
                        channel.crashes.insert(id.clone(), point);
                    }
                    let fate = if rng.gen_bool(self.config.poison_rate) {
                        // Half unparseable, half well-formed naming no ASN.
                        let body = if rng.gen_bool(0.5) {
                            format!("{{\"asn_id\":\"{id}")
                        } else {
                            format!("{{\"asn_id\":\"{}-0000\"}}", &id[..id.len().min(24)])
                        };
                        state.poison.insert(body.clone(), id.clone());
                        Fate::Poison(body)
                    } else if rng.gen_bool(self.config.duplicate_rate) {
                        state.duplicate_messages += 1;
                        Fate::Duplicate {
                            later: rng.gen_bool(0.5),
                        }
                    } else {
                        Fate::Normal
                    };
                    (id.clone(), fate)
                })
                .collect()
        };
        for (id, fate) in fates {
            match fate {
                Fate::Poison(body) => self.transport.send_raw(&body).await?,
                Fate::Normal => self.transport.enqueue(&[id]).await?,
                Fate::Duplicate { later: false } => {
                    self.transport.enqueue(&[id.clone(), id]).await?;
                }
                Fate::Duplicate { later: true } => {
                    self.transport.enqueue(std::slice::from_ref(&id)).await?;
                    self.state
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .late_duplicates
                        .push(id);
                }
            }
        }
        Ok(())
    }
}

pub(super) async fn send_late<T: Transport>(queue: &FaultyQueue<'_, T>) -> usize {
    let late = std::mem::take(
        &mut queue
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .late_duplicates,
    );
    if !late.is_empty() {
        if let Err(e) = queue.transport.enqueue(&late).await {
            panic!("sending late duplicates: {e}");
        }
    }
    late.len()
}
