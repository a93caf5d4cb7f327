//! The command line.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

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
    /// Seed two demonstration councils' directory entries and exit.
    Demo(DataArgs),
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
    /// Seed the demonstration councils before serving.
    #[arg(long)]
    pub demo: bool,
    /// The link put in SMS and email notifications.
    #[arg(
        long,
        default_value = "http://127.0.0.1:8080/v1/notifications",
        env = "CPIS_VIEW_URL"
    )]
    pub view_url: String,
    /// Days a CPP or LAC plan stays visible after its end date.
    #[arg(long, default_value_t = 365, env = "CPIS_VISIBILITY_TAIL_DAYS")]
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
    /// Minutes until the token expires.
    #[arg(long, default_value_t = 480)]
    pub ttl_minutes: i64,
}
