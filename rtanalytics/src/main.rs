//! `rtanalytics`: the analytics service. See `rtanalytics --help` and the README.

use clap::{Parser, Subcommand};
use rtanalytics::config::{Config, SourceConfig};
use rtanalytics::shard::Shard;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser)]
#[command(
    version,
    about = "Video analytics service built from the rt* GStreamer elements"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service until SIGTERM/SIGINT (or until every source has ended).
    Run(Box<RunArgs>),
    /// Check a config file (and the model and rules files it names) without running.
    Check { config: PathBuf },
    /// Print the JSON Schema of the config file.
    Schema,
}

#[derive(clap::Args)]
struct RunArgs {
    /// YAML config file (see `rtanalytics schema` and rtanalytics/examples/cameras.yaml).
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Without --config: a source, as URI or ID=URI (repeat for more).
    #[arg(long = "source", value_name = "[ID=]URI")]
    sources: Vec<String>,
    /// Without --config: the ONNX model.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Without --config: an rtalert rules file for every source.
    #[arg(long)]
    rules: Option<PathBuf>,
    /// Without --config: also print every frame's detections as JSON lines.
    #[arg(long)]
    detections: bool,
    /// Address of the HTTP API and /metrics (default 127.0.0.1:8080).
    #[arg(long, value_name = "ADDR:PORT")]
    listen: Option<String>,
    /// Run only this share of the sources: I/N (0-based).
    #[arg(long, value_name = "I/N", conflicts_with = "shards")]
    shard: Option<String>,
    /// Run the share of a StatefulSet pod: N shards, I from the hostname's "-ORDINAL".
    #[arg(long, value_name = "N")]
    shards: Option<u32>,
    /// text or json.
    #[arg(long)]
    log_format: Option<String>,
    /// error, warn, info, debug or trace.
    #[arg(long)]
    log_level: Option<String>,
    /// Write the final stats (JSON) here when stopping.
    #[arg(long)]
    stats_file: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Schema => {
            print!("{}", rtanalytics::config::schema());
            ExitCode::SUCCESS
        }
        Command::Check { config } => match check(&config) {
            Ok(summary) => {
                println!("{}: OK ({summary})", config.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(2)
            }
        },
        Command::Run(args) => run(*args),
    }
}

fn check(path: &std::path::Path) -> Result<String, String> {
    let config = Config::load(path)?;
    gst::init().map_err(|e| e.to_string())?;
    config.check_files()?;
    let enabled = config.sources.iter().filter(|s| s.enabled).count();
    Ok(format!(
        "{} sources, {enabled} enabled; model {}",
        config.sources.len(),
        config.model.file.display()
    ))
}

/// The config from the file, or from the quick command-line form, with the command line's
/// overrides applied.
fn build_config(args: &RunArgs) -> Result<(Config, Option<Shard>), String> {
    let mut config = match &args.config {
        Some(path) => {
            if !args.sources.is_empty() || args.model.is_some() || args.rules.is_some() {
                return Err("Give either --config or --source/--model/--rules, not both".into());
            }
            Config::load(path)?
        }
        None => {
            let model = args
                .model
                .as_ref()
                .ok_or("Give --config FILE, or --model FILE with one or more --source URI")?;
            let sources = args
                .sources
                .iter()
                .enumerate()
                .map(|(i, s)| quick_source(i, s))
                .collect::<Vec<_>>();
            let mut yaml = serde_json::json!({
                "model": {"file": model},
                "sources": sources,
                "outputs": {"detections": {"stdout": args.detections}},
            });
            if let Some(r) = &args.rules {
                yaml["rules"] = r.to_string_lossy().as_ref().into();
            }
            Config::parse(&yaml.to_string(), "the command line")?
        }
    };
    if let Some(l) = &args.listen {
        config.http.listen = l.clone();
    }
    if let Some(f) = &args.log_format {
        config.logging.format = f.clone();
    }
    if let Some(l) = &args.log_level {
        config.logging.level = l.clone();
    }
    if let Some(s) = &args.shard {
        config.shard = Some(s.clone());
    }
    config
        .check_values()
        .map_err(|e| format!("the command line: {e}"))?;
    let shard = match (args.shards, &config.shard) {
        (Some(n), _) => {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_string())
                .unwrap_or_default();
            let host = std::env::var("HOSTNAME").unwrap_or(host);
            Some(Shard::from_hostname(&host, n)?)
        }
        (None, Some(s)) => Some(Shard::parse(s)?),
        (None, None) => None,
    };
    Ok((config, shard))
}

