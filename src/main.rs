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
    /// Answer SIP calls (UDP and TCP) and play the greeting prompt.
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
        /// Keep calls up after the greeting until the caller hangs up, instead of sending BYE.
        #[arg(long)]
        hold_after_prompt: bool,
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
            init_logging(&cfg.log.filter);
            let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
            rt.block_on(async move {
                let (tx, rx) = tokio::sync::mpsc::channel(4);
                tokio::spawn(forward_signals(tx));
                ivr::server::serve(cfg, rx, None).await
            })?;
            Ok(())
        }
    }
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
