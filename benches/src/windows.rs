//! Clean timed windows on a shared machine, measured the way the PyTorch twin
//! (`benches/anchors/torch_reference.py`) measures itself.
//!
//! Before timing, wait until the whole machine has been under 10 % busy for 3 consecutive
//! seconds ([`wait_quiet`]). Then warm up, calibrate the steps of a window of about
//! `window_s` seconds, and time windows. During each window the machine's busy time (from
//! `/proc/stat`) less this process's own CPU time is the CPU that *other* processes used; a
//! window where that exceeds 10 % of one core is not clean and is left out. Windows are timed
//! until `windows` clean ones or `max_s` seconds; the figure is the median of the clean ones.

use std::time::{Duration, Instant};

/// Foreign CPU (in cores) above which a window is dropped, as in the twin.
pub const FOREIGN_MAX: f64 = 0.10;

/// Ticks per second of `/proc/stat`.
fn clock_ticks() -> f64 {
    // SAFETY: sysconf only reads a configuration value.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz > 0 {
        hz as f64
    } else {
        100.0
    }
}

/// Busy jiffies of the whole machine: every state of the `cpu` line but idle and iowait (the
/// first eight fields, as the twin counts them). `None` where `/proc/stat` cannot be read.
pub fn busy_jiffies() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let line = text.lines().next()?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    if v.len() < 5 {
        return None;
    }
    Some(v.iter().sum::<u64>() - v[3] - v[4])
}

/// CPU time of this process, all threads, in seconds.
pub fn process_cpu_s() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid pointer to a timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

fn cores() -> f64 {
    std::thread::available_parallelism().map_or(1, |n| n.get()) as f64
}

/// Waits until the machine has been under 10 % busy (of all cores) for 3 consecutive seconds,
/// or `max_s` seconds passed; returns the seconds waited.
pub fn wait_quiet(max_s: f64) -> f64 {
    let t0 = Instant::now();
    let hz = clock_ticks();
    let mut quiet = 0;
    while quiet < 3 && t0.elapsed().as_secs_f64() < max_s {
        let Some(j) = busy_jiffies() else { break };
        std::thread::sleep(Duration::from_secs(1));
        let Some(j1) = busy_jiffies() else { break };
        let busy = (j1 - j) as f64 / hz / cores();
        quiet = if busy < 0.10 { quiet + 1 } else { 0 };
    }
    t0.elapsed().as_secs_f64()
}

/// How to time: the twin's defaults.
#[derive(Debug, Clone, Copy)]
pub struct WindowOptions {
    /// Clean windows wanted.
    pub windows: usize,
    /// Target length of one window, seconds.
    pub window_s: f64,
    /// Give up collecting clean windows after this many seconds.
    pub max_s: f64,
    /// Untimed warm-up, seconds (and at least 20 steps).
    pub warmup_s: f64,
    /// Before starting, wait up to this long for a quiet machine.
    pub wait_quiet_s: f64,
}

impl Default for WindowOptions {
    /// 7 windows of 1.5 s within 60 s, 3 s of warm-up, up to 300 s waiting for quiet.
    fn default() -> Self {
        WindowOptions {
            windows: 7,
            window_s: 1.5,
            max_s: 60.0,
            warmup_s: 3.0,
            wait_quiet_s: 300.0,
        }
    }
}

/// The timed windows of one measurement.
#[derive(Debug, Clone, Default)]
pub struct Windows {
    /// Items per second of every window, in order.
    pub rates: Vec<f64>,
    /// Foreign CPU of every window, in cores.
    pub foreign: Vec<f64>,
    /// Items per CPU-second of this process, every window.
    pub per_cpu: Vec<f64>,
    /// Steps per window.
    pub steps: usize,
    /// Seconds spent waiting for a quiet machine.
    pub waited_s: f64,
}

impl Windows {
    /// Rates of the clean windows (foreign CPU under [`FOREIGN_MAX`]).
    pub fn clean(&self) -> Vec<f64> {
        self.rates
            .iter()
            .zip(&self.foreign)
            .filter(|(_, &f)| f < FOREIGN_MAX)
            .map(|(&r, _)| r)
            .collect()
    }

    /// The rates the figure is taken over: the clean ones, or every window when none is clean.
    pub fn used(&self) -> Vec<f64> {
        let c = self.clean();
        if c.is_empty() {
            self.rates.clone()
        } else {
            c
        }
    }
}

/// Median of `v` (mean of the middle two for an even count); NaN when empty.
pub fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

