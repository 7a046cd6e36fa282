//! The `ivr` command line. Everything it does lives in the library; this file parses flags,
//! sets up logging and reports errors with context.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use ivr::config::{Config, parse_listen, parse_port_range};
use tracing_subscriber::EnvFilter;

/// A telephony IVR for an IT support firm's after-hours line: answers SIP calls, follows TOML
/// call flows (prompts over RTP, keys pressed), remembers callers, takes voicemail with a callback
/// promise, and tells the helpdesk by webhook.
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
    #[command(verbatim_doc_comment)]
    Serve {
        /// Config file (TOML); keys it omits keep the built-in defaults of config/ivr.toml.
        /// Relative paths in it resolve against its own directory.
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
        /// Pretend the clock reads this time at start (RFC 3339, e.g. 2026-11-27T22:30:00-05:00)
        /// and runs on from there: business hours, CDR times, voicemail file names, webhook
        /// events and callback deadlines all read it. For tests and demos.
        #[arg(long, value_name = "RFC3339-TIME", value_parser = parse_time)]
        now: Option<jiff::Timestamp>,
        /// Admin web page and API listen address (default [admin] listen, 127.0.0.1:8080);
        /// an empty value turns it off.
        #[arg(long, value_name = "ADDR:PORT", value_parser = parse_admin_listen)]
        admin: Option<String>,
    },
    /// Check call flows: every error with file:line:col and a hint; exit status 1 on errors.
    /// With no FLOW, checks the flows the config names (flows.default and [flows.numbers]), as
    /// `ivr serve` does at start.
    ///
    /// Examples:
    ///   ivr check callflows/after_hours.toml
    ///   ivr check callflows/*.toml callflows/examples/*.toml --prompts /srv/ivr/prompts
    ///   ivr check --config /etc/ivr/ivr.toml
    #[command(verbatim_doc_comment)]
    Check {
        /// Flow files (TOML); default: every flow the config names.
        #[arg(value_name = "FLOW")]
        flows: Vec<PathBuf>,
        /// Prompt directory the flows' prompt names must exist in (default: prompts.dir).
        #[arg(long, value_name = "DIR")]
        prompts: Option<PathBuf>,
        /// Config file for prompts.dir and the flows to check; its relative paths resolve against
        /// its own directory.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Run a flow in the terminal on a virtual clock: type keys when asked (Enter = silence,
    /// `hangup` = hang up); dial asks whether staff answer.
    ///
    /// Examples:
    ///   ivr simulate callflows/after_hours.toml --at 2026-11-27T22:30:00-05:00 --caller +15550100
    ///   printf '5\n1\n#\n\n3\n' | ivr simulate callflows/after_hours.toml --at 2026-11-27T22:30:00-05:00
    ///   ivr simulate callflows/after_hours.toml --at 2026-11-27T22:30:00-05:00 --repeat --agreed-recently
    #[command(verbatim_doc_comment)]
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
        /// Play a repeat caller: the same number called just before (`caller.repeat`).
        #[arg(long)]
        repeat: bool,
        /// The number agreed to the after-hours terms on a call within the repeat window
        /// (`caller.agreed_recently`).
        #[arg(long)]
        agreed_recently: bool,
        /// Play a call during an incident (`incident.active`) announced with this prompt (the
        /// variable `incident_prompt`); `--incident ""`: an incident without a prompt.
        #[arg(long, value_name = "PROMPT")]
        incident: Option<String>,
        /// Prompt directory (default: prompts.dir); WAV lengths set the virtual clock.
        #[arg(long, value_name = "DIR")]
        prompts: Option<PathBuf>,
        /// Config file for [hours] and prompts.dir.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// What `record` nodes get: `message` (20 s), `empty` (the caller says nothing: the
        /// node's `on_empty`) or `failed` (no voicemail can be written: the node's `on_error`).
        #[arg(long, value_name = "WHAT", default_value = "message",
              value_parser = ["message", "empty", "failed"])]
        voicemail: String,
    },
    /// Who is on call ([oncall] rota) at a time, since when and until when, and the next
    /// changes, in the line's time zone ([hours] timezone).
    ///
    /// Examples:
    ///   ivr oncall --config /etc/ivr/ivr.toml
    ///   ivr oncall --config /etc/ivr/ivr.toml --at 2026-12-24T18:00:00-05:00 --next 10
    #[command(verbatim_doc_comment)]
    Oncall {
        /// Config file with the [oncall] rota and [[staff.users]].
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// The time to ask about (RFC 3339). Default: now.
        #[arg(long, value_name = "RFC3339-TIME", value_parser = parse_time)]
        at: Option<jiff::Timestamp>,
        /// How many of the following changes to list.
        #[arg(long, value_name = "N", default_value_t = 5)]
        next: usize,
    },
    /// Print a flow as Graphviz dot (`ivr graph FLOW | dot -Tsvg > flow.svg`).
    Graph {
        /// Flow file (TOML).
        #[arg(value_name = "FLOW")]
        flow: PathBuf,
        /// Prompt directory (default: prompts.dir); the flow is checked first.
        #[arg(long, value_name = "DIR")]
        prompts: Option<PathBuf>,
        /// Config file for prompts.dir.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Ask the running `ivr serve` to reload its config, flows and prompts (as SIGHUP does), and
    /// print the outcome; exit status 1 if the new set failed its checks (the old one keeps
    /// serving). Listen addresses, the data directory and RTP ports need a restart.
    ///
    /// Examples:
    ///   ivr reload --data /var/lib/ivr
    ///   ivr reload --config /etc/ivr/ivr.toml       # the data directory it names
    #[command(verbatim_doc_comment)]
    Reload {
        /// The running server's data directory (where its ivr.pid is).
        #[arg(long, value_name = "DIR", conflicts_with = "config")]
        data: Option<PathBuf>,
        /// Config file naming data.dir (default: the built-in defaults' data directory).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Call detail records (billing).
    Cdr {
        #[command(subcommand)]
        command: CdrCommand,
    },
    /// Voicemails and their callback promise.
    Voicemail {
        #[command(subcommand)]
        command: VoicemailCommand,
    },
    /// Outage announcements: incidents the call flows can announce (`[incidents]`).
    Incident {
        #[command(subcommand)]
        command: IncidentCommand,
    },
    /// The admin web page and API.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    #[command(verbatim_doc_comment)]
    /// Read an admin token on standard input and print its argon2 hash for [admin] token_hash.
    ///
    /// Example:
    ///   head -c 24 /dev/urandom | base64 | tee token.txt | ivr admin hash-token
    HashToken,
}

#[derive(Subcommand)]
enum CdrCommand {
    #[command(verbatim_doc_comment)]
    /// Write call detail records as CSV: calls started in [--from, --to), oldest first.
    ///
    /// Columns: call_id, started_at, answered_at, ended_at, talk_seconds, caller, client,
    /// after_hours, agreement, rate_multiplier, agreed_terms, digits, ticket, outcome, end_reason,
    /// repeat, answered_by, incident. Times are RFC 3339 UTC; outcome is bridged, voicemail, no_message,
    /// voicemail_failed, abandoned, closed_hours or rejected (empty while the call is live).
    ///
    /// Examples:
    ///   ivr cdr export --data /var/lib/ivr > cdrs.csv
    ///   ivr cdr export --from 2026-11-01T00:00:00-05:00 --to 2026-12-01T00:00:00-05:00 --out nov.csv
    Export {
        /// First start time included (RFC 3339).
        #[arg(long, value_name = "RFC3339-TIME", value_parser = parse_time)]
        from: Option<jiff::Timestamp>,
        /// First start time excluded (RFC 3339).
        #[arg(long, value_name = "RFC3339-TIME", value_parser = parse_time)]
        to: Option<jiff::Timestamp>,
        #[command(flatten)]
        data: DataArgs,
        /// Write to this file instead of standard output.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum VoicemailCommand {
    #[command(verbatim_doc_comment)]
    /// Acknowledge a voicemail (someone is calling back): stops its callback timer.
    ///
    /// Examples:
    ///   ivr voicemail ack 12 --by alice --data /var/lib/ivr
    Ack {
        /// Voicemail id (see `ivr voicemail list`).
        #[arg(value_name = "ID")]
        id: i64,
        /// Who is calling back (default: $USER).
        #[arg(long, value_name = "NAME")]
        by: Option<String>,
        #[command(flatten)]
        data: DataArgs,
        /// The time of the acknowledgement (RFC 3339), for a line run with `serve --now`.
        #[arg(long, value_name = "RFC3339-TIME", value_parser = parse_time)]
        now: Option<jiff::Timestamp>,
    },
    /// List voicemails, oldest first, with their callback status.
    List {
        #[command(flatten)]
        data: DataArgs,
        /// Judge callback deadlines at this time (RFC 3339), for a line run with `serve --now`.
        #[arg(long, value_name = "RFC3339-TIME", value_parser = parse_time)]
        now: Option<jiff::Timestamp>,
    },
}

#[derive(Subcommand)]
enum IncidentCommand {
    #[command(verbatim_doc_comment)]
    /// Set (or refresh) an incident: calls hear its prompt while it is active.
    ///
    /// Examples:
    ///   ivr incident set mail-outage --label service=email --summary "IMAP down" --for 2h
    Set {
        /// A name for it (`ivr incident clear NAME` ends it).
        #[arg(value_name = "NAME")]
        name: String,
        /// A label NAME=VALUE ([[incidents.prompts]] match on them); repeatable.
        #[arg(long = "label", value_name = "NAME=VALUE")]
        labels: Vec<String>,
        /// What is wrong, for the list and the log.
        #[arg(long, value_name = "TEXT", default_value = "")]
        summary: String,
        /// How long it stays active unless cleared first (e.g. 30m, 2h).
        #[arg(long = "for", value_name = "DURATION", default_value = "1h",
              value_parser = parse_span)]
        lasts: std::time::Duration,
        #[command(flatten)]
        data: DataArgs,
        /// The time it is set (RFC 3339), for a line run with `serve --now`.
        #[arg(long, value_name = "RFC3339-TIME", value_parser = parse_time)]
        now: Option<jiff::Timestamp>,
    },
    /// End an incident set with `ivr incident set NAME`.
    Clear {
        #[arg(value_name = "NAME")]
        name: String,
        #[command(flatten)]
        data: DataArgs,
        /// The time it ends (RFC 3339), for a line run with `serve --now`.
        #[arg(long, value_name = "RFC3339-TIME", value_parser = parse_time)]
        now: Option<jiff::Timestamp>,
    },
    /// List incidents (from the CLI and Alertmanager), newest first, with their state.
    List {
        #[command(flatten)]
        data: DataArgs,
        /// Judge expiry at this time (RFC 3339), for a line run with `serve --now`.
        #[arg(long, value_name = "RFC3339-TIME", value_parser = parse_time)]
        now: Option<jiff::Timestamp>,
    },
}