fn quick_source(i: usize, arg: &str) -> SourceConfig {
    // "ID=URI" when the part before '=' comes before the scheme's "://".
    let (id, uri) = match arg.split_once('=') {
        Some((id, uri)) if !id.contains("://") && uri.contains("://") => {
            (id.to_string(), uri.to_string())
        }
        _ => (format!("source{i}"), arg.to_string()),
    };
    SourceConfig {
        id,
        uri,
        enabled: true,
        rules: None,
        loop_: true,
    }
}

fn init_logging(format: &str, level: &str) {
    // The NATS client logs every reconnect attempt at info; our outputs report outages.
    let level = if level.contains('=') {
        level.to_string()
    } else {
        format!("{level},async_nats=warn")
    };
    let filter = tracing_subscriber::EnvFilter::try_new(&level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false);
    if format == "json" {
        builder.json().flatten_event(true).init();
    } else {
        builder.init();
    }
}

/// Finds the rt* elements: installed, on GST_PLUGIN_PATH, or beside this executable (a
/// cargo build puts the plugins and the binary in the same folder).
fn ensure_plugins() -> Result<(), String> {
    let missing = || {
        ["rtinfer", "rturisrcbin", "rttrack", "rtalert"]
            .into_iter()
            .filter(|f| gst::ElementFactory::find(f).is_none())
            .collect::<Vec<_>>()
    };
    if missing().is_empty() {
        return Ok(());
    }
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.to_path_buf()))
    {
        gst::Registry::get().scan_path(&dir);
    }
    let still = missing();
    if still.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "GStreamer cannot find the elements {}: build them (cargo build --release) and \
             set GST_PLUGIN_PATH to the folder with libgstrtinfer.so",
            still.join(", ")
        ))
    }
}

/// Keeps memory flat while sources come and go (unless MALLOC_ARENA_MAX or
/// MALLOC_MMAP_THRESHOLD_ say otherwise). With glibc's defaults, RSS grew in steps by 7 to
/// 16 MiB over 50 sources added and removed although no object was left behind (GStreamer's
/// leaks tracer): each source's threads spread allocations over new arenas (8 per core are
/// allowed), and freeing the first large buffers (2 MiB tensors) raises glibc's mmap
/// threshold so later ones stay in fragmented heaps. One arena per core and a fixed 1 MiB
/// threshold kept it within 1 MiB over 70 sources. Per-frame buffers come from pools, so
/// the fixed threshold costs no mmap per frame.
fn tune_malloc() {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    // SAFETY: mallopt only sets allocator parameters; called before other threads exist.
    unsafe {
        if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
            libc::mallopt(libc::M_ARENA_MAX, cores.max(2) as libc::c_int);
        }
        if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_none() {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
        }
    }
}