/// Times `step`, which processes `items` items per call, in clean windows (see the module
/// documentation).
pub fn measure(items: f64, opts: &WindowOptions, mut step: impl FnMut()) -> Windows {
    let waited_s = wait_quiet(opts.wait_quiet_s);
    let t0 = Instant::now();
    let mut n = 0;
    while t0.elapsed().as_secs_f64() < opts.warmup_s || n < 20 {
        step();
        n += 1;
    }
    let t1 = Instant::now();
    let mut n_cal = 0;
    while t1.elapsed().as_secs_f64() < 0.5 || n_cal < 5 {
        step();
        n_cal += 1;
    }
    let per_step = t1.elapsed().as_secs_f64() / n_cal as f64;
    let steps = ((opts.window_s / per_step) as usize).max(5);
    let hz = clock_ticks();
    let mut w = Windows {
        steps,
        waited_s,
        ..Windows::default()
    };
    let start = Instant::now();
    while w.clean().len() < opts.windows && start.elapsed().as_secs_f64() < opts.max_s {
        let (j0, c0) = (busy_jiffies(), process_cpu_s());
        let s = Instant::now();
        for _ in 0..steps {
            step();
        }
        let wall = s.elapsed().as_secs_f64();
        let own = process_cpu_s() - c0;
        let foreign = match (j0, busy_jiffies()) {
            (Some(a), Some(b)) => ((b - a) as f64 / hz - own).max(0.0) / wall,
            _ => 0.0,
        };
        let done = steps as f64 * items;
        w.rates.push(done / wall);
        w.foreign.push(foreign);
        w.per_cpu.push(done / own.max(1e-9));
    }
    w
}

/// The one-line JSON the twin prints, with the same keys (`imps_per_s_median`, ...), plus
/// every clean window's rate (`clean_rates`) and `extra` (`"key": value` pairs, already
/// formatted).
pub fn json_line(task: &str, threads: usize, w: &Windows, extra: &str) -> String {
    let used = w.used();
    let min = used.iter().copied().fold(f64::INFINITY, f64::min);
    let max = used.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let clean: Vec<String> = w.clean().iter().map(|r| format!("{r:.0}")).collect();
    format!(
        "{{\"task\": \"{task}\", \"threads\": {threads}, \"imps_per_s_median\": {:.0}, \
         \"imps_per_s_min\": {min:.0}, \"imps_per_s_max\": {max:.0}, \"clean_windows\": {}, \
         \"all_windows\": {}, \"all_windows_median\": {:.0}, \"foreign_cpu_median_pct\": {:.0}, \
         \"imps_per_own_cpu_s_median\": {:.0}, \"steps_per_window\": {}, \
         \"waited_for_quiet_s\": {:.0}, \"clean_rates\": [{}]{}{extra}}}",
        median(&used),
        w.clean().len(),
        w.rates.len(),
        median(&w.rates),
        100.0 * median(&w.foreign),
        median(&w.per_cpu),
        w.steps,
        w.waited_s,
        clean.join(", "),
        if extra.is_empty() { "" } else { ", " },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn busy_windows_are_not_clean() {
        let w = Windows {
            rates: vec![10.0, 20.0, 30.0],
            foreign: vec![0.5, 0.05, 0.0],
            ..Windows::default()
        };
        assert_eq!(w.clean(), vec![20.0, 30.0]);
        assert_eq!(w.used(), vec![20.0, 30.0]);
        let all_busy = Windows {
            rates: vec![10.0],
            foreign: vec![1.0],
            ..Windows::default()
        };
        assert_eq!(all_busy.used(), vec![10.0]);
    }

    #[test]
    fn json_line_has_the_twins_keys() {
        let w = Windows {
            rates: vec![100.0, 300.0, 200.0],
            foreign: vec![0.0, 0.0, 0.9],
            per_cpu: vec![50.0; 3],
            steps: 7,
            waited_s: 3.0,
        };
        let line = json_line("teacher_train", 2, &w, "\"x\": 1");
        let v: serde_json::Value = serde_json::from_str(&line).expect("valid JSON");
        assert_eq!(v["imps_per_s_median"], 200.0);
        assert_eq!(v["imps_per_s_min"], 100.0);
        assert_eq!(v["imps_per_s_max"], 300.0);
        assert_eq!(v["clean_windows"], 2);
        assert_eq!(v["clean_rates"], serde_json::json!([100, 300]));
        assert_eq!(v["x"], 1);
    }
}