/// Where the database is: `--data`, else the config file's data.dir.
#[derive(clap::Args)]
struct DataArgs {
    /// Data directory of `ivr serve` (holds ivr.db; default: data.dir of the config).
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// Config file whose data.dir to use when --data is not given.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

impl DataArgs {
    /// The existing store (a wrong directory is an error, not a new empty database). A
    /// PostgreSQL URL connects (and brings the schema up to date, as `ivr serve` would).
    fn open(&self) -> anyhow::Result<Box<dyn ivr::store::Store>> {
        // IVR_STORE_URL names the database itself: it wins over --data and `[store] url`, as
        // it does for `ivr serve`, so these commands read the database the line writes.
        if let Some(store) = ivr::config::store_from_env()? {
            let mut cfg = Config::embedded();
            cfg.set_store_from_env(store);
            return open_backend(cfg.store_backend(), &cfg.path_origin("store.url"));
        }
        // With --data the config is not read at all, as before: only data.dir is wanted from it.
        let (dir, origin) = match &self.data {
            Some(d) => (ivr::config::absolute(d), format!("--data {}", d.display())),
            None => {
                let cfg = Config::load(self.config.as_deref())?;
                if !cfg.store.url.is_empty() {
                    // `[store] url` names the database itself (checked at load).
                    return open_backend(cfg.store_backend(), &cfg.path_origin("store.url"));
                }
                let origin = cfg.path_origin("data.dir");
                (cfg.data.dir, origin)
            }
        };
        ivr::store::SqliteStore::open_existing(&dir)
            .map(|s| Box::new(s) as Box<dyn ivr::store::Store>)
            .map_err(|e| anyhow::anyhow!("{e} (data directory: {origin})"))
    }
}

/// The existing store `backend` names (`origin`: where it was named, for the error).
fn open_backend(
    backend: ivr::config::StoreBackend,
    origin: &str,
) -> anyhow::Result<Box<dyn ivr::store::Store>> {
    let opened: Result<Box<dyn ivr::store::Store>, _> = match backend {
        ivr::config::StoreBackend::Sqlite(file) => {
            ivr::store::SqliteStore::open_existing_path(&file)
                .map(|s| Box::new(s) as Box<dyn ivr::store::Store>)
        }
        ivr::config::StoreBackend::Postgres(url) => {
            ivr::store::PgStore::connect(&url).map(|s| Box::new(s) as Box<dyn ivr::store::Store>)
        }
    };
    opened.map_err(|e| anyhow::anyhow!("{e} (store: {origin})"))
}

fn main() -> ExitCode {
    private_files();
    // reqwest is built with rustls but no default crypto provider (the webhook client passes its
    // own); installing ring as the process default means any other HTTPS client works too
    // instead of panicking at its first request.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        // The reader went away (`ivr graph f | head`): nothing is wrong, end quietly.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ivr: error: {}", error_text(&e));
            ExitCode::FAILURE
        }
    }
}

