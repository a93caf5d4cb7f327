//! Suite 1 on the AWS adapters: the fault harness (`cpis_conformance::faults`)
//! against DynamoStore, a real SQS queue with a redrive policy to a DLQ
//! (maxReceiveCount 5), SnsChannel publishing to each council's topic, this
//! function's `handle_batch`, and the outbox relay's sweep, all on moto.
//! What reached the duty teams is read from a probe queue subscribed to each
//! council's topic.
//!
//! CI runs 200 accesses; `CPIS_ASSURANCE_FULL=1` runs 10,000 (in parts of 250, on a moto server
//! the test starts itself);
//! `CPIS_FAULT_SEED=<n>` replays another seed.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Mutex;

use aws_lambda_events::sqs::SqsEvent;
use aws_sdk_sqs::types::QueueAttributeName;
use cpis_aws::{moto, DynamoStore, SqsQueue};
use cpis_conformance::faults::{self, Dispatcher, FaultConfig, Received, Transport, VIEW_URL};
use cpis_domain::ports::{AsnQueue, NotificationChannel, QueueError, StoreError};
use cpis_domain::OdsCode;
use time::OffsetDateTime;

/// The longest visibility SQS allows: a received message comes back only
/// when the harness releases it (its simulated visibility timeout lapsed).
const HELD: i32 = 43_200;

struct SqsTransport {
    sqs: aws_sdk_sqs::Client,
    queue: SqsQueue,
    queue_url: String,
    dlq_url: String,
    dead: Mutex<Vec<String>>,
}

impl SqsTransport {
    async fn new(sqs: aws_sdk_sqs::Client) -> Self {
        let (dlq_url, dlq_arn) = moto::create_queue(&sqs, &moto::unique("asn-dlq")).await;
        let redrive = serde_json::json!({
            "deadLetterTargetArn": dlq_arn,
            "maxReceiveCount": faults::MAX_RECEIVES,
        })
        .to_string();
        let queue_url = sqs
            .create_queue()
            .queue_name(moto::unique("asn"))
            .attributes(QueueAttributeName::RedrivePolicy, redrive)
            .send()
            .await
            .unwrap()
            .queue_url
            .unwrap();
        Self {
            queue: SqsQueue::new(sqs.clone(), queue_url.clone()),
            sqs,
            queue_url,
            dlq_url,
            dead: Mutex::new(Vec::new()),
        }
    }
}

impl AsnQueue for SqsTransport {
    /// The production adapter's hand-off.
    async fn enqueue(&self, ids: &[String]) -> Result<(), QueueError> {
        self.queue.enqueue(ids).await
    }
}

impl Transport for SqsTransport {
    async fn send_raw(&self, body: &str) -> Result<(), QueueError> {
        self.sqs
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .send()
            .await
            .map_err(|e| QueueError(format!("{e:?}")))?;
        Ok(())
    }

    async fn receive(&self, max: usize) -> Vec<Received> {
        let out = self
            .sqs
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(i32::try_from(max).unwrap())
            .visibility_timeout(HELD)
            .wait_time_seconds(0)
            .send()
            .await
            .unwrap();
        out.messages
            .unwrap_or_default()
            .into_iter()
            .map(|m| Received {
                message_id: m.message_id().unwrap().to_owned(),
                body: m.body().unwrap_or_default().to_owned(),
                handle: m.receipt_handle().unwrap().to_owned(),
            })
            .collect()
    }

    async fn delete(&self, message: &Received) {
        self.sqs
            .delete_message()
            .queue_url(&self.queue_url)
            .receipt_handle(&message.handle)
            .send()
            .await
            .unwrap();
    }

    async fn release(&self, message: &Received) {
        self.sqs
            .change_message_visibility()
            .queue_url(&self.queue_url)
            .receipt_handle(&message.handle)
            .visibility_timeout(0)
            .send()
            .await
            .unwrap();
    }

    async fn dead_letters(&self) -> Vec<String> {
        let drained = moto::drain(&self.sqs, &self.dlq_url).await;
        let mut dead = self.dead.lock().unwrap();
        dead.extend(
            drained
                .iter()
                .map(|m| m.body().unwrap_or_default().to_owned()),
        );
        dead.clone()
    }
}

struct Aws<'a> {
    store: &'a DynamoStore,
    transport: &'a SqsTransport,
}

impl Dispatcher for Aws<'_> {
    async fn handle_batch<C: NotificationChannel>(
        &self,
        channel: &C,
        batch: &[Received],
        now: OffsetDateTime,
    ) -> Vec<String> {
        // The event exactly as the Lambda service hands it over.
        let records: Vec<serde_json::Value> = batch
            .iter()
            .map(|m| {
                serde_json::json!({
                    "messageId": m.message_id,
                    "receiptHandle": m.handle,
                    "body": m.body,
                    "attributes": {},
                    "messageAttributes": {},
                    "eventSource": "aws:sqs",
                    "eventSourceARN": "arn:aws:sqs:eu-west-2:123456789012:asn",
                    "awsRegion": moto::REGION,
                })
            })
            .collect();
        let event: SqsEvent =
            serde_json::from_value(serde_json::json!({ "Records": records })).unwrap();
        notification_dispatch::handle_batch(self.store, channel, VIEW_URL, &event, now)
            .await
            .batch_item_failures
            .into_iter()
            .map(|f| f.item_identifier)
            .collect()
    }

    async fn relay<C: NotificationChannel>(
        &self,
        _channel: &C,
        now: OffsetDateTime,
    ) -> Result<usize, StoreError> {
        // The harness's relay reports one error kind; a queue fault is
        // reported as an unavailable store, which the harness retries alike.
        outbox_relay::sweep(self.store, &self.transport.queue, now)
            .await
            .map(|report| report.relayed)
            .map_err(|e| StoreError::Unavailable(e.to_string()))
    }
}

