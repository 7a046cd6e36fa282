//! The fuzzing loop: run the corpus, then mutants of it, catch panics, keep inputs that showed new
//! behaviour as parents, save what crashed.

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Once;
use std::time::{Duration, Instant};

use super::Target;
use super::mutate::Mutator;

/// Parents kept at most besides the corpus; when full, a new one replaces a random old one.
const MAX_POOL: usize = 4096;

/// How long a run goes on.
#[derive(Clone, Copy, Debug)]
pub enum Budget {
    /// This many executions (the corpus included).
    Cases(u64),
    /// Until this much time has passed (at least the corpus runs).
    Time(Duration),
}

/// One run of one target.
#[derive(Clone, Debug)]
pub struct Config {
    /// Every mutation derives from it: the same seed and corpus give the same run.
    pub seed: u64,
    pub budget: Budget,
    /// The starting inputs, one per file.
    pub corpus: PathBuf,
    /// Where crashing inputs are written (created when needed).
    pub artifacts: PathBuf,
    /// An input taking longer than this is reported as a finding (a hang in the making).
    pub slow: Option<Duration>,
}

impl Config {
    /// The conventional layout under `fuzz/`: `corpus/<target>/` and `artifacts/<target>/`.
    pub fn in_dir(fuzz_dir: &Path, target: &Target, seed: u64, budget: Budget) -> Config {
        Config {
            seed,
            budget,
            corpus: fuzz_dir.join("corpus").join(target.name),
            artifacts: fuzz_dir.join("artifacts").join(target.name),
            slow: None,
        }
    }
}

/// A distinct problem: a panic at one source location, or a slow input.
#[derive(Clone, Debug)]
pub struct Finding {
    /// The panic message and location (or how slow the input was).
    pub message: String,
    /// The first case that showed it, and how many cases did.
    pub case: u64,
    pub count: u64,
    pub input: Vec<u8>,
    /// Where the input was saved, if it could be.
    pub artifact: Option<PathBuf>,
}

/// What a run did.
#[derive(Clone, Debug)]
pub struct Report {
    pub target: &'static str,
    pub seed: u64,
    pub executions: u64,
    pub elapsed: Duration,
    /// Corpus entries, and parents found by the run (inputs with a new signature).
    pub corpus: usize,
    pub discovered: usize,
    pub slowest: Duration,
    pub findings: Vec<Finding>,
}

impl Report {
    pub fn execs_per_sec(&self) -> f64 {
        self.executions as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:<12} {:>10} execs {:>9.0}/s  {:>6.1}s  corpus {} +{} new  slowest {:.1}ms  findings {}",
            self.target,
            self.executions,
            self.execs_per_sec(),
            self.elapsed.as_secs_f64(),
            self.corpus,
            self.discovered,
            self.slowest.as_secs_f64() * 1000.0,
            self.findings.len()
        )
    }
}

/// Every file in `dir`, by name (so the order, and with it the run, is the same everywhere).
pub fn load_corpus(dir: &Path) -> io::Result<Vec<Vec<u8>>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    paths.sort();
    paths.iter().map(std::fs::read).collect()
}

/// Runs `target` on one input, catching a panic: `Err` holds its message and location.
pub fn run_one(target: &Target, input: &[u8]) -> Result<u64, String> {
    install_panic_hook();
    CATCHING.with(|c| c.set(true));
    let result = panic::catch_unwind(AssertUnwindSafe(|| (target.run)(input)));
    CATCHING.with(|c| c.set(false));
    result.map_err(|_| {
        LAST_PANIC
            .with(|l| l.borrow_mut().take())
            .unwrap_or_else(|| "panic without a message".to_string())
    })
}

