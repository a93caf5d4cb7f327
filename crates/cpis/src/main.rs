//! `cpis`: the embedded default. The composition root: every adapter is
//! built here and handed to the shared routers and the domain's dispatcher.

mod background;
mod cli;
mod data_dir;
mod demo;
mod readiness;
mod telemetry;

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use cpis_domain::{Clock, SystemClock, VisibilityPolicy};
use cpis_http::{AppState, Authenticator, CallerClaims, LocalKeys};
use tokio::sync::watch;

use cli::{Cli, Command, ServeArgs, TokenArgs};
use cpis::delivery::{FileChannel, WakeDispatcher};
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
            Command::Serve(args) => serve(args).await,
            Command::Token(args) => {
                telemetry::init_stderr();
                token(args)
            }
            Command::Demo(args) => {
                telemetry::init_stderr();
                let data = DataDir::open(&args.data)?;
                let store = data.open_store()?;
                demo::seed(&store).await?;
                println!(
                    "seeded {} demonstration councils",
                    demo::DEMO_COUNCILS.len()
                );
                Ok(())
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
    telemetry::init();
    let data = DataDir::open(&args.data.data)?;
    let store = data.open_store()?;
    if args.demo {
        demo::seed(&store).await?;
    }
    let keys = LocalKeys::load_or_create(data.root())?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let wake = WakeDispatcher::default();
    let channel = FileChannel::new(&data.outbox())?;
    let state = AppState {
        store: store.clone(),
        queue: wake.clone(),
        clock: clock.clone(),
        policy: VisibilityPolicy {
            tail_days: args.tail_days,
            ..VisibilityPolicy::default()
        },
        pseudonymiser: data.pseudonymiser()?,
        auth: Authenticator::Local(keys.verifier()),
        volume: Default::default(),
    };
    // Again, now that the store, the keys and the outbox exist: nothing in
    // the data directory may be open to other local users.
    data.secure()?;
    let router = cpis_http::service_router_with(state, readiness::router(store.clone()));

    let (stop, stopped) = watch::channel(false);
    let dispatcher = tokio::spawn(background::run_dispatcher(
        store.clone(),
        channel,
        clock.clone(),
        wake,
        args.view_url.clone(),
        stopped.clone(),
    ));
    let feeds = tokio::spawn(background::run_feed_watch(
        store.clone(),
        clock.clone(),
        time::Duration::hours(i64::from(args.feed_stale_after_hours)),
        stopped.clone(),
    ));
    let purge = tokio::spawn(background::run_purge(store, clock, stopped));

    let listener = tokio::net::TcpListener::bind(args.addr).await?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, data = %data.root().display(), "cpis listening");
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown_signal())
        .await?;

    tracing::info!("shutting down: finishing background work");
    let _ = stop.send(true);
    let _ = dispatcher.await;
    let _ = purge.await;
    let _ = feeds.await;
    Ok(())
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
    let keys = LocalKeys::load_or_create(data.root())?;
    let claims = token_claims(&args)?;
    // Refuse to mint a token the service would refuse.
    claims.principal().map_err(|e| format!("{e}"))?;
    let now = SystemClock.now();
    let token = keys.mint(&claims, now, time::Duration::minutes(args.ttl_minutes))?;
    println!("{token}");
    Ok(())
}

fn token_claims(args: &TokenArgs) -> Result<CallerClaims, Failure> {
    if let Some(council) = &args.council {
        return Ok(CallerClaims {
            sub: format!("council-{council}"),
            role: "council".into(),
            ods_code: council.clone(),
            rbac: None,
            org_name: None,
            setting: None,
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
    })
}
