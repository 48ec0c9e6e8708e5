//! Interleaved wall-time comparison, for goals stated as a ratio.
//!
//! Criterion measures one contender after the other; on a shared machine the
//! load changes between them by more than a few percent. Here the contenders
//! take turns: each round times `calls` calls of every contender, one after
//! the other, and the ratio of each to the baseline is taken within the
//! round. The median of those per-round ratios (with its quartiles) moves far
//! less with the load than a ratio of two separate runs.
//!
//! Set `BENCH_INTERLEAVED=<rounds>:<calls>` (e.g. `50:200`) on a bench that
//! includes this module.

use std::future::Future;
use std::pin::Pin;
use std::time::Instant;

/// A turn of one contender: `calls` calls, awaited one after the other.
pub type Turn<'a> = Pin<Box<dyn Future<Output = ()> + 'a>>;

/// The bench's `main`: `fixed_calls` with `BENCH_CALLS=<contender>:<n>` (for
/// counting instructions), `interleaved` with `BENCH_INTERLEAVED`, criterion
/// otherwise.
pub fn main(fixed_calls: fn(&str), interleaved: fn(usize, usize), criterion: fn()) {
    if let Ok(spec) = std::env::var("BENCH_CALLS") {
        return fixed_calls(&spec);
    }
    if let Some((rounds, calls)) = requested() {
        return interleaved(rounds, calls);
    }
    criterion();
    criterion::Criterion::default()
        .configure_from_args()
        .final_summary();
}

/// Reads `BENCH_INTERLEAVED=<rounds>:<calls>`.
fn requested() -> Option<(usize, usize)> {
    let spec = std::env::var("BENCH_INTERLEAVED").ok()?;
    let (rounds, calls) = spec
        .split_once(':')
        .expect("BENCH_INTERLEAVED=<rounds>:<calls>");
    Some((
        rounds.parse().expect("a number of rounds"),
        calls.parse().expect("a number of calls"),
    ))
}

/// Runs `rounds` rounds of every contender in turn (the first round is a
/// warm-up, not counted; each round starts one contender further on, so that
/// none always follows the same one) and prints the median time per call of
/// each and, for each `(baseline, contender)` pair, the median and quartiles
/// of the per-round ratios: of the wall time, and of the CPU time of the
/// calling thread (what a call costs the caller, whatever runs elsewhere).
pub fn compare<'a>(
    runtime: &tokio::runtime::Runtime,
    names: &[&'a str],
    pairs: &[(&str, &str)],
    rounds: usize,
    calls: usize,
    turn: impl Fn(&'a str, usize) -> Turn<'a>,
) {
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); names.len()];
    let mut thread: Vec<Vec<f64>> = vec![Vec::new(); names.len()];
    let mut user: Vec<Vec<f64>> = vec![Vec::new(); names.len()];
    let mut system: Vec<Vec<f64>> = vec![Vec::new(); names.len()];
    for round in 0..=rounds {
        for k in 0..names.len() {
            let i = (round + k) % names.len();
            let (user_before, system_before) = cpu_times();
            let thread_before = thread_cpu_time();
            let started = Instant::now();
            runtime.block_on(turn(names[i], calls));
            let per_call = started.elapsed().as_nanos() as f64 / calls as f64;
            let thread_after = thread_cpu_time();
            let (user_after, system_after) = cpu_times();
            if round > 0 {
                times[i].push(per_call);
                thread[i].push((thread_after - thread_before) / calls as f64);
                user[i].push((user_after - user_before) / calls as f64);
                system[i].push((system_after - system_before) / calls as f64);
            }
        }
    }
    let index = |name: &str| names.iter().position(|n| *n == name).expect("a contender");
    println!("interleaved: {rounds} rounds of {calls} calls per contender");
    for (i, name) in names.iter().enumerate() {
        let median = |v: &[f64]| quartiles(v.to_vec()).1 / 1000.0;
        println!(
            "  {name:24} {:>9.2} µs per call (median; CPU: {:.2} µs on the calling thread; \
             process {:.2} µs user, {:.2} µs system)",
            median(&times[i]),
            median(&thread[i]),
            median(&user[i]),
            median(&system[i]),
        );
    }
    let ratios = |of: &[Vec<f64>], b: usize, c: usize| {
        quartiles(of[c].iter().zip(&of[b]).map(|(c, b)| c / b).collect())
    };
    for (baseline, contender) in pairs {
        let (b, c) = (index(baseline), index(contender));
        let (low, median, high) = ratios(&times, b, c);
        let (t_low, t_median, t_high) = ratios(&thread, b, c);
        println!(
            "  {contender} / {baseline}: {median:.3}x (quartiles {low:.3}–{high:.3}); \
             calling thread's CPU {t_median:.3}x ({t_low:.3}–{t_high:.3})"
        );
    }
    println!("CPU time of the process, summed over the rounds:");
    for (baseline, contender) in pairs {
        let (b, c) = (index(baseline), index(contender));
        let sum = |v: &[f64]| v.iter().sum::<f64>();
        let off_cpu = |i: usize| sum(&times[i]) - sum(&user[i]) - sum(&system[i]);
        println!(
            "  {contender} / {baseline}: user {:.3}x, system {:.3}x, both {:.3}x; off the CPU {:.2} against {:.2} µs per call",
            sum(&user[c]) / sum(&user[b]),
            sum(&system[c]) / sum(&system[b]),
            (sum(&user[c]) + sum(&system[c])) / (sum(&user[b]) + sum(&system[b])),
            off_cpu(c) / times[c].len() as f64 / 1000.0,
            off_cpu(b) / times[b].len() as f64 / 1000.0,
        );
    }
}

/// The process's user and system CPU time so far, in nanoseconds
/// (`getrusage`; microsecond resolution).
fn cpu_times() -> (f64, f64) {
    // SAFETY: `getrusage` only writes the struct it is given.
    let usage = unsafe {
        let mut usage = std::mem::zeroed::<libc::rusage>();
        assert_eq!(libc::getrusage(libc::RUSAGE_SELF, &mut usage), 0);
        usage
    };
    let nanos = |t: libc::timeval| t.tv_sec as f64 * 1e9 + t.tv_usec as f64 * 1e3;
    (nanos(usage.ru_utime), nanos(usage.ru_stime))
}

/// The calling thread's CPU time so far (user and system), in nanoseconds.
fn thread_cpu_time() -> f64 {
    // SAFETY: `clock_gettime` only writes the struct it is given.
    let time = unsafe {
        let mut time = std::mem::zeroed::<libc::timespec>();
        assert_eq!(
            libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut time),
            0
        );
        time
    };
    time.tv_sec as f64 * 1e9 + time.tv_nsec as f64
}

/// The first quartile, median and third quartile.
fn quartiles(mut values: Vec<f64>) -> (f64, f64, f64) {
    values.sort_by(f64::total_cmp);
    let at = |q: f64| values[((values.len() - 1) as f64 * q).round() as usize];
    (at(0.25), at(0.5), at(0.75))
}
