//! The command line.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use cpis_domain::{MailboxId, OdsCode};

/// Longest token lifetime `cpis token` mints: a week.
pub const MAX_TTL_MINUTES: i64 = 7 * 24 * 60;

#[derive(Debug, Parser)]
#[command(
    name = "cpis",
    version,
    about = "Child Protection - Information Sharing, on one machine"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the whole service: API, SQLite store, dispatcher, local SMS/email delivery.
    Serve(ServeArgs),
    /// Print a bearer token signed by the data directory's local key.
    Token(TokenArgs),
    /// Seed the two demonstration councils' directory entries that are missing, and exit.
    Demo(DataArgs),
    /// The operator's map of councils to MESH mailboxes (usable while `cpis serve` runs).
    #[command(subcommand)]
    Mesh(MeshCommand),
}

#[derive(Debug, Subcommand)]
pub enum MeshCommand {
    /// Link a council to its MESH mailbox: its HL7 v3 files are taken from
    /// that mailbox, and its ASNs go to it as files. Replaces the council's
    /// previous mailbox; refused if another council holds this one.
    Link(LinkArgs),
    /// Remove a council's MESH mailbox: its files are no longer taken, and
    /// its ASNs no longer sent as files.
    Unlink(UnlinkArgs),
}

#[derive(Debug, Args)]
pub struct LinkArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// The council's ODS code.
    #[arg(long, value_name = "ODS", value_parser = parse_ods)]
    pub council: OdsCode,
    /// The MESH mailbox id (upper-case letters and digits, e.g. X26ABC1).
    #[arg(long, value_name = "ID", value_parser = parse_mailbox)]
    pub mailbox: MailboxId,
}

#[derive(Debug, Args)]
pub struct UnlinkArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// The council's ODS code.
    #[arg(long, value_name = "ODS", value_parser = parse_ods)]
    pub council: OdsCode,
}

fn parse_ods(value: &str) -> Result<OdsCode, String> {
    OdsCode::parse(value).map_err(|e| e.to_string())
}

fn parse_mailbox(value: &str) -> Result<MailboxId, String> {
    MailboxId::parse(value).map_err(|e| e.to_string())
}

/// `cpis serve`'s MESH settings: without `--mesh-url`, MESH is off.
#[derive(Debug, Args)]
pub struct MeshArgs {
    /// The MESH API's base URL (e.g. https://msg.intspineservices.nhs.uk,
    /// or a local mesh-sandbox). Without it, MESH is off.
    #[arg(long, env = "CPIS_MESH_URL", value_name = "URL",
          requires_all = ["mesh_mailbox", "mesh_password_file", "mesh_shared_key_file"])]
    pub mesh_url: Option<String>,
    /// The CP-IS mailbox id: where councils' files arrive, and what
    /// acknowledgements and ASN files are sent from.
    #[arg(long, env = "CPIS_MESH_MAILBOX", value_name = "ID", value_parser = parse_mailbox)]
    pub mesh_mailbox: Option<MailboxId>,
    /// A file holding the mailbox's password (owner-only; read at start).
    #[arg(long, env = "CPIS_MESH_PASSWORD_FILE", value_name = "PATH")]
    pub mesh_password_file: Option<PathBuf>,
    /// A file holding the MESH environment's shared key (owner-only; read at start).
    #[arg(long, env = "CPIS_MESH_SHARED_KEY_FILE", value_name = "PATH")]
    pub mesh_shared_key_file: Option<PathBuf>,
    /// Seconds between two polls of the inbox (10 to 86400; MESH asks for
    /// no more than one poll every 5 minutes).
    #[arg(long, env = "CPIS_MESH_POLL_SECONDS", default_value_t = 300,
          value_parser = clap::value_parser!(u64).range(10..=86_400))]
    pub mesh_poll_seconds: u64,
    /// Workflow id of the councils' LA Upload files.
    #[arg(
        long,
        env = "CPIS_MESH_WORKFLOW_UPLOAD",
        default_value = "CPIS_LA_UPLOAD"
    )]
    pub mesh_workflow_upload: String,
    /// Workflow id of the acknowledgements sent back.
    #[arg(
        long,
        env = "CPIS_MESH_WORKFLOW_ACK",
        default_value = "CPIS_LA_UPLOAD_ACK"
    )]
    pub mesh_workflow_ack: String,
    /// Workflow id of the ASN files sent to councils.
    #[arg(long, env = "CPIS_MESH_WORKFLOW_ASN", default_value = "CPIS_ASN")]
    pub mesh_workflow_asn: String,
}