/// `e` and its causes, each said once: many errors already print their source in their own
/// message, and `{:#}` would print it again after them.
fn error_text(e: &anyhow::Error) -> String {
    let mut text = e.to_string();
    for cause in e.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
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
            admin,
        } => {
            let source = ivr::config::ConfigSource {
                file: config,
                overrides: ivr::config::Overrides {
                    sip,
                    rtp_ports,
                    data,
                    prompts,
                    hold_after_prompt,
                    flow,
                    now,
                    admin,
                },
            };
            let cfg = source.load()?;
            init_logging(&cfg.log.filter);
            let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
            rt.block_on(async move {
                let (tx, rx) = tokio::sync::mpsc::channel(4);
                let (reload_tx, reload_rx) = tokio::sync::mpsc::channel(4);
                // Handlers go in before anything else runs: until then SIGHUP would still kill.
                let signals = Signals::install().context("installing signal handlers")?;
                tokio::spawn(forward_signals(signals, tx, reload_tx));
                ivr::server::serve_with_reload(source, rx, reload_rx, None).await?;
                anyhow::Ok(())
            })?;
            Ok(())
        }
        Command::Reload { data, config } => {
            let dir = match data {
                Some(d) => d,
                None => Config::load(config.as_deref())?.data.dir,
            };
            let outcome =
                ivr::server::control::request_reload(&dir, std::time::Duration::from_secs(60))?;
            println!(
                "{}",
                serde_json::to_string_pretty(&outcome).context("printing the outcome")?
            );
            match &outcome.error {
                None => Ok(()),
                Some(e) => Err(anyhow::anyhow!(
                    "reload failed, the running set is kept:\n{e}"
                )),
            }
        }
        Command::Check {
            flows,
            prompts,
            config,
        } => flow_check(&flows, &flow_config(config.as_deref(), prompts)?),
        Command::Simulate {
            flow,
            at,
            caller,
            called,
            repeat,
            agreed_recently,
            incident,
            prompts,
            config,
            voicemail,
        } => {
            let caller_facts = ivr::flow::Facts {
                caller,
                called,
                caller_repeat: repeat,
                caller_agreed_recently: agreed_recently,
                incident_active: incident.is_some(),
                incident_prompt: incident.unwrap_or_default(),
                ..ivr::flow::Facts::default()
            };
            let recording = match voicemail.as_str() {
                "empty" => ivr::flow::simulate::Recording::Empty,
                "failed" => ivr::flow::simulate::Recording::Failed,
                _ => ivr::flow::simulate::Recording::Message,
            };
            flow_simulate(
                &flow,
                at,
                caller_facts,
                &flow_config(config.as_deref(), prompts)?,
                recording,
            )
        }
        Command::Oncall { config, at, next } => {
            let cfg = Config::load(config.as_deref())?;
            print!(
                "{}",
                oncall_report(&cfg, at.unwrap_or_else(jiff::Timestamp::now), next)
            );
            Ok(())
        }
        Command::Graph {
            flow,
            prompts,
            config,
        } => {
            let cfg = flow_config(config.as_deref(), prompts)?;
            let flow = load_flow(&flow, &cfg.prompts.dir)?;
            // `print!` panics when the reader has gone; a broken pipe ends quietly in `main`.
            let mut out = std::io::stdout().lock();
            out.write_all(ivr::flow::to_dot(&flow).as_bytes())?;
            out.flush()?;
            Ok(())
        }
        Command::Cdr {
            command:
                CdrCommand::Export {
                    from,
                    to,
                    data,
                    out,
                },
        } => cdr_export(from, to, &data, out.as_deref()),
        Command::Voicemail {
            command: VoicemailCommand::Ack { id, by, data, now },
        } => voicemail_ack(id, by, &data, now),
        Command::Voicemail {
            command: VoicemailCommand::List { data, now },
        } => voicemail_list(&data, now),
        Command::Incident { command } => incident(command),
        Command::Admin {
            command: AdminCommand::HashToken,
        } => admin_hash_token(),
    }
}

