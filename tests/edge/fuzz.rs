//! Every fuzz target for a fixed number of cases from the committed corpus (`fuzz/corpus/`), with
//! a fixed seed, so `cargo test` repeats the same run each time and fails on any panic. The long
//! runs are `fuzz/run.sh`; a crashing input is saved to `fuzz/artifacts/<target>/` either way.

use std::path::Path;

use ivr::fuzz::engine::{self, Budget, Config};
use ivr::fuzz::target;

const SEED: u64 = 0x1F5;

fn fuzz(name: &str, cases: u64) {
    let t = target(name).expect("known target");
    let fuzz_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let config = Config::in_dir(&fuzz_dir, t, SEED, Budget::Cases(cases));
    let report = engine::run(t, &config).expect("corpus readable");
    println!("{report}");
    assert!(report.corpus > 1, "{name}: the corpus is missing");
    let summary: Vec<String> = report
        .findings
        .iter()
        .map(|f| format!("{}\n  input: {:?}", f.message, f.artifact))
        .collect();
    assert!(summary.is_empty(), "{name}: {}", summary.join("\n"));
}

// Case counts keep each target to a few seconds in a debug build on a loaded machine.

#[test]
fn sip_message() {
    fuzz("sip_message", 3_000);
}

#[test]
fn sip_session() {
    fuzz("sip_session", 1_500);
}

#[test]
fn sdp() {
    fuzz("sdp", 10_000);
}

#[test]
fn rtp() {
    fuzz("rtp", 10_000);
}

#[test]
fn rfc4733() {
    fuzz("rfc4733", 1_500);
}

#[test]
fn digest() {
    fuzz("digest", 5_000);
}
