//! The media clock: pacing threads, the thin shell around `pacer::Schedule` that sends every
//! live stream's packets when their 20 ms slots come up.
//!
//! Why threads of their own rather than a tokio timer per call: a timer and a task wake-up per
//! packet cost more than the packet itself at thousands of calls, and a tokio task due to send
//! waits behind whatever else its worker runs (SIP, call flows, logging), which shows as jitter at
//! the far end. Here one thread per core wakes once per `QUANTUM`, sends the packets of every
//! stream due in it in a tight loop (each from its call's own socket, as symmetric RTP needs),
//! and sleeps in the kernel until the next one; the OS wakes it on time however busy the runtime
//! is. Streams are dealt round-robin over the threads when they start.
//!
//! The threads are started on first use and live as long as the process; they never block on
//! anything but their queue of new streams, and send with `try_send_to` (a full socket buffer
//! drops that packet, it does not stall the others).

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use super::pacer::{Due, Pacer, Schedule};

/// Packetisation time: RFC 3551's default for G.711, and what every SIP endpoint expects.
pub const PTIME: Duration = Duration::from_millis(20);

/// Wake-up grid of a pacing thread (see `Schedule`): a fixed sub-millisecond delay per stream,
/// in exchange for one wake-up per millisecond however many streams there are. Divides `PTIME`.
pub const QUANTUM: Duration = Duration::from_millis(1);

/// Largest datagram a stream writes: an RTP header and a 160-byte G.711 frame, with room to spare.
const PACKET_CAPACITY: usize = 512;

/// Falling behind is logged at most this often per thread (each line sums up the interval).
const LAG_REPORT_EVERY: Duration = Duration::from_secs(1);

/// A stream served by a pacing thread.
pub trait Paced: Send + Sync {
    /// `due.send` packet slots are due (after `due.skipped` that passed unserved): write and send
    /// their packets, using `buf` as scratch. `false` once the stream has ended; it is dropped.
    fn serve(&self, due: Due, buf: &mut Vec<u8>) -> bool;
}

struct NewStream {
    stream: Arc<dyn Paced>,
    start: Instant,
}

struct Lanes {
    senders: Mutex<Vec<Option<Sender<NewStream>>>>,
    next: AtomicUsize,
}

static LANES: OnceLock<Lanes> = OnceLock::new();

/// Hands a stream to a pacing thread: its packet n is due at `start + n * PTIME`.
pub fn register(stream: Arc<dyn Paced>, start: Instant) {
    let lanes = LANES.get_or_init(|| {
        let n = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
        Lanes {
            senders: Mutex::new((0..n).map(|_| None).collect()),
            next: AtomicUsize::new(0),
        }
    });
    let mut senders = lanes.senders.lock().unwrap_or_else(PoisonError::into_inner);
    let lane = lanes.next.fetch_add(1, Ordering::Relaxed) % senders.len().max(1);
    let Some(slot) = senders.get_mut(lane) else {
        return;
    };
    let mut new = NewStream { stream, start };
    // Twice at most: a thread found gone (it can only have panicked) is replaced once.
    for _ in 0..2 {
        if slot.is_none() {
            *slot = spawn(lane);
        }
        let Some(tx) = slot.as_ref() else {
            break;
        };
        match tx.send(new) {
            Ok(()) => return,
            Err(mpsc::SendError(back)) => {
                tracing::error!(lane, "media pacing thread gone; starting another");
                new = back;
                *slot = None;
            }
        }
    }
    tracing::error!(lane, "no media pacing thread: this call sends no RTP");
}

fn spawn(lane: usize) -> Option<Sender<NewStream>> {
    let (tx, rx) = mpsc::channel();
    match std::thread::Builder::new()
        .name(format!("ivr-media-{lane}"))
        .spawn(move || run(&rx, lane))
    {
        Ok(_) => Some(tx),
        Err(e) => {
            tracing::error!(lane, error = %e, "cannot start a media pacing thread");
            None
        }
    }
}

/// One pacing thread: sleep until the next grid point with a stream due (or a new stream), send
/// what is due, repeat. Runs until the process ends.
fn run(new_streams: &Receiver<NewStream>, lane: usize) {
    let mut schedule: Schedule<Arc<dyn Paced>> = Schedule::new(Instant::now(), QUANTUM);
    let mut buf = Vec::with_capacity(PACKET_CAPACITY);
    let mut lag = Lag::new(Instant::now());
    loop {
        let next = match schedule.next_wake() {
            None => new_streams
                .recv()
                .map_err(|_| RecvTimeoutError::Disconnected),
            Some(at) => match at.checked_duration_since(Instant::now()) {
                Some(wait) if !wait.is_zero() => new_streams.recv_timeout(wait),
                _ => Err(RecvTimeoutError::Timeout),
            },
        };
        match next {
            Ok(new) => schedule.insert(Pacer::new(new.start, PTIME), new.stream),
            Err(RecvTimeoutError::Timeout) => {}
            // The sender lives in a static, so this only happens at process exit.
            Err(RecvTimeoutError::Disconnected) => return,
        }
        while let Ok(new) = new_streams.try_recv() {
            schedule.insert(Pacer::new(new.start, PTIME), new.stream);
        }
        let now = Instant::now();
        schedule.run_due(now, |stream, due| {
            lag.note(due);
            stream.serve(due, &mut buf)
        });
        lag.report(now, lane, schedule.len());
    }
}

/// Slots skipped because the thread fell behind (a stalled machine, too many streams), summed
/// up in one log line a second instead of one per stream and wake-up: a line per stream would
/// itself make the thread fall further behind.
struct Lag {
    since: Instant,
    streams: u64,
    slots: u64,
}

impl Lag {
    fn new(now: Instant) -> Self {
        Self {
            since: now,
            streams: 0,
            slots: 0,
        }
    }

    fn note(&mut self, due: Due) {
        if due.skipped > 0 {
            self.streams += 1;
            self.slots += u64::from(due.skipped);
        }
    }

    fn report(&mut self, now: Instant, lane: usize, live: usize) {
        if self.slots == 0 || now.duration_since(self.since) < LAG_REPORT_EVERY {
            return;
        }
        tracing::warn!(
            lane,
            live,
            streams = self.streams,
            skipped = self.slots,
            "media pacing fell behind; skipped packet slots"
        );
        *self = Lag::new(now);
    }
}