fn cdr_export(
    from: Option<jiff::Timestamp>,
    to: Option<jiff::Timestamp>,
    data: &DataArgs,
    out: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    use ivr::services::cdrs;
    let store = data.open()?;
    let filter = cdrs::CdrFilter {
        from,
        to,
        ..cdrs::CdrFilter::default()
    };
    let cdrs = cdrs::find(&*store, &filter)?;
    match out {
        Some(path) => {
            let file = std::fs::File::create(path)
                .with_context(|| format!("creating {}", path.display()))?;
            cdrs::write_csv(std::io::BufWriter::new(file), &cdrs)
                .with_context(|| format!("writing {}", path.display()))?;
            eprintln!("wrote {} call records to {}", cdrs.len(), path.display());
        }
        None => {
            let stdout = std::io::stdout();
            cdrs::write_csv(std::io::BufWriter::new(stdout.lock()), &cdrs)
                .context("writing CSV to standard output")?;
        }
    }
    Ok(())
}

fn voicemail_ack(
    id: i64,
    by: Option<String>,
    data: &DataArgs,
    now: Option<jiff::Timestamp>,
) -> anyhow::Result<()> {
    use ivr::store::AckOutcome;
    let store = data.open()?;
    let by = by
        .or_else(|| std::env::var("USER").ok().filter(|u| !u.is_empty()))
        .unwrap_or_else(|| "ivr voicemail ack".to_string());
    let at = now.map_or_else(ivr::clock::Clock::system, ivr::clock::Clock::starting_at);
    match ivr::services::voicemails::ack(&*store, id, &by, at.now())? {
        AckOutcome::Acked => {
            println!("voicemail {id} acknowledged by {by}; its callback timer is stopped");
            Ok(())
        }
        AckOutcome::AlreadyAcked { by, at } => {
            println!("voicemail {id} was already acknowledged by {by} at {at}; nothing changed");
            Ok(())
        }
        AckOutcome::NotFound => anyhow::bail!(
            "no voicemail with id {id} in {} (`ivr voicemail list` shows them)",
            ivr::store::StoreMetrics::location(&*store)
        ),
    }
}

