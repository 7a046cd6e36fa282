//! The long-run fuzzer (`fuzz/run.sh` builds and runs it): every target, or the named ones, for a
//! time each, from the committed corpus in `fuzz/corpus/`; crashing inputs go to
//! `fuzz/artifacts/<target>/`. An example rather than a binary so it is never installed.
//!
//! ```text
//! fuzz [--minutes M | --seconds S | --cases N] [--seed N] [--slow-ms N] [TARGET...]
//! fuzz --input FILE TARGET      run one input (e.g. an artifact) with the panic shown in full
//! ```

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ivr::fuzz::engine::{self, Budget, Config};
use ivr::fuzz::{TARGETS, Target, target};

/// An input slower than this in an optimised build is reported (the slowest seeds take ~10 ms);
/// `--slow-ms` changes it.
const SLOW: Duration = Duration::from_secs(2);

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!(
                "fuzz: {e}\nusage: fuzz [--minutes M | --seconds S | --cases N] [--seed N] [--slow-ms N] [TARGET...]\n       fuzz --input FILE TARGET\ntargets: {}",
                names()
            );
            ExitCode::from(2)
        }
    }
}

fn names() -> String {
    TARGETS.iter().map(|t| t.name).collect::<Vec<_>>().join(" ")
}

fn run(args: &[String]) -> Result<ExitCode, String> {
    let mut budget = Budget::Time(Duration::from_secs(60));
    let mut seed = None;
    let mut slow = SLOW;
    let mut input: Option<PathBuf> = None;
    let mut targets: Vec<&'static Target> = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |what: &str| {
            it.next()
                .ok_or_else(|| format!("{a} needs {what}"))
                .cloned()
        };
        let number = |s: String| {
            s.parse::<u64>()
                .map_err(|_| format!("{a}: {s:?} is not a whole number"))
        };
        match a.as_str() {
            "--minutes" => {
                budget = Budget::Time(Duration::from_secs(60 * number(value("a number")?)?))
            }
            "--seconds" => budget = Budget::Time(Duration::from_secs(number(value("a number")?)?)),
            "--cases" => budget = Budget::Cases(number(value("a number")?)?),
            "--seed" => seed = Some(number(value("a number")?)?),
            "--slow-ms" => slow = Duration::from_millis(number(value("a number")?)?),
            "--input" => input = Some(PathBuf::from(value("a file")?)),
            name => targets.push(target(name).ok_or_else(|| format!("no target {name:?}"))?),
        }
    }
    if let Some(path) = input {
        let [t] = targets[..] else {
            return Err("--input needs exactly one target".to_string());
        };
        let data = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        // Not caught: the default hook prints the panic, RUST_BACKTRACE=1 the stack.
        let signature = (t.run)(&data);
        println!(
            "{}: {} bytes, no panic (signature {signature:016x})",
            t.name,
            data.len()
        );
        return Ok(ExitCode::SUCCESS);
    }
    if targets.is_empty() {
        targets = TARGETS.iter().collect();
    }
    // A new seed per run explores new ground; it is printed so a run can be repeated.
    let seed = seed.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| d.as_secs())
    });
    let fuzz_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    println!("seed {seed}, budget {budget:?} per target");
    let mut total = 0;
    for t in targets {
        let mut config = Config::in_dir(&fuzz_dir, t, seed, budget);
        config.slow = Some(slow);
        let report =
            engine::run(t, &config).map_err(|e| format!("{}: {e}", config.corpus.display()))?;
        println!("{report}");
        for f in &report.findings {
            let first = f.message.lines().next().unwrap_or("");
            let at = f.message.lines().last().unwrap_or("");
            println!(
                "    {} case(s) from case {}: {first} {at}\n    input: {}",
                f.count,
                f.case,
                f.artifact
                    .as_ref()
                    .map_or("(not saved)".to_string(), |p| p.display().to_string())
            );
        }
        total += report.findings.len();
    }
    Ok(if total == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
