//! The moto server harness (feature `test-support`). Uses the server at
//! `CPIS_MOTO_ENDPOINT` if set; otherwise starts `tests/moto_server.py`
//! (moto, one request at a time) once per test process on 127.0.0.1 on a free
//! port. If moto is not installed the calling test FAILS with the command
//! that installs it: nothing is ever skipped.
//!
//! The SDK is pointed at moto through `AWS_ENDPOINT_URL` only, exactly as a
//! deployed function would be configured; every test makes its own tables,
//! queues, topics and council codes, so tests run in parallel.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
};
use aws_sdk_sqs::types::QueueAttributeName;
use cpis_domain::ports::AuthorityDirectory;
use cpis_domain::{Authority, OdsCode};

use crate::{DynamoStore, SnsChannel, TopicSync};

static ENDPOINT: OnceLock<Result<String, String>> = OnceLock::new();
static COUNTER: AtomicU64 = AtomicU64::new(0);

const INSTALL_HINT: &str = "moto server is required for the AWS adapter tests and was not found. \
Install it with:  python3 -m pip install 'moto[server]'  (or run ./tests/run.sh, which installs it), \
or point CPIS_MOTO_ENDPOINT at a running moto server.";

/// The moto endpoint, starting the server if needed. Panics (fails the
/// test) with the install command if moto cannot be started.
pub fn endpoint() -> &'static str {
    match ENDPOINT.get_or_init(start) {
        Ok(endpoint) => endpoint,
        Err(why) => panic!("{why}"),
    }
}

fn start() -> Result<String, String> {
    let endpoint = match std::env::var("CPIS_MOTO_ENDPOINT") {
        Ok(url) if !url.trim().is_empty() => url.trim().trim_end_matches('/').to_owned(),
        _ => launch()?,
    };
    // Set before any SDK config is loaded (this runs once, first).
    std::env::set_var("AWS_ENDPOINT_URL", &endpoint);
    std::env::set_var("AWS_ACCESS_KEY_ID", "testing");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "testing");
    std::env::set_var("AWS_REGION", REGION);
    std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
    std::env::set_var("AWS_CONFIG_FILE", "/nonexistent/cpis-moto-config");
    std::env::set_var(
        "AWS_SHARED_CREDENTIALS_FILE",
        "/nonexistent/cpis-moto-credentials",
    );
    Ok(endpoint)
}

/// The region the harness uses; moto's default account is 123456789012.
pub const REGION: &str = "eu-west-2";
pub const ACCOUNT: &str = "123456789012";