/// Fuzzes `target` as `config` says. An unreadable corpus directory is an error; an empty one
/// starts from a single empty input.
pub fn run(target: &Target, config: &Config) -> io::Result<Report> {
    let mut pool = load_corpus(&config.corpus)?;
    if pool.is_empty() {
        pool.push(Vec::new());
    }
    let corpus = pool.len();
    let started = Instant::now();
    let mut seen: HashSet<u64> = HashSet::new();
    let mut findings: Vec<Finding> = Vec::new();
    let mut slowest = Duration::ZERO;
    let mut case: u64 = 0;
    loop {
        let done = match config.budget {
            Budget::Cases(n) => case >= n,
            Budget::Time(d) => case >= corpus as u64 && started.elapsed() >= d,
        };
        if done {
            break;
        }
        let input = if case < corpus as u64 {
            pool[case as usize].clone()
        } else {
            let mut m = Mutator::new(
                case_seed(config.seed, case),
                target.shape,
                target.max_len,
                &pool,
            );
            let parent = m.below(pool.len());
            m.mutate(&pool[parent])
        };
        let t = Instant::now();
        let outcome = run_one(target, &input);
        let took = t.elapsed();
        slowest = slowest.max(took);
        match outcome {
            Ok(signature) => {
                if seen.insert(signature) && case >= corpus as u64 {
                    if pool.len() < corpus + MAX_POOL {
                        pool.push(input.clone());
                    } else {
                        let slot =
                            corpus + (case_seed(config.seed ^ 0x5eed, case) as usize % MAX_POOL);
                        pool[slot] = input.clone();
                    }
                }
                if let Some(limit) = config.slow
                    && took > limit
                {
                    let message = format!("slow input: {:.0} ms", took.as_secs_f64() * 1000.0);
                    record(&mut findings, config, target, case, "slow", message, &input);
                }
            }
            Err(message) => {
                let key = message.lines().last().unwrap_or("").to_string();
                record(&mut findings, config, target, case, &key, message, &input);
            }
        }
        case += 1;
    }
    Ok(Report {
        target: target.name,
        seed: config.seed,
        executions: case,
        elapsed: started.elapsed(),
        corpus,
        discovered: pool.len() - corpus,
        slowest,
        findings,
    })
}

/// Adds a case to the finding with the same `key` (panic location), or saves a new one.
fn record(
    findings: &mut Vec<Finding>,
    config: &Config,
    target: &Target,
    case: u64,
    key: &str,
    message: String,
    input: &[u8],
) {
    if let Some(f) = findings.iter_mut().find(|f| {
        f.message.lines().last() == Some(key) || (key == "slow" && f.message.starts_with("slow"))
    }) {
        f.count += 1;
        return;
    }
    let artifact = save_artifact(&config.artifacts, input);
    eprintln!(
        "fuzz {}: finding at seed {} case {case}: {}\n  input saved to {}",
        target.name,
        config.seed,
        short(&message),
        artifact
            .as_ref()
            .map_or("(not saved)".to_string(), |p| p.display().to_string())
    );
    findings.push(Finding {
        message,
        case,
        count: 1,
        input: input.to_vec(),
        artifact,
    });
}

/// A message cut to a screenful (an assertion may print a whole 64 KiB message), keeping the
/// location on its last line.
fn short(message: &str) -> String {
    const MAX: usize = 800;
    if message.len() <= MAX {
        return message.to_string();
    }
    let cut = (0..=MAX)
        .rev()
        .find(|i| message.is_char_boundary(*i))
        .unwrap_or(0);
    let at = message.lines().last().unwrap_or("");
    format!("{} [...]\n{at}", &message[..cut])
}

fn save_artifact(dir: &Path, input: &[u8]) -> Option<PathBuf> {
    let mut h = DefaultHasher::new();
    input.hash(&mut h);
    let path = dir.join(format!("crash-{:016x}", h.finish()));
    std::fs::create_dir_all(dir).ok()?;
    std::fs::write(&path, input).ok()?;
    Some(path)
}

/// The mutation seed of one case: splitmix64 of the run seed and the case number, so nearby
/// cases get unrelated streams.
fn case_seed(seed: u64, case: u64) -> u64 {
    let mut z = seed ^ case.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

thread_local! {
    /// Set while this thread runs a target: its panics are findings, recorded quietly.
    static CATCHING: Cell<bool> = const { Cell::new(false) };
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Records the message and location of panics on fuzzing threads instead of printing them (a
/// run may hit the same one thousands of times); other threads keep the usual hook.
fn install_panic_hook() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if !CATCHING.with(Cell::get) {
                previous(info);
                return;
            }
            let payload = info
                .payload()
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_default();
            let location = info.location().map_or(String::new(), |l| {
                format!("{}:{}:{}", l.file(), l.line(), l.column())
            });
            LAST_PANIC.with(|l| *l.borrow_mut() = Some(format!("{payload}\nat {location}")));
        }));
    });
}