#[derive(Debug, Args)]
pub struct DataArgs {
    /// The data directory (SQLite database, keys, local outbox).
    #[arg(long, default_value = "./cpis-data", env = "CPIS_DATA")]
    pub data: PathBuf,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080", env = "CPIS_ADDR")]
    pub addr: SocketAddr,
    #[command(flatten)]
    pub data: DataArgs,
    /// Seed the demonstration councils' directory entries that are missing
    /// (an entry a council has edited is kept).
    #[arg(long)]
    pub demo: bool,
    /// The link put in SMS and email notifications. Default:
    /// `http://<the address listened on>/v1/notifications` (127.0.0.1 for
    /// an unspecified address such as 0.0.0.0).
    #[arg(long, env = "CPIS_VIEW_URL")]
    pub view_url: Option<String>,
    /// Days a CPP or LAC plan stays visible after its end date (0 to 3650).
    #[arg(long, default_value_t = 365, env = "CPIS_VISIBILITY_TAIL_DAYS",
          allow_negative_numbers = true, value_parser = clap::value_parser!(i64).range(0..=3650))]
    pub tail_days: i64,
    /// Hours without an accepted full snapshot after which a council's feed
    /// is logged as stale (warning, hourly).
    #[arg(
        long,
        default_value_t = 48,
        env = "CPIS_FEED_STALE_AFTER_HOURS",
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub feed_stale_after_hours: u32,
    /// Seconds a client has to send a whole request head, from when the
    /// server is ready for one (1 to 3600).
    #[arg(long, default_value_t = 10, env = "CPIS_HEADER_READ_TIMEOUT",
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub header_read_timeout: u64,
    /// Seconds a client has to send a whole request body (1 to 3600).
    #[arg(long, default_value_t = 60, env = "CPIS_BODY_READ_TIMEOUT",
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub body_read_timeout: u64,
    /// Seconds a connection may stay open with no traffic and no request in
    /// progress (1 to 3600).
    #[arg(long, default_value_t = 60, env = "CPIS_IDLE_TIMEOUT",
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub idle_timeout: u64,
    /// Most connections open at once (1 to 100000); keep it below the
    /// process's file descriptor limit. At the limit, the oldest connection
    /// that has sent no request is closed to make room.
    #[arg(long, default_value_t = 512, env = "CPIS_MAX_CONNECTIONS",
          value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub max_connections: u64,
    #[command(flatten)]
    pub mesh: MeshArgs,
}

#[derive(Debug, Args)]
pub struct TokenArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// A council token for this ODS code.
    #[arg(long, value_name = "ODS", conflicts_with_all = ["clinician", "system"])]
    pub council: Option<String>,
    /// A clinician token (needs --ods, --org-name, --rbac, --setting, --user).
    #[arg(long)]
    pub clinician: bool,
    /// A care-setting system token (same options as --clinician).
    #[arg(long, conflicts_with = "clinician")]
    pub system: bool,
    /// The care setting's organisation ODS code.
    #[arg(long)]
    pub ods: Option<String>,
    /// The care setting's organisation name.
    #[arg(long)]
    pub org_name: Option<String>,
    /// RBAC activity: B0107 (view and notify) or B0170 (view only).
    #[arg(long)]
    pub rbac: Option<String>,
    /// Setting type, e.g. emergency-department.
    #[arg(long)]
    pub setting: Option<String>,
    /// User (or system) id.
    #[arg(long)]
    pub user: Option<String>,
    /// A clinician's SDS job role code, e.g. R0110 (with --job-role-name):
    /// what the council's ASN file says the person was.
    #[arg(long, requires = "job_role_name", conflicts_with_all = ["council", "system"])]
    pub job_role: Option<String>,
    /// The job role's name, e.g. "Specialist Registrar".
    #[arg(long, requires = "job_role")]
    pub job_role_name: Option<String>,
    /// Minutes until the token expires (1 to 10080, a week).
    #[arg(long, default_value_t = 480, allow_negative_numbers = true,
          value_parser = clap::value_parser!(i64).range(1..=MAX_TTL_MINUTES))]
    pub ttl_minutes: i64,
}