/// The ASN reference in a published message ("... Ref <id>. Sign in ...").
fn reference(body: &str) -> String {
    let start = body.find("Ref ").expect("a reference in the message") + 4;
    body[start..]
        .split(|c: char| c == '.' || c.is_whitespace())
        .next()
        .unwrap()
        .to_owned()
}

/// moto copies the whole table on every TransactWriteItems (its rollback)
/// and keeps every copy's items alive, so one table's cost in time and memory
/// grows with the square of its size. Long runs are made of independent parts
/// of this many accesses, each on fresh tables, queues and councils, with
/// moto reset in between.
const PART: usize = 250;

#[tokio::test(flavor = "multi_thread")]
async fn no_asn_is_lost_or_sent_twice_outside_the_window_on_the_aws_adapters() {
    // A server this process started is ours to reset; a shared one is not.
    let private_moto = std::env::var("CPIS_MOTO_ENDPOINT").is_err();
    let config = FaultConfig::from_env(200);
    assert!(
        config.accesses <= PART || private_moto,
        "a run longer than {PART} accesses resets moto between parts: unset \
         CPIS_MOTO_ENDPOINT so that the test starts a moto server of its own"
    );
    let mut total: Option<faults::FaultReport> = None;
    let mut done = 0;
    let mut part = 0;
    while done < config.accesses {
        if part > 0 {
            reset_moto(moto::endpoint());
        }
        let accesses = PART.min(config.accesses - done);
        let report = one_run(FaultConfig {
            accesses,
            seed: config.seed + part,
            ..config
        })
        .await;
        println!("AWS fault harness, part {part}: {report}");
        match &mut total {
            Some(total) => total.merge(&report),
            None => total = Some(report),
        }
        done += accesses;
        part += 1;
    }
    let total = total.unwrap();
    println!("AWS fault harness: {total}");
    assert_eq!(total.accesses, config.accesses);
    // A small part may by chance hold no poison; the run as a whole must
    // have exercised every fault, or it proved less than it says.
    assert!(
        total.generated > 0 && total.dead_lettered > 0 && total.duplicated > 0,
        "this seed exercised no poison or no duplicate window: {total}"
    );
}

/// Empties the (private) moto server: every table, queue and topic.
fn reset_moto(endpoint: &str) {
    let address = endpoint.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).unwrap();
    let request =
        format!("POST /moto-api/reset HTTP/1.1\r\nHost: {address}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(
        response.starts_with("HTTP/1.1 200") || response.starts_with("HTTP/1.0 200"),
        "moto reset: {response}"
    );
}

async fn one_run(config: FaultConfig) -> faults::FaultReport {
    let topics = moto::TopicWorld::new().await;
    let councils: Vec<OdsCode> = (0..12).map(|_| moto::unique_ods()).collect();
    let mut probes = Vec::new();
    for (i, ods) in councils.iter().enumerate() {
        probes.push(topics.list_with_probe(&faults::council(ods, i)).await);
    }
    let channel = topics.channel();
    let moto::TopicWorld { store, sqs, .. } = topics;
    let transport = SqsTransport::new(sqs.clone()).await;
    let captured = Mutex::new(Vec::new());
    let report = faults::run(
        config,
        &store,
        &councils,
        &transport,
        &Aws {
            store: &store,
            transport: &transport,
        },
        channel,
        || async {
            // Every council's probe at once: each drain ends with empty polls.
            let mut drains = tokio::task::JoinSet::new();
            for probe in probes.clone() {
                let sqs = sqs.clone();
                drains.spawn(async move { moto::drain(&sqs, &probe).await });
            }
            let mut received: BTreeMap<String, usize> = BTreeMap::new();
            while let Some(messages) = drains.join_next().await {
                for message in messages.unwrap() {
                    let body = message.body().unwrap_or_default().to_owned();
                    *received.entry(reference(&body)).or_default() += 1;
                    captured.lock().unwrap().push(body);
                }
            }
            received
        },
    )
    .await;
    if let Ok(dir) = std::env::var("CPIS_PRIVACY_CAPTURE_DIR") {
        std::fs::create_dir_all(&dir).unwrap();
        let bodies = captured.lock().unwrap().join("\n");
        std::fs::write(
            std::path::Path::new(&dir).join(format!("fault-harness-aws-{}.txt", config.seed)),
            bodies,
        )
        .unwrap();
    }
    report
}
