//! `cpis`: the embedded default. The composition root: every adapter is
//! built here and handed to the shared routers and the domain's dispatcher.

mod background;
mod cli;
mod data_dir;
mod demo;
mod listener;
mod oidc;
mod readiness;

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use cpis_domain::{Clock, SystemClock, VisibilityPolicy};
use cpis_http::portal::{PortalConfig, SignIn};
use cpis_http::{AppState, Authenticator, CallerClaims};
use cpis_telemetry::Style;
use tokio::sync::watch;

use cli::{CallerArgs, Cli, Command, LoginLinkArgs, MeshArgs, MeshCommand, ServeArgs, TokenArgs};
use cpis::delivery::{FileChannel, WakeDispatcher};
use cpis::mesh::{read_secret, DailyHandshake, MeshSettings, MeshTls};
use cpis_domain::{MeshFiles, NoFiles};
use cpis_mesh::exchange::ExchangeConfig;
use cpis_mesh::MeshAsnFiles;
use data_dir::DataDir;

type Failure = Box<dyn std::error::Error + Send + Sync>;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("cpis: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => serve(*args).await,
            Command::Token(args) => {
                cpis_telemetry::init(Style::Console);
                token(args)
            }
            Command::LoginLink(args) => {
                cpis_telemetry::init(Style::Console);
                login_link(args)
            }
            Command::Demo(args) => {
                cpis_telemetry::init(Style::Console);
                let data = DataDir::open(&args.data)?;
                let store = open_store(&data)?;
                let written = demo::seed(&store).await?;
                println!(
                    "seeded {written} of {} demonstration councils (existing entries kept)",
                    demo::DEMO_COUNCILS.len()
                );
                Ok(())
            }
            Command::Mesh(command) => {
                cpis_telemetry::init(Style::Console);
                mesh_command(command).await
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("cpis: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: ServeArgs) -> Result<(), Failure> {
    cpis_telemetry::init(Style::Server);
    let policy = VisibilityPolicy {
        tail_days: args.tail_days,
        ..VisibilityPolicy::default()
    };
    // The MESH client is built, and the mailbox's handshake made, before
    // anything starts: a wrong URL, password or key stops the service here.
    let mesh = match mesh_settings(&args.mesh, policy)? {
        None => None,
        Some(settings) => {
            let client = settings.client()?;
            client
                .handshake()
                .await
                .map_err(|e| format!("MESH handshake for mailbox {}: {e}", settings.mailbox))?;
            let handshaken = SystemClock.now();
            Some((client, settings, handshaken))
        }
    };
    let data = DataDir::open(&args.data.data)?;
    let store = open_store(&data)?;
    if args.demo {
        let written = demo::seed(&store).await?;
        tracing::info!(written, "demonstration councils seeded where missing");
    }
    // Bound before anything starts, so that a taken port is reported first.
    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.addr))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("cannot read the address listened on ({}): {e}", args.addr))?;
    let view_url = args
        .view_url
        .clone()
        .unwrap_or_else(|| default_view_url(addr));
    let keys = data.local_keys()?;
    let oidc = oidc::sign_in(&args.oidc).await?;
    let portal = PortalConfig {
        sign_in: SignIn {
            ticket: Some(keys.ticket_verifier()),
            oidc,
        },
        // Plain HTTP is only for loopback; anywhere else the cookie must
        // travel over TLS (a proxy in front terminates it).
        secure_cookies: !addr.ip().is_loopback(),
        feed_stale_after: time::Duration::hours(i64::from(args.feed_stale_after_hours)),
    };
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let wake = WakeDispatcher::default();
    let channel = FileChannel::new(&data.outbox())?;
    let state = AppState {
        store: store.clone(),
        queue: wake.clone(),
        clock: clock.clone(),
        policy,
        pseudonymiser: data.pseudonymiser()?,
        auth: Authenticator::Local(keys.verifier()),
        volume: Default::default(),
    };
    // Again, now that the store, the keys and the outbox exist: nothing in
    // the data directory may be open to other local users.
    data.secure()?;
    let extra =
        readiness::router(store.clone()).merge(cpis_http::portal::router(state.clone(), portal));
    let router = cpis_http::service_router_with(state, extra);

    let (stop, stopped) = watch::channel(false);
    let (dispatcher, poller) = match mesh {
        None => (
            tokio::spawn(background::run_dispatcher(
                store.clone(),
                channel,
                NoFiles,
                clock.clone(),
                wake,
                view_url,
                stopped.clone(),
            )),
            None,
        ),
        Some((client, settings, handshaken)) => {
            tracing::info!(
                mailbox = %settings.mailbox,
                poll_seconds = settings.poll_every.as_secs(),
                "MESH on: polling the CP-IS mailbox and sending ASN files to linked councils"
            );
            let files = MeshFiles {
                map: store.clone(),
                channel: MeshAsnFiles::new(client.clone(), settings.asn_workflow),
            };
            let dispatcher = tokio::spawn(background::run_dispatcher(
                store.clone(),
                channel,
                files,
                clock.clone(),
                wake,
                view_url,
                stopped.clone(),
            ));
            let poller = tokio::spawn(cpis::mesh::run_poller(
                client.clone(),
                DailyHandshake {
                    handshake: client,
                    last: handshaken,
                },
                store.clone(),
                settings.exchange,
                clock.clone(),
                settings.poll_every,
                stopped.clone(),
            ));
            (dispatcher, Some(poller))
        }
    };
    let feeds = tokio::spawn(background::run_feed_watch(
        store.clone(),
        clock.clone(),
        time::Duration::hours(i64::from(args.feed_stale_after_hours)),
        stopped.clone(),
    ));
    let purge = tokio::spawn(background::run_purge(store, clock, stopped));

    let limits = listener::Limits {
        header_read: std::time::Duration::from_secs(args.header_read_timeout),
        body_read: std::time::Duration::from_secs(args.body_read_timeout),
        idle: std::time::Duration::from_secs(args.idle_timeout),
        max_connections: usize::try_from(args.max_connections).unwrap_or(usize::MAX),
    };
    tracing::info!(%addr, data = %data.root().display(), max_connections = limits.max_connections, "cpis listening");
    listener::serve(listener, router, limits, shutdown_signal())
        .await
        .map_err(|e| format!("serving on {addr}: {e}"))?;

    tracing::info!("shutting down: finishing background work");
    let _ = stop.send(true);
    let _ = dispatcher.await;
    if let Some(poller) = poller {
        let _ = poller.await;
    }
    let _ = purge.await;
    let _ = feeds.await;
    Ok(())
}