fn moto_command() -> Result<Vec<String>, String> {
    let has = |program: &str, args: &[&str]| {
        Command::new(program)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if has("python3", &["-c", "import moto.server"]) {
        // One request at a time, as tests/run.sh starts it: DynamoDB's
        // conditional writes and transactions are atomic, moto's threads are not.
        let serial = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/moto_server.py");
        return Ok(vec!["python3".into(), serial.into()]);
    }
    Err(INSTALL_HINT.to_owned())
}

fn launch() -> Result<String, String> {
    let command = moto_command()?;
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("no free port for moto: {e}"))?
        .port();
    // A shell watchdog ends moto when this test process ends, however it ends.
    let script = format!(
        "{} -H 127.0.0.1 -p {port} >/dev/null 2>&1 & m=$!; trap 'kill $m 2>/dev/null' EXIT; \
         while kill -0 {pid} 2>/dev/null && kill -0 $m 2>/dev/null; do sleep 1; done",
        command.join(" "),
        pid = std::process::id()
    );
    let mut child = Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .spawn()
        .map_err(|e| format!("could not start moto: {e}. {INSTALL_HINT}"))?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if answers_http(port) {
            return Ok(format!("http://127.0.0.1:{port}"));
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!(
                "moto server exited at start ({status}). {INSTALL_HINT}"
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Err(format!(
        "moto server did not answer on port {port} within 60 s"
    ))
}

fn answers_http(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream
        .write_all(b"GET /moto-api/ HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.")
}

/// The SDK config every test uses (after the harness has set the environment).
pub async fn sdk_config() -> aws_config::SdkConfig {
    endpoint();
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(crate::https_client())
        .load()
        .await
}

/// A name no other test in any process uses.
pub fn unique(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{prefix}-{}-{n}-{nanos}", std::process::id())
}

/// A council code of its own for each test (topics are named by council).
pub fn unique_ods() -> OdsCode {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut seed =
        nanos ^ (u64::from(std::process::id()) << 32) ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut code = String::from("T");
    for _ in 0..9 {
        code.push(char::from(ALPHABET[(seed % 36) as usize]));
        seed /= 36;
    }
    match OdsCode::parse(&code) {
        Ok(ods) => ods,
        Err(_) => panic!("generated an invalid ODS code"),
    }
}

fn key_attr(name: &str) -> AttributeDefinition {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
}

fn key_schema(hash: &str, range: &str) -> Vec<KeySchemaElement> {
    [(hash, KeyType::Hash), (range, KeyType::Range)]
        .into_iter()
        .map(|(name, kind)| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(kind)
                .build()
                .unwrap_or_else(|e| panic!("{e}"))
        })
        .collect()
}

fn gsi(name: &str) -> GlobalSecondaryIndex {
    GlobalSecondaryIndex::builder()
        .index_name(name)
        .set_key_schema(Some(key_schema(&format!("{name}pk"), &format!("{name}sk"))))
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::All)
                .build(),
        )
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Creates the service table exactly as the README's table design (and the
/// CDK stack) describe it: pk/sk, gsi1, sparse gsi2, TTL on `expires_at`.
pub async fn create_service_table(client: &aws_sdk_dynamodb::Client, name: &str) {
    client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .set_attribute_definitions(Some(
            ["pk", "sk", "gsi1pk", "gsi1sk", "gsi2pk", "gsi2sk"]
                .into_iter()
                .map(key_attr)
                .collect(),
        ))
        .set_key_schema(Some(key_schema("pk", "sk")))
        .global_secondary_indexes(gsi("gsi1"))
        .global_secondary_indexes(gsi("gsi2"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("creating the service table: {e:?}"));
    client
        .update_time_to_live()
        .table_name(name)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .enabled(true)
                .attribute_name("expires_at")
                .build()
                .unwrap_or_else(|e| panic!("{e}")),
        )
        .send()
        .await
        .unwrap_or_else(|e| panic!("enabling TTL: {e:?}"));
}

pub async fn create_audit_table(client: &aws_sdk_dynamodb::Client, name: &str) {
    client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .set_attribute_definitions(Some(vec![key_attr("pk"), key_attr("sk")]))
        .set_key_schema(Some(key_schema("pk", "sk")))
        .send()
        .await
        .unwrap_or_else(|e| panic!("creating the audit table: {e:?}"));
}

/// A store on two new tables of its own.
pub async fn fresh_store() -> DynamoStore {
    let sdk = sdk_config().await;
    let client = aws_sdk_dynamodb::Client::new(&sdk);
    let table = unique("cpis-service");
    let audit = unique("cpis-audit");
    create_service_table(&client, &table).await;
    create_audit_table(&client, &audit).await;
    DynamoStore::new(client, table, audit)
}

/// The delivery side as plan-upload and the dispatcher run it: a fresh store
/// that keeps each council's SNS topic in step with its directory entry, and
/// the clients a test reads deliveries back through.
pub struct TopicWorld {
    pub store: DynamoStore,
    pub sns: aws_sdk_sns::Client,
    pub sqs: aws_sdk_sqs::Client,
}

impl TopicWorld {
    pub async fn new() -> Self {
        let sdk = sdk_config().await;
        let sns = aws_sdk_sns::Client::new(&sdk);
        let store = fresh_store()
            .await
            .with_topic_sync(TopicSync::new(sns.clone(), None, None));
        Self {
            store,
            sns,
            sqs: aws_sdk_sqs::Client::new(&sdk),
        }
    }