fn voicemail_list(data: &DataArgs, now: Option<jiff::Timestamp>) -> anyhow::Result<()> {
    let store = data.open()?;
    let now = now.unwrap_or_else(jiff::Timestamp::now);
    let list = ivr::services::voicemails::list(&*store, now)?;
    if list.is_empty() {
        println!(
            "no voicemails in {}",
            ivr::store::StoreMetrics::location(&*store)
        );
        return Ok(());
    }
    println!("ID\tRECEIVED\tCALLER\tCLIENT\tTICKET\tSECONDS\tSTATUS\tFILE\tTRANSCRIPT");
    // Callers chose these texts; an ESC sequence must not reach the admin's terminal.
    let show = ivr::text::escape_control;
    for listed in list {
        let status = listed.status.describe();
        let vm = listed.voicemail;
        // The caller's words as an engine heard them: caller-controlled like the rest.
        let transcript = ivr::services::voicemails::TranscriptState::of(&vm).describe();
        let transcript = show(&transcript);
        println!(
            "{}\t{}\t{}\t{}\t{}\t{:.1}\t{status}\t{}\t{transcript}",
            vm.id,
            vm.created_at,
            show(&vm.caller),
            show(vm.client.as_deref().unwrap_or("-")),
            show(vm.ticket.as_deref().unwrap_or("-")),
            vm.duration_ms as f64 / 1000.0,
            show(&vm.path.display().to_string())
        );
    }
    Ok(())
}

