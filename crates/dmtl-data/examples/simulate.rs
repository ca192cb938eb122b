//! Simulates a Kandian-like feed log, writes it with its schema, item and user tables into a
//! directory, and prints its rates and the story the truth tells.
//!
//! ```text
//! cargo run --release -p dmtl-data --example simulate -- OUT_DIR [--size tiny|default|reference]
//!     [--seed N] [--impressions N] [--parquet]
//! ```

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use dmtl_data::sim::{SimConfig, Simulator};

const USAGE: &str = "usage: simulate OUT_DIR [--size tiny|default|reference] [--seed N] \
                     [--impressions N] [--parquet]";

fn parse() -> Result<(PathBuf, SimConfig, bool), String> {
    let mut args = std::env::args().skip(1);
    let mut dir = None;
    let mut cfg = SimConfig::default();
    let mut seed = None;
    let mut impressions = None;
    let mut parquet = false;
    while let Some(a) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value\n{USAGE}"));
        match a.as_str() {
            "--size" => {
                cfg = match value("--size")?.as_str() {
                    "tiny" => SimConfig::tiny(),
                    "default" => SimConfig::default(),
                    "reference" => SimConfig::reference(),
                    other => return Err(format!("unknown size {other:?}\n{USAGE}")),
                }
            }
            "--seed" => {
                let v = value("--seed")?;
                seed = Some(
                    v.parse()
                        .map_err(|_| format!("--seed: not an integer: {v:?}"))?,
                )
            }
            "--impressions" => {
                let v = value("--impressions")?;
                impressions = Some(
                    v.parse()
                        .map_err(|_| format!("--impressions: not an integer: {v:?}"))?,
                )
            }
            "--parquet" => parquet = true,
            "-h" | "--help" => return Err(USAGE.to_string()),
            _ if dir.is_none() && !a.starts_with("--") => dir = Some(PathBuf::from(a)),
            _ => return Err(format!("unexpected argument {a:?}\n{USAGE}")),
        }
    }
    if let Some(s) = seed {
        cfg.seed = s;
    }
    if let Some(n) = impressions {
        cfg.n_impressions = n;
    }
    Ok((dir.ok_or(USAGE.to_string())?, cfg, parquet))
}

fn main() -> ExitCode {
    let (dir, cfg, parquet) = match parse() {
        Ok(x) => x,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let t0 = Instant::now();
    let sim = match Simulator::try_new(cfg) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let t_new = t0.elapsed();
    let t1 = Instant::now();
    let log = sim.impressions();
    let t_log = t1.elapsed();
    let c = sim.config();
    println!(
        "{} users, {} items, {} impressions over {} days",
        c.n_users, c.n_items, log.n_rows, c.n_days
    );
    println!(
        "Simulator::new {:.2} s, impressions() {:.2} s",
        t_new.as_secs_f64(),
        t_log.as_secs_f64()
    );
    let s = sim.stats(&log).expect("the simulator's own log");
    println!("CTR                          {:.2} %", 100.0 * s.ctr);
    println!(
        "long reads / clicks          {:.1} %  (threshold {} s)",
        100.0 * s.long_read_share_of_clicks,
        c.long_read_threshold
    );
    println!("mean read of a click         {:.1} s", s.mean_read_seconds);
    println!(
        "click-bait items             {:.1} %  ({:.1} % of impressions)",
        100.0 * s.clickbait_item_share,
        100.0 * s.clickbait_impression_share
    );
    println!(
        "CTR click-bait / other       {:.2} % / {:.2} %",
        100.0 * s.ctr_clickbait,
        100.0 * s.ctr_other
    );
    println!(
        "mean read click-bait / other {:.1} s / {:.1} s",
        s.mean_read_clickbait, s.mean_read_other
    );
    println!(
        "long reads click-bait / other {:.1} % / {:.1} %",
        100.0 * s.long_read_share_clickbait,
        100.0 * s.long_read_share_other
    );
    println!(
        "top 10 % items' impressions  {:.1} %",
        100.0 * s.top_decile_impression_share
    );

    // The story, on the truth: click-bait share of each user's oracle top-50.
    let k = 50.min(c.n_items);
    let users: Vec<usize> = (0..c.n_users).step_by((c.n_users / 100).max(1)).collect();
    let top_share = |scores: &[f64]| {
        let mut idx: Vec<usize> = (0..scores.len()).collect();
        idx.select_nth_unstable_by(k - 1, |a, b| scores[*b].total_cmp(&scores[*a]));
        idx[..k].iter().filter(|&&i| sim.is_clickbait(i)).count() as f64 / k as f64
    };
    let (mut by_click, mut by_read, mut by_long) = (0.0, 0.0, 0.0);
    let t2 = Instant::now();
    for &u in &users {
        let t = sim.user_truth(u);
        by_click += top_share(&t.p_click);
        by_read += top_share(&t.expected_read_seconds);
        by_long += top_share(&t.p_long_read);
    }
    let n = users.len() as f64;
    println!(
        "click-bait in oracle top-{k} ({} users, {:.2} s): by p_click {:.1} %, by expected read \
         {:.1} %, by p_long_read {:.1} %",
        users.len(),
        t2.elapsed().as_secs_f64(),
        100.0 * by_click / n,
        100.0 * by_read / n,
        100.0 * by_long / n
    );
    drop(log);

    let t3 = Instant::now();
    match sim.write(&dir, parquet) {
        Ok(files) => {
            println!(
                "wrote {}, {}, {}, {} in {:.2} s",
                files.log.display(),
                files.schema.display(),
                files.items.display(),
                files.users.display(),
                t3.elapsed().as_secs_f64()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("writing {}: {e}", dir.display());
            ExitCode::FAILURE
        }
    }
}