/// The MESH settings, with the password and shared key read from their
/// files; `None` without `--mesh-url` (clap requires the rest with it).
fn mesh_settings(
    args: &MeshArgs,
    policy: VisibilityPolicy,
) -> Result<Option<MeshSettings>, Failure> {
    let Some(url) = args.mesh_url.clone() else {
        return Ok(None);
    };
    let (Some(mailbox), Some(password), Some(shared_key)) = (
        args.mesh_mailbox.clone(),
        args.mesh_password_file.as_deref(),
        args.mesh_shared_key_file.as_deref(),
    ) else {
        return Err(
            "--mesh-url needs --mesh-mailbox, --mesh-password-file and --mesh-shared-key-file"
                .into(),
        );
    };
    Ok(Some(MeshSettings {
        url,
        mailbox,
        password: read_secret(password, "MESH password")?,
        shared_key: read_secret(shared_key, "MESH shared key")?,
        tls: MeshTls::read(
            args.mesh_client_cert_file.as_deref(),
            args.mesh_client_key_file.as_deref(),
            args.mesh_ca_file.as_deref(),
        )?,
        poll_every: std::time::Duration::from_secs(args.mesh_poll_seconds),
        exchange: ExchangeConfig {
            upload_workflow: args.mesh_workflow_upload.clone(),
            ack_workflow: args.mesh_workflow_ack.clone(),
            policy,
        },
        asn_workflow: args.mesh_workflow_asn.clone(),
    }))
}

/// `cpis mesh link` and `cpis mesh unlink`, on the data directory's database
/// (which a running `cpis serve` shares: it reads the map at every message).
async fn mesh_command(command: MeshCommand) -> Result<(), Failure> {
    let data = match &command {
        MeshCommand::Link(args) => &args.data.data,
        MeshCommand::Unlink(args) => &args.data.data,
    };
    // The map is the running service's: a mistyped --data must not create
    // a new database the service never reads.
    let database = DataDir::database_in(data);
    if !database.is_file() {
        return Err(format!(
            "no cpis database at {}: give the --data directory cpis serve uses",
            database.display()
        )
        .into());
    }
    let data = DataDir::open(data)?;
    let store = open_store(&data)?;
    let message = match command {
        MeshCommand::Link(args) => cpis::mesh::link(&store, &args.council, &args.mailbox)
            .await
            .map_err(|e| e.to_string())?,
        MeshCommand::Unlink(args) => cpis::mesh::unlink(&store, &args.council)
            .await
            .map_err(|e| e.to_string())?,
    };
    println!("{message}");
    Ok(())
}

/// The SQLite store in the data directory; an error names the file.
fn open_store(data: &DataDir) -> Result<cpis_store_sqlite::SqliteStore, Failure> {
    data.open_store().map_err(|e| {
        format!(
            "cannot open the database {}: {e}",
            data.database().display()
        )
        .into()
    })
}

/// `http://<addr>/portal/notifications`: the portal's ASN pages (each
/// message links to its ASN's own page below it).
fn default_view_url(addr: std::net::SocketAddr) -> String {
    format!("{}/portal/notifications", browser_origin(addr))
}