fn incident(command: IncidentCommand) -> anyhow::Result<()> {
    use ivr::services::incidents;
    let at = |now: Option<jiff::Timestamp>| now.unwrap_or_else(jiff::Timestamp::now);
    match command {
        IncidentCommand::Set {
            name,
            labels,
            summary,
            lasts,
            data,
            now,
        } => {
            let labels = incidents::parse_labels(&labels).map_err(anyhow::Error::msg)?;
            let store = data.open()?;
            let (id, until) = incidents::set(&*store, &name, labels, &summary, lasts, at(now))?;
            println!("incident {name} (id {id}) is active until {until}");
        }
        IncidentCommand::Clear { name, data, now } => {
            let store = data.open()?;
            if !incidents::clear(&*store, &name, at(now))? {
                anyhow::bail!(
                    "no unresolved incident {name:?} set with `ivr incident set` (`ivr incident list` shows them)"
                );
            }
            println!("incident {name} cleared");
        }
        IncidentCommand::List { data, now } => {
            let store = data.open()?;
            let list = ivr::store::IncidentStore::incidents(&*store)?;
            if list.is_empty() {
                println!(
                    "no incidents in {}",
                    ivr::store::StoreMetrics::location(&*store)
                );
                return Ok(());
            }
            println!("ID\tSOURCE\tNAME\tLABELS\tSTARTED\tSTATE\tSUMMARY");
            // Alertmanager chose these texts; an ESC sequence must not reach the terminal.
            let show = ivr::text::escape_control;
            for i in list {
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}\t{}",
                    i.id,
                    i.source.as_str(),
                    show(&i.key),
                    show(&incidents::labels_text(&i.labels)),
                    i.started_at,
                    incidents::state(&i, at(now)),
                    show(&i.summary)
                );
            }
        }
    }
    Ok(())
}

/// `ivr admin hash-token`: the token is read from stdin (never a flag: flags end up in shell
/// history and `ps`); one trailing newline is dropped, as `echo` and `tee` add it.
fn admin_hash_token() -> anyhow::Result<()> {
    let mut token = String::new();
    std::io::Read::read_to_string(&mut std::io::stdin(), &mut token)
        .context("reading the token from standard input")?;
    let token = token
        .strip_suffix('\n')
        .map(|t| t.strip_suffix('\r').unwrap_or(t))
        .unwrap_or(&token);
    if token.len() < 16 {
        anyhow::bail!(
            "the token on standard input is {} bytes; use at least 16 random bytes (e.g. `head -c 24 /dev/urandom | base64`)",
            token.len()
        );
    }
    let hash = ivr::http::auth::hash_token(token)
        .map_err(|e| anyhow::anyhow!("hashing the token: {e}"))?;
    println!("{hash}");
    Ok(())
}

