//! What one run found, and the assertions a run must pass.

use std::collections::BTreeMap;

/// The figures one run produces.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FaultReport {
    pub seed: u64,
    pub accesses: usize,
    pub recorded: usize,
    pub collapsed: usize,
    pub silent: usize,
    pub no_plan: usize,
    /// ASNs the rules created.
    pub generated: usize,
    /// Messages the transport carried: one per ASN, plus duplicates.
    pub messages: usize,
    pub duplicate_messages: usize,
    pub poison_messages: usize,
    pub crashes: BTreeMap<String, usize>,
    /// ASNs published by the dispatcher from their queued message.
    pub delivered: usize,
    /// ASNs whose message ended in the dead-letter store undelivered.
    pub dead_lettered: usize,
    pub dead_letter_messages: usize,
    /// Dead-lettered ASNs the relay then delivered from the outbox.
    pub relayed_and_delivered: usize,
    /// ASNs the duty team received in the end (distinct).
    pub received_by_duty_teams: usize,
    /// ASNs published more than once, all inside the documented window.
    pub duplicated: usize,
    pub duplicates_outside_window: usize,
    pub dispatcher_rounds: usize,
}

impl FaultReport {
    /// Adds another run's figures (a long run made of independent parts).
    pub fn merge(&mut self, other: &FaultReport) {
        self.accesses += other.accesses;
        self.recorded += other.recorded;
        self.collapsed += other.collapsed;
        self.silent += other.silent;
        self.no_plan += other.no_plan;
        self.generated += other.generated;
        self.messages += other.messages;
        self.duplicate_messages += other.duplicate_messages;
        self.poison_messages += other.poison_messages;
        for (point, n) in &other.crashes {
            *self.crashes.entry(point.clone()).or_default() += n;
        }
        self.delivered += other.delivered;
        self.dead_lettered += other.dead_lettered;
        self.dead_letter_messages += other.dead_letter_messages;
        self.relayed_and_delivered += other.relayed_and_delivered;
        self.received_by_duty_teams += other.received_by_duty_teams;
        self.duplicated += other.duplicated;
        self.duplicates_outside_window += other.duplicates_outside_window;
        self.dispatcher_rounds += other.dispatcher_rounds;
    }
}

impl std::fmt::Display for FaultReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "seed {:#x}: accesses {} (recorded {}, collapsed {}, silent {}, no plan {}); \
             ASNs generated {}; messages {} (duplicates {}, poison {}); crashes {:?}; \
             delivered {} + dead-lettered {} = {}; dead-letter messages {}; \
             relayed and delivered {}; received by duty teams {}; duplicated {} \
             (outside the window {}); rounds {}",
            self.seed,
            self.accesses,
            self.recorded,
            self.collapsed,
            self.silent,
            self.no_plan,
            self.generated,
            self.messages,
            self.duplicate_messages,
            self.poison_messages,
            self.crashes,
            self.delivered,
            self.dead_lettered,
            self.delivered + self.dead_lettered,
            self.dead_letter_messages,
            self.relayed_and_delivered,
            self.received_by_duty_teams,
            self.duplicated,
            self.duplicates_outside_window,
            self.dispatcher_rounds,
        )
    }
}