/// `http://<host>:<port>` a browser on this machine opens for `addr`, with
/// a loopback host for an unspecified address (0.0.0.0 or ::), which no
/// browser can open.
fn browser_origin(addr: std::net::SocketAddr) -> String {
    let host = match addr.ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => "127.0.0.1".to_owned(),
        ip if ip.is_unspecified() => "[::1]".to_owned(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        std::net::IpAddr::V4(ip) => ip.to_string(),
    };
    format!("http://{host}:{}", addr.port())
}

/// SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {}
        _ = terminate => {}
    }
}

fn token(args: TokenArgs) -> Result<(), Failure> {
    let data = DataDir::open(&args.data.data)?;
    let keys = data.local_keys()?;
    let claims = token_claims(&args.caller)?;
    // Refuse to mint a token the service would refuse.
    claims.principal().map_err(|e| format!("{e}"))?;
    let now = SystemClock.now();
    // clap bounds ttl_minutes to 1..=MAX_TTL_MINUTES, so this cannot overflow.
    let token = keys.mint(&claims, now, time::Duration::minutes(args.ttl_minutes))?;
    println!("{token}");
    Ok(())
}

/// `cpis login-link`: a one-time portal sign-in link for the caller, for
/// the service at `--addr`, signed by the data directory's key (the
/// token's), usable once within `--ttl-seconds` (at most 10 minutes).
fn login_link(args: LoginLinkArgs) -> Result<(), Failure> {
    let data = DataDir::open(&args.data.data)?;
    let keys = data.local_keys()?;
    let claims = token_claims(&args.caller)?;
    // Refuse to mint a link the portal would refuse.
    claims.principal().map_err(|e| format!("{e}"))?;
    let next = match &args.next {
        Some(next) => Some(
            cpis_http::portal::safe_next(next)
                .ok_or("--next must be a portal page's path, such as /portal/notifications/<id>")?,
        ),
        None => None,
    };
    let now = SystemClock.now();
    let issued_at = match &args.issued_at {
        Some(at) => {
            let at =
                time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339)
                    .map_err(|_| "--issued-at must be an RFC 3339 instant")?;
            if at > now {
                return Err("--issued-at must not be in the future".into());
            }
            at
        }
        None => now,
    };
    let mut id = [0u8; 16];
    getrandom::fill(&mut id).map_err(|_| "no randomness available from the operating system")?;
    let id: String = id.iter().map(|b| format!("{b:02x}")).collect();
    let ticket = keys.mint_ticket(
        &claims,
        &id,
        issued_at,
        time::Duration::seconds(args.ttl_seconds),
    )?;
    let mut query = form_urlencoded::Serializer::new(String::new());
    query.append_pair("ticket", &ticket);
    if let Some(next) = &next {
        query.append_pair("next", next);
    }
    println!(
        "{}/portal/sign-in?{}",
        browser_origin(args.addr),
        query.finish()
    );
    Ok(())
}

fn token_claims(args: &CallerArgs) -> Result<CallerClaims, Failure> {
    if let Some(council) = &args.council {
        return Ok(CallerClaims {
            sub: format!("council-{council}"),
            role: "council".into(),
            ods_code: council.clone(),
            rbac: None,
            org_name: None,
            setting: None,
            job_role: None,
            job_role_name: None,
        });
    }
    if !(args.clinician || args.system) {
        return Err("say --council <ODS>, --clinician or --system".into());
    }
    let need = |value: &Option<String>, flag: &str| {
        value.clone().ok_or_else(|| format!("{flag} is required"))
    };
    Ok(CallerClaims {
        sub: need(&args.user, "--user")?,
        role: if args.system { "system" } else { "clinician" }.into(),
        ods_code: need(&args.ods, "--ods")?,
        rbac: Some(need(&args.rbac, "--rbac")?),
        org_name: Some(need(&args.org_name, "--org-name")?),
        setting: Some(need(&args.setting, "--setting")?),
        job_role: args.job_role.clone(),
        job_role_name: args.job_role_name.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::default_view_url;

    #[test]
    fn the_default_view_url_follows_the_address_listened_on() {
        let url = |addr: &str| default_view_url(addr.parse().unwrap());
        assert_eq!(
            url("127.0.0.1:9090"),
            "http://127.0.0.1:9090/portal/notifications"
        );
        assert_eq!(
            url("0.0.0.0:8081"),
            "http://127.0.0.1:8081/portal/notifications"
        );
        assert_eq!(url("[::]:8082"), "http://[::1]:8082/portal/notifications");
        assert_eq!(url("[::1]:8083"), "http://[::1]:8083/portal/notifications");
        assert_eq!(
            url("192.0.2.7:80"),
            "http://192.0.2.7:80/portal/notifications"
        );
    }
}