fn parse_admin_listen(s: &str) -> Result<String, String> {
    if s.is_empty() {
        return Ok(String::new());
    }
    parse_listen(s).map(|a| a.to_string())
}

/// The config `ivr check`, `simulate` and `graph` work with, resolved as `ivr serve` resolves
/// it, with `--prompts` over prompts.dir; an unreadable prompt directory is an error that says
/// where the directory was named.
fn flow_config(
    config: Option<&std::path::Path>,
    prompts: Option<PathBuf>,
) -> anyhow::Result<Config> {
    let mut cfg = Config::load(config)?;
    if let Some(p) = prompts {
        cfg.prompts.dir = cfg.flag_path("prompts.dir", "--prompts", &p);
    }
    if let Err(e) = std::fs::read_dir(&cfg.prompts.dir) {
        anyhow::bail!(
            "cannot read the prompt directory {}: {e} ({})",
            cfg.prompts.dir.display(),
            cfg.path_origin("prompts.dir")
        );
    }
    Ok(cfg)
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

/// Checks `flows`, or with none the flows `cfg` names (each error then says which key named it).
fn flow_check(flows: &[PathBuf], cfg: &Config) -> anyhow::Result<()> {
    let flows: Vec<(PathBuf, Option<String>)> = if flows.is_empty() {
        std::iter::once((cfg.flows.default.clone(), "flows.default".to_string()))
            .chain(
                cfg.flows
                    .numbers
                    .iter()
                    .map(|(number, path)| (path.clone(), ivr::config::flow_number_key(number))),
            )
            .map(|(path, key)| (path, Some(cfg.path_origin(&key))))
            .collect()
    } else {
        flows.iter().map(|f| (f.clone(), None)).collect()
    };
    let mut errors = 0;
    for (path, origin) in &flows {
        match ivr::flow::check(path, &cfg.prompts.dir) {
            Ok(flow) => flow.warnings.iter().for_each(|w| eprintln!("{w}")),
            Err(diags) => {
                eprintln!("{diags}");
                if let Some(origin) = origin {
                    eprintln!("  note: this flow is {origin}");
                }
                errors += diags.error_count();
            }
        }
    }
    let prompts = ivr::flow::check::list_prompts(&cfg.prompts.dir).unwrap_or_default();
    for missing in cfg
        .incidents
        .missing_prompts(|p| prompts.contains(p), &cfg.prompts.dir)
    {
        eprintln!("error: {missing}");
        errors += 1;
    }
    if errors > 0 {
        anyhow::bail!("{errors} error(s) in {} flow(s)", flows.len());
    }
    // Not an error: the line answers calls without it, but the admin should know.
    match ivr::transcribe::engine(&cfg.transcription) {
        Ok(engine) => println!(
            "transcription: {} (voicemails are transcribed)",
            engine.name()
        ),
        Err(why) => println!("transcription: {why}"),
    }
    println!("ok: {} flows checked", flows.len());
    Ok(())
}

/// Simulates a call at `at` from a caller described by `caller_facts` (`open` and `holiday` are
/// decided here from [hours]).
fn flow_simulate(
    path: &std::path::Path,
    at: Option<jiff::Timestamp>,
    caller_facts: ivr::flow::Facts,
    cfg: &Config,
    recording: ivr::flow::simulate::Recording,
) -> anyhow::Result<()> {
    let dir = cfg.prompts.dir.clone();
    let flow = std::sync::Arc::new(load_flow(path, &dir)?);
    let hours = ivr::hours::BusinessHours::from_config(&cfg.hours)
        .map_err(|e| anyhow::anyhow!("[hours] {} = {:?}: {}", e.key, e.value, e.reason))?;
    let at = at.unwrap_or_else(jiff::Timestamp::now);
    let facts = ivr::flow::Facts {
        open: hours.is_open(at),
        holiday: hours.is_holiday(at),
        ..caller_facts
    };
    println!("time: {at} ({})", hours.describe(at));
    // Missing or unreadable WAVs (not possible after check, barring races) count as 3 s.
    let length = |name: &str| {
        ivr::flow::simulate::wav_duration(&dir, name).unwrap_or(std::time::Duration::from_secs(3))
    };
    // Under each dial: whom it rings, `oncall` resolved at the simulated moment of the dial,
    // with the mobile a call would ring as serve would (an external trunk, the allow-list).
    let groups = cfg.desk_groups()?;
    let mobile = |user: &str| -> Option<String> {
        if cfg.desk.external_trunk.is_empty() {
            return None;
        }
        let m = cfg
            .staff
            .users
            .iter()
            .find(|u| u.name == user)?
            .mobile
            .clone()?;
        ivr::bridge::number_allowed(&m, &cfg.desk.number_allow).then_some(m)
    };
    let desk = |targets: &[String], elapsed: std::time::Duration| {
        let when = jiff::SignedDuration::try_from(elapsed)
            .ok()
            .and_then(|d| at.checked_add(d).ok())
            .unwrap_or(at);
        groups.describe_dial(targets, when, &mobile)
    };
    let stdin = std::io::stdin();
    ivr::flow::simulate_with_desk(
        flow,
        facts,
        recording,
        Some(&desk),
        stdin.lock(),
        std::io::stdout(),
        &length,
    )?;
    Ok(())
}

/// `ivr oncall`'s text; the rota was checked when the config loaded.
fn oncall_report(cfg: &Config, at: jiff::Timestamp, next: usize) -> String {
    let rota = cfg.rota().unwrap_or_default();
    let mobile = |user: &str| {
        cfg.staff
            .users
            .iter()
            .find(|u| u.name == user)
            .and_then(|u| u.mobile.as_deref())
            .map_or_else(String::new, |m| format!(" <{m}>"))
    };
    ivr::oncall::report(&rota, at, next, &mobile)
}

fn parse_time(s: &str) -> Result<jiff::Timestamp, String> {
    s.parse::<jiff::Timestamp>()
        .map_err(|e| format!("{e}; expected RFC 3339 like 2026-11-27T22:30:00-05:00"))
}

fn parse_span(s: &str) -> Result<std::time::Duration, String> {
    ivr::flow::duration::parse_duration(s).map_err(|e| format!("{e}; e.g. 30m, 2h, 1h30m"))
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

/// Everything ivr creates (the database and its WAL, voicemail WAVs, their directories, CDR
/// exports) holds customers' numbers and voices: owner only, 0600 and 0700. A umask rather than
/// explicit modes, because SQLite creates its own -wal and -shm files; set first thing, while
/// the process has one thread. Directories that already exist keep the modes they have.
fn private_files() {
    // SAFETY: umask only swaps the process's file-creation mask; it cannot fail.
    unsafe {
        libc::umask(0o077);
    }
}

/// The signals `ivr serve` listens to.
struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> std::io::Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
            hup: signal(SignalKind::hangup())?,
        })
    }
}

/// SIGINT and SIGTERM both ask for a graceful shutdown; a second one forces it. SIGHUP (also
/// what a dropped SSH session sends, and what `ivr reload` sends) never stops the line: it asks
/// for a reload, which keeps the running set if the new one fails its checks.
async fn forward_signals(
    mut s: Signals,
    tx: tokio::sync::mpsc::Sender<()>,
    reload: tokio::sync::mpsc::Sender<()>,
) {
    loop {
        tokio::select! {
            _ = s.int.recv() => {}
            _ = s.term.recv() => {}
            _ = s.hup.recv() => {
                tracing::info!(event = "sighup", "SIGHUP received: reloading config, flows and prompts (calls go on)");
                // A full queue already holds a reload that will read the newest files.
                let _ = reload.try_send(());
                continue;
            }
        }
        if tx.send(()).await.is_err() {
            return;
        }
    }
}
