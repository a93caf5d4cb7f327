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
    Serve(Box<ServeArgs>),
    /// Print a bearer token signed by the data directory's local key.
    Token(TokenArgs),
    /// Print a one-time link that signs the caller in to the portal of the
    /// running `cpis serve` (usable once, for 10 minutes; signed by the data
    /// directory's key, as tokens are).
    LoginLink(LoginLinkArgs),
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
    /// A file holding the client certificate (PEM, with its chain) live
    /// MESH requires for mutual TLS (with --mesh-client-key-file; read at start).
    #[arg(
        long,
        env = "CPIS_MESH_CLIENT_CERT_FILE",
        value_name = "PATH",
        requires = "mesh_client_key_file"
    )]
    pub mesh_client_cert_file: Option<PathBuf>,
    /// A file holding the client certificate's private key (PEM: PKCS#8,
    /// PKCS#1 or SEC1; owner-only; read at start).
    #[arg(
        long,
        env = "CPIS_MESH_CLIENT_KEY_FILE",
        value_name = "PATH",
        requires = "mesh_client_cert_file"
    )]
    pub mesh_client_key_file: Option<PathBuf>,
    /// A file of CA certificates (PEM bundle) trusted for the MESH server,
    /// besides the system's (live MESH's chain to NHS CAs; read at start).
    #[arg(long, env = "CPIS_MESH_CA_FILE", value_name = "PATH")]
    pub mesh_ca_file: Option<PathBuf>,
    /// Seconds between two polls of the inbox (1 to 86400). MESH asks for
    /// about one poll every 5 minutes: below that is for test rigs such as
    /// mesh-sandbox.
    #[arg(long, env = "CPIS_MESH_POLL_SECONDS", default_value_t = 300,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
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
    /// Where the ASN pages are: each SMS and email links to
    /// `<view-url>/<ASN id>`. Default: the portal's,
    /// `http://<the address listened on>/portal/notifications` (127.0.0.1
    /// for an unspecified address such as 0.0.0.0).
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
    #[command(flatten)]
    pub oidc: OidcArgs,
}

/// `cpis serve`'s production sign-in: OpenID Connect's authorization code
/// flow with PKCE against one issuer (NHS CIS2, a council's own identity
/// provider). Without `--oidc-issuer` only one-time links sign in.
#[derive(Debug, Args)]
pub struct OidcArgs {
    /// The issuer's identifier, exactly as its discovery document gives it
    /// (https; http only on loopback). Its discovery document and keys are
    /// read at start: an issuer that cannot be reached stops the service.
    #[arg(long, env = "CPIS_OIDC_ISSUER", value_name = "URL",
          requires_all = ["oidc_client_id", "oidc_client_secret_file", "oidc_redirect_base"])]
    pub oidc_issuer: Option<String>,
    /// The portal's client id at the issuer.
    #[arg(
        long,
        env = "CPIS_OIDC_CLIENT_ID",
        value_name = "ID",
        requires = "oidc_issuer"
    )]
    pub oidc_client_id: Option<String>,
    /// A file holding the client secret (owner-only; read at start).
    #[arg(
        long,
        env = "CPIS_OIDC_CLIENT_SECRET_FILE",
        value_name = "PATH",
        requires = "oidc_issuer"
    )]
    pub oidc_client_secret_file: Option<PathBuf>,
    /// The portal's address as browsers reach it (e.g.
    /// https://cpis.example.org): the redirect URI registered with the
    /// issuer is `<base>/portal/sign-in/callback`, exactly.
    #[arg(
        long,
        env = "CPIS_OIDC_REDIRECT_BASE",
        value_name = "URL",
        requires = "oidc_issuer"
    )]
    pub oidc_redirect_base: Option<String>,
    /// Scopes asked for besides `openid`, space-separated (CIS2:
    /// `profile nationalrbacaccess selectedrole`).
    #[arg(
        long,
        env = "CPIS_OIDC_SCOPES",
        value_name = "SCOPES",
        default_value = ""
    )]
    pub oidc_scopes: String,
    /// Also read the issuer's UserInfo endpoint (CIS2 gives roles only there).
    #[arg(long, env = "CPIS_OIDC_USERINFO")]
    pub oidc_userinfo: bool,
    /// How the issuer's claims map to the claims contract: `FIELD=SOURCE`,
    /// comma-separated (README, "Production sign-in"). Default: each field
    /// from the claim of its own name.
    #[arg(long, env = "CPIS_OIDC_CLAIMS", value_name = "MAP", default_value = "")]
    pub oidc_claims: String,
    /// The sign-in button's text.
    #[arg(
        long,
        env = "CPIS_OIDC_LABEL",
        value_name = "TEXT",
        default_value = "Sign in with your organisation's account"
    )]
    pub oidc_label: String,
}

#[derive(Debug, Args)]
pub struct TokenArgs {
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub caller: CallerArgs,
    /// Minutes until the token expires (1 to 10080, a week).
    #[arg(long, default_value_t = 480, allow_negative_numbers = true,
          value_parser = clap::value_parser!(i64).range(1..=MAX_TTL_MINUTES))]
    pub ttl_minutes: i64,
}

/// Longest life of a sign-in link, in seconds: 10 minutes (issue 14).
pub const MAX_LINK_SECONDS: i64 = 600;

#[derive(Debug, Args)]
pub struct LoginLinkArgs {
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub caller: CallerArgs,
    /// The address `cpis serve` listens on (its `--addr`): the link is
    /// `http://<addr>/portal/sign-in?...` (127.0.0.1 for 0.0.0.0).
    #[arg(long, default_value = "127.0.0.1:8080", env = "CPIS_ADDR")]
    pub addr: SocketAddr,
    /// The portal page to land on after sign-in, e.g.
    /// `/portal/notifications/<id>` (default: the caller's start page).
    #[arg(long, value_name = "PATH")]
    pub next: Option<String>,
    /// Seconds the link may be used for (1 to 600).
    #[arg(long, default_value_t = MAX_LINK_SECONDS, allow_negative_numbers = true,
          value_parser = clap::value_parser!(i64).range(1..=MAX_LINK_SECONDS))]
    pub ttl_seconds: i64,
    /// For tests: mint the link as if at this earlier instant (RFC 3339),
    /// to prove an expired link is refused without waiting. Never later
    /// than now.
    #[arg(long, hide = true, value_name = "RFC3339")]
    pub issued_at: Option<String>,
}

/// Who a token or sign-in link is for: a council, or a care setting's
/// clinician or system (`cpis token` and `cpis login-link` share these).
#[derive(Debug, Args)]
pub struct CallerArgs {
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
}
