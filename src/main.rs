//! The `ivr` command line. Everything it does lives in the library; this file parses flags,
//! sets up logging and reports errors with context.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use ivr::config::{Config, parse_listen, parse_port_range};
use tracing_subscriber::EnvFilter;

/// A telephony IVR for an IT support firm's after-hours line: answers SIP calls, plays prompts
/// over RTP, and (as the project grows) follows TOML call flows, rings the on-call desk and takes
/// voicemail.
#[derive(Parser)]
#[command(name = "ivr", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Answer SIP calls (UDP and TCP) and run the call flow for the dialled number.
    ///
    /// Examples:
    ///   ivr serve                                  # built-in defaults: 0.0.0.0:5060, RTP 20000-29999
    ///   ivr serve --sip 127.0.0.1:5070 --rtp-ports 30000-30999 --data /var/lib/ivr
    ///   ivr serve --config /etc/ivr/ivr.toml --hold-after-prompt
    Serve {
        /// Config file (TOML); keys it omits keep the built-in defaults of config/ivr.toml.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// SIP listen address for UDP and TCP, e.g. 0.0.0.0:5060 (port 0 picks a free port).
        #[arg(long, value_name = "ADDR:PORT", value_parser = parse_listen)]
        sip: Option<std::net::SocketAddr>,
        /// RTP port range, e.g. 20000-29999.
        #[arg(long, value_name = "LO-HI", value_parser = parse_port_range)]
        rtp_ports: Option<(u16, u16)>,
        /// Data directory (recordings, database); created if missing.
        #[arg(long, value_name = "DIR")]
        data: Option<PathBuf>,
        /// Prompt directory (8 kHz mono 16-bit WAV files).
        #[arg(long, value_name = "DIR")]
        prompts: Option<PathBuf>,
        /// When the call flow ends, keep the line up until the caller hangs up instead of sending BYE.
        #[arg(long)]
        hold_after_prompt: bool,
        /// Call flow for every dialled number without its own entry (overrides flows.default).
        #[arg(long, value_name = "FILE")]
        flow: Option<PathBuf>,
        /// Pretend the clock reads this time at start (RFC 3339, e.g. 2026-11-27T22:30:00-05:00):
        /// business hours are decided as if it were then. For tests and demos.
        #[arg(long, value_name = "RFC3339-TIME", value_parser = parse_time)]
        now: Option<jiff::Timestamp>,
    },
    /// Check call flows: every error with file:line:col and a hint; exit status 1 on errors.
    ///
    /// Examples:
    ///   ivr check callflows/after_hours.toml
    ///   ivr check callflows/*.toml callflows/examples/*.toml --prompts /srv/ivr/prompts
    Check {
        /// Flow files (TOML).
        #[arg(required = true, value_name = "FLOW")]
        flows: Vec<PathBuf>,
        /// Prompt directory the flows' prompt names must exist in (default: prompts.dir).
        #[arg(long, value_name = "DIR")]
        prompts: Option<PathBuf>,
    },
    /// Run a flow in the terminal on a virtual clock: type keys when asked (Enter = silence,
    /// `hangup` = hang up); dial asks whether staff answer.
    ///
    /// Examples:
    ///   ivr simulate callflows/after_hours.toml --at 2026-11-27T22:30:00-05:00 --caller +15550100
    ///   printf '5\n1\n\n' | ivr simulate callflows/after_hours.toml --at 2026-11-27T22:30:00-05:00
    Simulate {
        /// Flow file (TOML).
        #[arg(value_name = "FLOW")]
        flow: PathBuf,
        /// Time of the call (RFC 3339); decides `open` and `holiday` from [hours]. Default: now.
        #[arg(long, value_name = "RFC3339-TIME", value_parser = parse_time)]
        at: Option<jiff::Timestamp>,
        /// Caller's number.
        #[arg(long, value_name = "NUMBER", default_value = "+15550100")]
        caller: String,
        /// Dialled number.
        #[arg(long, value_name = "NUMBER", default_value = "100")]
        called: String,
        /// Prompt directory (default: prompts.dir); WAV lengths set the virtual clock.
        #[arg(long, value_name = "DIR")]
        prompts: Option<PathBuf>,
        /// Config file for [hours] and prompts.dir.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Print a flow as Graphviz dot (`ivr graph FLOW | dot -Tsvg > flow.svg`).
    Graph {
        /// Flow file (TOML).
        #[arg(value_name = "FLOW")]
        flow: PathBuf,
        /// Prompt directory (default: prompts.dir); the flow is checked first.
        #[arg(long, value_name = "DIR")]
        prompts: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ivr: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve {
            config,
            sip,
            rtp_ports,
            data,
            prompts,
            hold_after_prompt,
            flow,
            now,
        } => {
            let mut cfg = Config::load(config.as_deref())?;
            if let Some(sip) = sip {
                cfg.sip.listen = sip.to_string();
            }
            if let Some((lo, hi)) = rtp_ports {
                cfg.rtp.ports = format!("{lo}-{hi}");
            }
            if let Some(data) = data {
                cfg.data.dir = data;
            }
            if let Some(prompts) = prompts {
                cfg.prompts.dir = prompts;
            }
            if hold_after_prompt {
                cfg.call.hold_after_prompt = true;
            }
            if let Some(flow) = flow {
                cfg.flows.default = flow;
            }
            cfg.clock_at = now;
            init_logging(&cfg.log.filter);
            let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
            rt.block_on(async move {
                let (tx, rx) = tokio::sync::mpsc::channel(4);
                tokio::spawn(forward_signals(tx));
                ivr::server::serve(cfg, rx, None).await
            })?;
            Ok(())
        }
        Command::Check { flows, prompts } => flow_check(&flows, prompts),
        Command::Simulate {
            flow,
            at,
            caller,
            called,
            prompts,
            config,
        } => flow_simulate(&flow, at, caller, called, prompts, config.as_deref()),
        Command::Graph { flow, prompts } => {
            let flow = load_flow(&flow, &prompts_dir(prompts, None)?)?;
            print!("{}", ivr::flow::to_dot(&flow));
            Ok(())
        }
    }
}