fn run(args: RunArgs) -> ExitCode {
    tune_malloc();
    let (mut config, shard) = match build_config(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    init_logging(&config.logging.format, &config.logging.level);
    let token = std::env::var("RTANALYTICS_TOKEN")
        .ok()
        .filter(|t| !t.is_empty())
        .or(config.http.token.clone().filter(|t| !t.trim().is_empty()));
    let listen: std::net::SocketAddr = config.http.listen.parse().expect("checked");
    if !listen.ip().is_loopback() && token.is_none() {
        tracing::error!(
            "listening on {listen} (beyond loopback) needs a token: set http.token or \
             RTANALYTICS_TOKEN"
        );
        return ExitCode::from(2);
    }
    if let Some(r) = config.restream.as_mut() {
        if let Some(p) = std::env::var("RTANALYTICS_RTSP_PASSWORD")
            .ok()
            .filter(|p| !p.is_empty())
        {
            r.password = Some(p);
        }
        let beyond = r
            .listen
            .parse::<std::net::SocketAddr>()
            .is_ok_and(|a| !a.ip().is_loopback());
        if beyond && r.password.is_none() {
            tracing::error!(
                "re-streaming on {} (beyond loopback) needs a password: set restream.password \
                 or RTANALYTICS_RTSP_PASSWORD",
                r.listen
            );
            return ExitCode::from(2);
        }
    }
    if let Err(e) = gst::init()
        .map_err(|e| e.to_string())
        .and_then(|_| ensure_plugins())
        .and_then(|_| config.check_files())
    {
        tracing::error!("{e}");
        return ExitCode::from(2);
    }
    let stop_timeout = Duration::from_millis(config.stop_timeout_ms);
    let open_metrics = config.http.metrics_without_token;
    let service = match rtanalytics::service::Service::start(config, shard) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::from(1);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(4)
        .thread_name("rtanalytics-http")
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            tracing::error!("cannot start the HTTP runtime: {e}");
            service.stop();
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(serve(
        service.clone(),
        listen,
        (token, open_metrics),
        stop_timeout,
    ));
    let final_stats = service.stats_json();
    let mut line = final_stats.clone();
    line["final"] = true.into();
    // Not println!: stdout may be a closed pipe by now.
    let _ = writeln!(std::io::stdout().lock(), "{line}");
    if let Some(path) = &args.stats_file {
        let text = serde_json::to_string_pretty(&final_stats).expect("serializable") + "\n";
        if let Err(e) = std::fs::write(path, text) {
            tracing::error!("cannot write the stats file {}: {e}", path.display());
        }
    }
    runtime.shutdown_timeout(Duration::from_secs(1));
    match result {
        Ok(()) => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::from(1)
        }
    }
}

/// Serves the API until a signal (clean stop; a second signal exits at once) or until the
/// pipeline ends or fails by itself.
async fn serve(
    service: std::sync::Arc<rtanalytics::service::Service>,
    listen: std::net::SocketAddr,
    (token, open_metrics): (Option<String>, bool),
    stop_timeout: Duration,
) -> Result<(), String> {
    use tokio::signal::unix::{SignalKind, signal};
    let listener = match tokio::net::TcpListener::bind(listen).await {
        Ok(l) => l,
        Err(e) => {
            let svc = service.clone();
            let _ = tokio::task::spawn_blocking(move || svc.stop()).await;
            return Err(format!("cannot listen on {listen}: {e}"));
        }
    };
    tracing::info!(
        "HTTP API on http://{listen} (/healthz /readyz /metrics /api/v1/streams); dashboard at http://{listen}/"
    );
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let app = rtanalytics::api::router(service.clone(), token, open_metrics);
    let server = tokio::spawn(async move {
        let mut rx = stop_rx;
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = rx.wait_for(|s| *s).await;
            })
            .await
    });
    let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
    let svc = service.clone();
    let finished = tokio::task::spawn_blocking(move || {
        // Ends when the pipeline ends or fails by itself, or when stop() finishes.
        loop {
            if let Some(r) = svc.wait_finished(Duration::from_millis(500)) {
                return r;
            }
        }
    });
    let result = tokio::select! {
        r = finished => {
            let r = r.map_err(|e| e.to_string()).and_then(|r| r);
            if !service.is_stopping() {
                match &r {
                    Ok(()) => tracing::info!("every source has ended"),
                    Err(e) => tracing::error!("stopping: {e}"),
                }
            }
            let svc = service.clone();
            let _ = tokio::task::spawn_blocking(move || svc.stop()).await;
            r
        }
        _ = async { tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} } } => {
            tracing::info!("signal received: stopping cleanly (a second signal stops at once)");
            let svc = service.clone();
            let stopping = tokio::task::spawn_blocking(move || svc.stop());
            tokio::select! {
                _ = stopping => Ok(()),
                _ = async { tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} } } => {
                    tracing::warn!("second signal: exiting now");
                    std::process::exit(130);
                }
                _ = tokio::time::sleep(stop_timeout * 2 + Duration::from_secs(5)) => {
                    tracing::error!("the stop took too long: exiting now");
                    std::process::exit(1);
                }
            }
        }
    };
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(2), server).await;
    result
}