    /// The channel the dispatcher delivers through.
    pub fn channel(&self) -> SnsChannel {
        SnsChannel::new(self.sns.clone(), topic_arn_prefix())
    }

    /// Lists the council (creating its topic and subscriptions).
    pub async fn list(&self, authority: &Authority) {
        self.store
            .put_authority(authority)
            .await
            .unwrap_or_else(|e| panic!("listing a council: {e}"));
    }

    /// Lists the council and subscribes a probe queue to its topic; the
    /// probe (its URL is returned) receives what the duty team would.
    pub async fn list_with_probe(&self, authority: &Authority) -> String {
        self.list(authority).await;
        let topic = format!("{}{}", topic_arn_prefix(), authority.ods_code);
        probe_queue(&self.sns, &self.sqs, &topic).await
    }
}

/// A new SQS queue: its URL and ARN.
pub async fn create_queue(client: &aws_sdk_sqs::Client, name: &str) -> (String, String) {
    let url = client
        .create_queue()
        .queue_name(name)
        .send()
        .await
        .unwrap_or_else(|e| panic!("creating a queue: {e:?}"))
        .queue_url
        .unwrap_or_else(|| panic!("no queue URL"));
    let arn = client
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap_or_else(|e| panic!("reading a queue's ARN: {e:?}"))
        .attributes
        .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
        .unwrap_or_else(|| panic!("no queue ARN"));
    (url, arn)
}

/// The topic ARN prefix in moto's account and the harness region.
pub fn topic_arn_prefix() -> String {
    format!("arn:aws:sns:{REGION}:{ACCOUNT}:cpis-la-")
}

/// A probe queue subscribed to a topic with raw delivery: what the topic
/// publishes arrives there as it was published.
pub async fn probe_queue(
    sns: &aws_sdk_sns::Client,
    sqs: &aws_sdk_sqs::Client,
    topic_arn: &str,
) -> String {
    let (url, arn) = create_queue(sqs, &unique("probe")).await;
    sns.subscribe()
        .topic_arn(topic_arn)
        .protocol("sqs")
        .endpoint(arn)
        .attributes("RawMessageDelivery", "true")
        .send()
        .await
        .unwrap_or_else(|e| panic!("subscribing the probe: {e:?}"));
    url
}

/// Everything in a queue now (receives until two empty polls), deleting it.
pub async fn drain(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> Vec<aws_sdk_sqs::types::Message> {
    let mut all = Vec::new();
    let mut empty_polls = 0;
    while empty_polls < 2 {
        let out = sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap_or_else(|e| panic!("receiving: {e:?}"));
        let messages = out.messages.unwrap_or_default();
        if messages.is_empty() {
            empty_polls += 1;
            continue;
        }
        for m in &messages {
            if let Some(handle) = m.receipt_handle() {
                sqs.delete_message()
                    .queue_url(queue_url)
                    .receipt_handle(handle)
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("deleting: {e:?}"));
            }
        }
        all.extend(messages);
    }
    all
}

/// Messages as the Lambda service hands them to a function: the JSON of an
/// SQS event (deserialise it into `aws_lambda_events::sqs::SqsEvent`).
pub fn lambda_sqs_event(messages: &[aws_sdk_sqs::types::Message]) -> serde_json::Value {
    let records: Vec<serde_json::Value> = messages
        .iter()
        .map(|m| {
            serde_json::json!({
                "messageId": m.message_id(),
                "receiptHandle": m.receipt_handle(),
                "body": m.body(),
                "attributes": {},
                "messageAttributes": {},
                "eventSource": "aws:sqs",
                "eventSourceARN": format!("arn:aws:sqs:{REGION}:{ACCOUNT}:asn"),
                "awsRegion": REGION,
            })
        })
        .collect();
    serde_json::json!({ "Records": records })
}