/// `prompts` or the configured prompt directory.
fn prompts_dir(
    prompts: Option<PathBuf>,
    config: Option<&std::path::Path>,
) -> anyhow::Result<PathBuf> {
    match prompts {
        Some(p) => Ok(p),
        None => Ok(Config::load(config)?.prompts.dir),
    }
}

/// A checked flow, or its diagnostics on stderr and an error.
fn load_flow(path: &std::path::Path, prompts: &std::path::Path) -> anyhow::Result<ivr::flow::Flow> {
    match ivr::flow::check(path, prompts) {
        Ok(flow) => {
            for w in &flow.warnings {
                eprintln!("{w}");
            }
            Ok(flow)
        }
        Err(diags) => {
            eprintln!("{diags}");
            anyhow::bail!("{}: {} error(s)", path.display(), diags.error_count())
        }
    }
}

fn flow_check(flows: &[PathBuf], prompts: Option<PathBuf>) -> anyhow::Result<()> {
    let dir = prompts_dir(prompts, None)?;
    let mut errors = 0;
    for path in flows {
        match ivr::flow::check(path, &dir) {
            Ok(flow) => flow.warnings.iter().for_each(|w| eprintln!("{w}")),
            Err(diags) => {
                eprintln!("{diags}");
                errors += diags.error_count();
            }
        }
    }
    if errors > 0 {
        anyhow::bail!("{errors} error(s) in {} flow(s)", flows.len());
    }
    println!("ok: {} flows checked", flows.len());
    Ok(())
}

fn flow_simulate(
    path: &std::path::Path,
    at: Option<jiff::Timestamp>,
    caller: String,
    called: String,
    prompts: Option<PathBuf>,
    config: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    let cfg = Config::load(config)?;
    let dir = prompts.unwrap_or_else(|| cfg.prompts.dir.clone());
    let flow = std::sync::Arc::new(load_flow(path, &dir)?);
    let hours = ivr::hours::BusinessHours::from_config(&cfg.hours)
        .map_err(|e| anyhow::anyhow!("[hours] {} = {:?}: {}", e.key, e.value, e.reason))?;
    let at = at.unwrap_or_else(jiff::Timestamp::now);
    let facts = ivr::flow::Facts {
        open: hours.is_open(at),
        holiday: hours.is_holiday(at),
        caller,
        called,
        ..ivr::flow::Facts::default()
    };
    println!("time: {at} ({})", hours.describe(at));
    // Missing or unreadable WAVs (not possible after check, barring races) count as 3 s.
    let length = |name: &str| {
        ivr::flow::simulate::wav_duration(&dir, name).unwrap_or(std::time::Duration::from_secs(3))
    };
    let stdin = std::io::stdin();
    ivr::flow::simulate(flow, facts, stdin.lock(), std::io::stdout(), &length)?;
    Ok(())
}

fn parse_time(s: &str) -> Result<jiff::Timestamp, String> {
    s.parse::<jiff::Timestamp>()
        .map_err(|e| format!("{e}; expected RFC 3339 like 2026-11-27T22:30:00-05:00"))
}

fn init_logging(default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

/// SIGINT and SIGTERM both ask for a graceful shutdown; a second one forces it.
async fn forward_signals(tx: tokio::sync::mpsc::Sender<()>) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return;
    };
    loop {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        if tx.send(()).await.is_err() {
            return;
        }
    }
}
