//! What keeping voicemail audio in PostgreSQL costs (issue 16, `src/store/audio.rs`): storing a
//! 60 s voicemail (8 kHz 16-bit mono, 960,044 bytes, the WAV already on disk as the recorder
//! leaves it) and reading its audio back, with the PostgreSQL store (the bytes go into the
//! database with the row) beside the SQLite store (the row only; the audio stays the file).
//!
//! Run: `IVR_BENCH_PG_URL=postgres://USER@HOST:PORT/DB cargo bench --bench voicemail_audio`.
//! The database must be a durable server (fsync on) as in production, not the tests'
//! throw-away cluster (fsync off); it gets the store's tables and one voicemail (1 MB) per
//! iteration. Without the URL only SQLite runs. SQLite's directory is in the temp directory:
//! put PostgreSQL's data on the same disk for a fair comparison.

use std::path::{Path, PathBuf};

use criterion::{Criterion, criterion_group, criterion_main};
use ivr::store::{NewVoicemail, PgStore, SqliteStore, VoicemailStore};

/// A 60 s recording: a voice-like mix (tone plus noise, so it compresses no better than speech).
fn write_wav(path: &Path) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).expect("create wav");
    let mut noise: u32 = 1;
    for n in 0..60 * 8000 {
        noise = noise.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        let tone = (f64::from(n) * 220.0 * std::f64::consts::TAU / 8000.0).sin() * 4000.0;
        let hiss = f64::from((noise >> 16) as u16 as i16) / 16.0;
        w.write_sample((tone + hiss) as i16).expect("sample");
    }
    w.finalize().expect("finish wav");
}

fn voicemail(path: &Path, n: u64) -> NewVoicemail {
    NewVoicemail {
        call_id: format!("bench-{n}"),
        caller: "+15551230001".into(),
        client: None,
        ticket: None,
        path: path.to_path_buf(),
        duration_ms: 60_000,
        created_at: jiff::Timestamp::now(),
    }
}

/// One store's pair of measurements: registering a voicemail, and reading one's audio back.
fn measure(c: &mut Criterion, name: &str, store: &dyn VoicemailStore, wav: &Path) {
    let mut group = c.benchmark_group(name);
    group.sample_size(10);
    let mut n = 0;
    group.bench_function("register 60 s voicemail", |b| {
        b.iter(|| {
            n += 1;
            let due = jiff::Timestamp::now();
            store
                .register_voicemail(&voicemail(wav, n), due, &[])
                .expect("register")
        })
    });
    // The baseline in the same run: the same row, timer and transaction with no file to
    // store (the PostgreSQL store then keeps no audio; SQLite never reads the file).
    let none = wav.with_file_name("never-recorded.wav");
    group.bench_function("register, no audio (baseline)", |b| {
        b.iter(|| {
            n += 1;
            let due = jiff::Timestamp::now();
            store
                .register_voicemail(&voicemail(&none, n), due, &[])
                .expect("register")
        })
    });
    let id = store
        .register_voicemail(&voicemail(wav, 0), jiff::Timestamp::now(), &[])
        .expect("register");
    let size = std::fs::metadata(wav).expect("wav").len() as usize;
    group.bench_function("read its audio back", |b| {
        b.iter(|| {
            let audio = store.voicemail_audio(id).expect("read").expect("audio");
            assert_eq!(audio.len(), size);
            audio
        })
    });
    group.finish();
}

fn bench(c: &mut Criterion) {
    let dir: PathBuf = std::env::temp_dir().join(format!("ivr-bench-audio-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("bench dir");
    let wav = dir.join("voicemail.wav");
    write_wav(&wav);

    let sqlite = SqliteStore::open(&dir.join("data")).expect("open SQLite");
    measure(c, "sqlite", &sqlite, &wav);
    drop(sqlite);

    match std::env::var("IVR_BENCH_PG_URL") {
        Ok(url) => {
            let pg = PgStore::connect(&url).expect("connect to IVR_BENCH_PG_URL");
            measure(c, "postgres", &pg, &wav);
        }
        Err(_) => eprintln!("postgres: skipped (set IVR_BENCH_PG_URL to a durable PostgreSQL)"),
    }
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, bench);
criterion_main!(benches);
