//! The feed simulator: determinism, documented rates, agreement of the log with its own ground
//! truth, and the story the truth must tell (click-bait wins on clicks, loses on reading time).

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

use dmtl_data::sim::{SimConfig, Simulator};
use dmtl_data::{read_log, RawColumn, RawLog, ReadOptions, Schema, Side, StrColumn};

/// One tiny simulator and its log, shared by the tests of this file.
fn tiny() -> &'static (Simulator, RawLog) {
    static CELL: OnceLock<(Simulator, RawLog)> = OnceLock::new();
    CELL.get_or_init(|| {
        let sim = Simulator::new(SimConfig::tiny());
        let log = sim.impressions();
        (sim, log)
    })
}

fn categorical<'a>(log: &'a RawLog, name: &str) -> &'a StrColumn {
    match log.column(name) {
        Some(RawColumn::Categorical(v)) => v,
        other => panic!("column {name}: expected categorical, got {other:?}"),
    }
}

fn bag<'a>(log: &'a RawLog, name: &str, r: usize) -> Vec<&'a str> {
    match log.column(name) {
        Some(RawColumn::MultiHot { tokens, offsets }) => {
            tokens.range(offsets[r]..offsets[r + 1]).collect()
        }
        other => panic!("column {name}: expected multi-hot, got {other:?}"),
    }
}

/// (user, item) index of every row of the log.
fn pairs(sim: &Simulator, log: &RawLog) -> Vec<(usize, usize)> {
    let users = categorical(log, "user_id");
    let items = categorical(log, "item_id");
    users
        .iter()
        .zip(items)
        .map(|(u, i)| (sim.user_index(u).unwrap(), sim.item_index(i).unwrap()))
        .collect()
}

#[test]
fn same_seed_same_log_different_seed_different_log() {
    let (_, log) = tiny();
    let again = Simulator::new(SimConfig::tiny()).impressions();
    assert_eq!(log, &again);
    // The log must not depend on how many threads generate it.
    let one_thread = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap()
        .install(|| Simulator::new(SimConfig::tiny()).impressions());
    assert_eq!(log, &one_thread);
    let other = Simulator::new(SimConfig {
        seed: SimConfig::tiny().seed + 1,
        ..SimConfig::tiny()
    })
    .impressions();
    assert_eq!(other.n_rows, log.n_rows);
    let same_items = categorical(log, "item_id")
        .iter()
        .zip(categorical(&other, "item_id"))
        .filter(|(a, b)| a == b)
        .count();
    assert!(
        same_items < log.n_rows / 10,
        "{same_items} rows share their item"
    );
}

#[test]
fn log_has_the_documented_columns_and_day_order() {
    let (sim, log) = tiny();
    let names: Vec<&str> = log.columns.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "user_id",
            "age",
            "gender",
            "city",
            "user_tags",
            "hour",
            "network",
            "item_id",
            "category",
            "sub_category",
            "author",
            "item_tags",
            "length_bucket"
        ]
    );
    assert_eq!(log.n_rows, SimConfig::tiny().n_impressions);
    for (name, col) in &log.columns {
        assert_eq!(col.len(), log.n_rows, "column {name}");
    }
    let days = log.time.as_ref().unwrap();
    assert!(
        days.windows(2).all(|w| w[0] <= w[1]),
        "rows are in day order"
    );
    let n_days = sim.config().n_days as i64;
    let mut per_day = vec![0usize; n_days as usize];
    for &d in days {
        assert!((0..n_days).contains(&d));
        per_day[d as usize] += 1;
    }
    assert_eq!(per_day, vec![log.n_rows / n_days as usize; n_days as usize]);
    // Labels: 0/1 clicks, duration positive exactly when clicked, capped.
    let (click, duration) = (log.click.as_ref().unwrap(), log.duration.as_ref().unwrap());
    for (&c, &d) in click.iter().zip(duration) {
        assert!(c == 0.0 || c == 1.0);
        assert_eq!(c == 1.0, d > 0.0);
        assert!(d <= sim.config().max_read_seconds as f32);
    }
    // Vocabulary sizes stay within the configured ones; the small ones are all used.
    let c = sim.config();
    for (name, max, all_used) in [
        ("age", c.n_age, true),
        ("gender", c.n_gender, true),
        ("city", c.n_city, false),
        ("hour", c.n_hour, true),
        ("network", c.n_network, true),
        ("category", c.n_category, false),
        ("sub_category", c.n_sub_category, false),
        ("author", c.n_author, false),
        ("length_bucket", c.n_length_bucket, true),
    ] {
        let distinct: HashSet<&str> = categorical(log, name).iter().collect();
        assert!(distinct.len() <= max, "{name}: {} values", distinct.len());
        if all_used {
            assert_eq!(distinct.len(), max, "{name}");
        }
    }
    let genders: HashSet<&str> = categorical(log, "gender").iter().collect();
    assert_eq!(genders, HashSet::from(["f", "m", "u"]));
    assert!(categorical(log, "user_id")
        .iter()
        .all(|s| s.starts_with('u')));
    assert!(categorical(log, "item_id")
        .iter()
        .all(|s| s.starts_with('i')));
}

#[test]
fn rates_land_in_the_documented_ranges() {
    let (sim, log) = tiny();
    let click = log.click.as_ref().unwrap();
    let duration = log.duration.as_ref().unwrap();
    let clicks = click.iter().filter(|&&c| c == 1.0).count();
    let long = duration.iter().filter(|&&d| d > 50.0).count();
    let ctr = clicks as f64 / log.n_rows as f64;
    let long_share = long as f64 / clicks as f64;
    assert!((0.05..=0.20).contains(&ctr), "CTR {ctr}");
    assert!(
        (1.0 / 3.0..=0.5).contains(&long_share),
        "long-read share {long_share}"
    );
    let bait = (0..sim.n_items()).filter(|&i| sim.is_clickbait(i)).count() as f64;
    let share = bait / sim.n_items() as f64;
    assert!((share - 0.18).abs() < 0.04, "click-bait share {share}");

    // stats() counts the same things.
    let s = sim.stats(log).unwrap();
    assert!((s.ctr - ctr).abs() < 1e-12);
    assert!((s.long_read_share_of_clicks - long_share).abs() < 1e-12);
    assert!((s.clickbait_item_share - share).abs() < 1e-12);

    // The share follows the configuration.
    let low = Simulator::new(SimConfig {
        clickbait_share: 0.05,
        n_impressions: 0,
        ..SimConfig::tiny()
    });
    let low_share =
        (0..low.n_items()).filter(|&i| low.is_clickbait(i)).count() as f64 / low.n_items() as f64;
    assert!(
        (low_share - 0.05).abs() < 0.025,
        "click-bait share {low_share}"
    );
}

#[test]
fn clickbait_gets_more_clicks_and_shorter_reads() {
    let (sim, log) = tiny();
    let click = log.click.as_ref().unwrap();
    let duration = log.duration.as_ref().unwrap();
    // [impressions, clicks, read seconds] for click-bait and the rest.
    let mut acc = [[0f64; 3]; 2];
    for (r, (_, i)) in pairs(sim, log).into_iter().enumerate() {
        let a = &mut acc[usize::from(sim.is_clickbait(i))];
        a[0] += 1.0;
        a[1] += click[r] as f64;
        a[2] += duration[r] as f64;
    }
    let ctr = |a: [f64; 3]| a[1] / a[0];
    let read = |a: [f64; 3]| a[2] / a[1];
    assert!(acc[1][0] > 1000.0, "enough click-bait impressions");
    assert!(
        ctr(acc[1]) > 1.8 * ctr(acc[0]),
        "CTR {} vs {}",
        ctr(acc[1]),
        ctr(acc[0])
    );
    assert!(
        read(acc[1]) < 0.3 * read(acc[0]),
        "read {} vs {}",
        read(acc[1]),
        read(acc[0])
    );
}

/// Splits rows into ten groups by the decile of `score` and checks in each group that the
/// observed mean of the 0/1 `outcome` matches the mean predicted probability within four
/// binomial standard errors (plus a hair for the truth's 1e-7 approximation).
fn assert_calibrated(what: &str, predicted: &[f64], outcome: &[bool]) {
    let mut order: Vec<usize> = (0..predicted.len()).collect();
    order.sort_by(|&a, &b| predicted[a].total_cmp(&predicted[b]));
    for (g, group) in order.chunks(order.len().div_ceil(10)).enumerate() {
        let n = group.len() as f64;
        let expected: f64 = group.iter().map(|&r| predicted[r]).sum::<f64>() / n;
        let var: f64 = group
            .iter()
            .map(|&r| predicted[r] * (1.0 - predicted[r]))
            .sum::<f64>();
        let observed = group.iter().filter(|&&r| outcome[r]).count() as f64 / n;
        let tol = 4.0 * var.sqrt() / n + 1e-6;
        assert!(
            (observed - expected).abs() <= tol,
            "{what}, decile {g}: observed {observed}, truth {expected}, tolerance {tol}"
        );
    }
}

#[test]
fn empirical_clicks_match_p_click() {
    let (sim, log) = tiny();
    let pairs = pairs(sim, log);
    let p: Vec<f64> = pairs.iter().map(|&(u, i)| sim.p_click(u, i)).collect();
    let clicked: Vec<bool> = log
        .click
        .as_ref()
        .unwrap()
        .iter()
        .map(|&c| c == 1.0)
        .collect();
    assert_calibrated("click", &p, &clicked);
    // The groups must really differ, or the check above would be weak.
    let (lo, hi) = (
        p.iter().cloned().fold(1.0, f64::min),
        p.iter().cloned().fold(0.0, f64::max),
    );
    assert!(lo < 0.01 && hi > 0.5, "p_click spans [{lo}, {hi}]");
}

#[test]
fn empirical_reads_match_the_truth_given_click() {
    let (sim, log) = tiny();
    let duration = log.duration.as_ref().unwrap();
    let t = sim.config().long_read_threshold as f32;
    let clicked: Vec<(usize, usize, f32)> = pairs(sim, log)
        .into_iter()
        .zip(duration)
        .filter(|(_, &d)| d > 0.0)
        .map(|((u, i), &d)| (u, i, d))
        .collect();
    let p: Vec<f64> = clicked
        .iter()
        .map(|&(u, i, _)| sim.p_long_read_given_click(u, i))
        .collect();
    let long: Vec<bool> = clicked.iter().map(|&(_, _, d)| d > t).collect();
    assert_calibrated("long read given click", &p, &long);

    // Mean reading time: sum of E[d | click] against the observed sum, within four standard
    // errors (the capped durations have finite variance; estimate it from the sample).
    let n = clicked.len() as f64;
    let truth: f64 = clicked
        .iter()
        .map(|&(u, i, _)| sim.mean_read_seconds_given_click(u, i))
        .sum::<f64>()
        / n;
    let resid: Vec<f64> = clicked
        .iter()
        .map(|&(u, i, d)| d as f64 - sim.mean_read_seconds_given_click(u, i))
        .collect();
    let mean_resid = resid.iter().sum::<f64>() / n;
    let sd = (resid.iter().map(|r| r * r).sum::<f64>() / n).sqrt();
    assert!(
        mean_resid.abs() < 4.0 * sd / n.sqrt(),
        "mean read: observed - truth = {mean_resid} s (truth {truth} s, sd {sd})"
    );
}

#[test]
fn per_impression_truth_is_the_product_and_user_truth_agrees() {
    let (sim, _) = tiny();
    let u = 17;
    let truth = sim.user_truth(u);
    assert_eq!(truth.p_click.len(), sim.n_items());
    for i in (0..sim.n_items()).step_by(97) {
        let p = sim.p_click(u, i);
        assert!((0.0..=1.0).contains(&p));
        let e = sim.expected_read_seconds(u, i);
        let pl = sim.p_long_read(u, i);
        assert!((e - p * sim.mean_read_seconds_given_click(u, i)).abs() < 1e-9);
        assert!((pl - p * sim.p_long_read_given_click(u, i)).abs() < 1e-12);
        assert!(sim.mean_read_seconds_given_click(u, i) <= sim.config().max_read_seconds);
        assert_eq!(truth.p_click[i], p);
        assert_eq!(truth.expected_read_seconds[i], e);
        assert_eq!(truth.p_long_read[i], pl);
    }
}

/// Share of click-bait among the `k` items of highest score.
fn clickbait_in_top(sim: &Simulator, scores: &[f64], k: usize) -> f64 {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    idx[..k].iter().filter(|&&i| sim.is_clickbait(i)).count() as f64 / k as f64
}

#[test]
fn oracle_top_k_by_reading_time_avoids_clickbait() {
    let (sim, _) = tiny();
    let users: Vec<usize> = (0..sim.n_users()).step_by(20).collect();
    let k = 50;
    let mut better = 0;
    let (mut by_click, mut by_read) = (0.0, 0.0);
    for &u in &users {
        let t = sim.user_truth(u);
        let c = clickbait_in_top(sim, &t.p_click, k);
        let r = clickbait_in_top(sim, &t.expected_read_seconds, k);
        by_click += c;
        by_read += r;
        better += usize::from(r < c);
        // Long reads tell the same story as reading seconds.
        assert!(clickbait_in_top(sim, &t.p_long_read, k) <= c, "user {u}");
    }
    let n = users.len() as f64;
    assert!(better as f64 >= 0.9 * n, "{better} of {n} users");
    assert!(
        by_click / n > 0.3,
        "click-bait share of top-{k} by p_click {}",
        by_click / n
    );
    assert!(
        by_read / n < 0.1,
        "click-bait share of top-{k} by read time {}",
        by_read / n
    );
}

#[test]
fn popularity_is_skewed() {
    let (sim, log) = tiny();
    let mut shown = vec![0usize; sim.n_items()];
    for (_, i) in pairs(sim, log) {
        shown[i] += 1;
    }
    shown.sort_unstable_by(|a, b| b.cmp(a));
    let top: usize = shown[..sim.n_items() / 10].iter().sum();
    let share = top as f64 / log.n_rows as f64;
    assert!(share > 0.4, "top 10 % of items get {share} of impressions");
    assert!((sim.stats(log).unwrap().top_decile_impression_share - share).abs() < 1e-12);
}

#[test]
fn item_and_user_tables_agree_with_the_log() {
    let (sim, log) = tiny();
    let items = sim.item_table();
    assert_eq!(items.n_rows, sim.n_items());
    assert!(items.click.is_none() && items.duration.is_none());
    let ids = categorical(&items, "item_id");
    let distinct: HashSet<usize> = ids.iter().map(|s| sim.item_index(s).unwrap()).collect();
    assert_eq!(distinct.len(), sim.n_items(), "every item exactly once");
    let item_row: HashMap<&str, usize> = ids.iter().enumerate().map(|(r, s)| (s, r)).collect();

    let all: Vec<usize> = (0..sim.n_users()).collect();
    let users = sim.user_table(&all);
    assert_eq!(users.n_rows, sim.n_users());
    let names: Vec<&str> = users.columns.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "user_id",
            "age",
            "gender",
            "city",
            "user_tags",
            "hour",
            "network"
        ]
    );
    let user_ids = categorical(&users, "user_id");
    for (u, id) in user_ids.iter().enumerate() {
        assert_eq!(sim.user_index(id), Some(u));
    }

    // A row's item (user) features are those of its item (user) in the tables.
    let log_items = categorical(log, "item_id");
    let log_users = categorical(log, "user_id");
    for r in (0..log.n_rows).step_by(7) {
        let ir = item_row[&log_items[r]];
        for name in ["category", "sub_category", "author", "length_bucket"] {
            assert_eq!(
                categorical(log, name)[r],
                categorical(&items, name)[ir],
                "{name}"
            );
        }
        assert_eq!(bag(log, "item_tags", r), bag(&items, "item_tags", ir));
        let ur = sim.user_index(&log_users[r]).unwrap();
        for name in ["age", "gender", "city"] {
            assert_eq!(
                categorical(log, name)[r],
                categorical(&users, name)[ur],
                "{name}"
            );
        }
        assert_eq!(bag(log, "user_tags", r), bag(&users, "user_tags", ur));
    }

    // Tag lists: items 1 to 5 distinct tags, users 1 to 8 or (about 2 %) none.
    for r in 0..items.n_rows {
        let b = bag(&items, "item_tags", r);
        assert!((1..=5).contains(&b.len()));
        assert_eq!(b.iter().collect::<HashSet<_>>().len(), b.len());
    }
    let mut empty = 0;
    for r in 0..users.n_rows {
        let b = bag(&users, "user_tags", r);
        assert!(b.len() <= 8);
        empty += usize::from(b.is_empty());
    }
    let share = empty as f64 / users.n_rows as f64;
    assert!(
        (0.005..=0.04).contains(&share),
        "empty user_tags share {share}"
    );
}

#[test]
fn raw_ids_round_trip_and_foreign_ids_are_refused() {
    let (sim, _) = tiny();
    for u in [0, 1, 9, 10, 1999] {
        assert_eq!(sim.user_index(&sim.user_id(u)), Some(u));
    }
    for i in [0, 5, 1234, 1999] {
        assert_eq!(sim.item_index(&sim.item_id(i)), Some(i));
    }
    for bad in ["u2000", "u", "u01", "i1", "u-1", "u 1", "", "u1x"] {
        assert_eq!(sim.user_index(bad), None, "{bad:?}");
    }
    assert_eq!(sim.item_index("u1"), None);
    assert_eq!(sim.item_index("i2000"), None);
}

#[test]
fn schema_describes_the_log() {
    let (sim, log) = tiny();
    // The project's own parser accepts it and agrees on the essentials.
    let parsed = Schema::from_toml_str(&sim.schema_toml(), "simulator").unwrap();
    assert_eq!(parsed.time_column(), Some("day"));
    assert_eq!(parsed.columns.len(), log.columns.len());
    let schema: toml::Value = toml::from_str(&sim.schema_toml()).unwrap();
    assert_eq!(schema["long_read_threshold"].as_float(), Some(50.0));
    assert_eq!(schema["labels"]["click"].as_str(), Some("click"));
    assert_eq!(schema["labels"]["duration"].as_str(), Some("duration"));
    assert_eq!(schema["ids"]["user"].as_str(), Some("user_id"));
    assert_eq!(schema["ids"]["item"].as_str(), Some("item_id"));
    assert_eq!(schema["split"]["time_column"].as_str(), Some("day"));
    assert_eq!(schema["split"]["test_from"].as_integer(), Some(10)); // 12 days, last 2 held out
    assert_eq!(schema["defaults"]["embedding_dim"].as_integer(), Some(16));
    let columns = schema["columns"].as_array().unwrap();
    assert_eq!(columns.len(), log.columns.len());
    for (spec, (name, col)) in columns.iter().zip(&log.columns) {
        assert_eq!(spec["name"].as_str(), Some(name.as_str()));
        let side = spec["side"].as_str().unwrap();
        let expected_side = match name.as_str() {
            "hour" | "network" => "context",
            n if n.starts_with("user") || ["age", "gender", "city"].contains(&n) => "user",
            _ => "item",
        };
        assert_eq!(side, expected_side, "{name}");
        match col {
            RawColumn::MultiHot { .. } => {
                assert_eq!(spec["kind"].as_str(), Some("multi_hot"));
                assert_eq!(spec["separator"].as_str(), Some("|"));
            }
            RawColumn::Categorical(_) => assert_eq!(spec["kind"].as_str(), Some("categorical")),
            RawColumn::Dense(_) => panic!("no dense columns expected"),
        }
    }
}

/// The same table with its `source` cleared, for comparing a log with its read-back copy.
fn sourceless(mut log: RawLog) -> RawLog {
    log.source.clear();
    log
}

#[test]
fn written_files_read_back_to_the_same_tables() {
    let sim = Simulator::new(SimConfig {
        n_users: 300,
        n_items: 400,
        n_impressions: 3_000,
        n_author: 40,
        ..SimConfig::tiny()
    });
    let dir = tempfile::tempdir().unwrap();
    let log = sourceless(sim.impressions());
    let items = sourceless(sim.item_table());
    let users = sourceless(sim.user_table(&(0..sim.n_users()).collect::<Vec<_>>()));
    for parquet in [false, true] {
        let out = dir.path().join(if parquet { "pq/sim" } else { "csv/sim" });
        let files = sim.write(&out, parquet).unwrap();
        assert_eq!(
            std::fs::read_to_string(&files.schema).unwrap(),
            sim.schema_toml()
        );
        let schema = Schema::load(&files.schema).unwrap();
        let read = |path: &std::path::Path, opts: ReadOptions| {
            sourceless(read_log(path, &schema, &opts).unwrap())
        };
        assert_eq!(
            read(&files.log, ReadOptions::default()),
            log,
            "log, parquet = {parquet}"
        );
        let item_side = ReadOptions::table_of(&[Side::Item]);
        assert_eq!(
            read(&files.items, item_side),
            items,
            "items, parquet = {parquet}"
        );
        let user_side = ReadOptions::table_of(&[Side::User, Side::Context]);
        assert_eq!(
            read(&files.users, user_side),
            users,
            "users, parquet = {parquet}"
        );
        // Nothing but the four files: no temporary file is left behind.
        let mut names: Vec<String> = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        let ext = if parquet { "parquet" } else { "csv" };
        let mut expected = [
            format!("items.{ext}"),
            format!("log.{ext}"),
            "schema.toml".to_string(),
            format!("users.{ext}"),
        ];
        expected.sort();
        assert_eq!(names, expected);
    }
    // The CSV log is plain: a header row, multi-hot cells joined by "|".
    let mut reader = csv::Reader::from_path(dir.path().join("csv/sim/log.csv")).unwrap();
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    let mut expected: Vec<String> = log.columns.iter().map(|(n, _)| n.clone()).collect();
    expected.extend(["click", "duration", "day"].map(String::from));
    assert_eq!(header, expected);
    let first = reader.records().next().unwrap().unwrap();
    assert_eq!(&first[4], bag(&log, "user_tags", 0).join("|"));
}

#[test]
fn bad_configs_are_refused_with_the_key_named() {
    let cases = [
        (
            SimConfig {
                n_items: 0,
                ..SimConfig::tiny()
            },
            "n_items",
        ),
        (
            SimConfig {
                clickbait_share: 1.5,
                ..SimConfig::tiny()
            },
            "clickbait_share",
        ),
        (
            SimConfig {
                empty_tag_share: -0.1,
                ..SimConfig::tiny()
            },
            "empty_tag_share",
        ),
        (
            SimConfig {
                long_read_threshold: f64::NAN,
                ..SimConfig::tiny()
            },
            "long_read_threshold",
        ),
        (
            SimConfig {
                max_read_seconds: 10.0,
                ..SimConfig::tiny()
            },
            "max_read_seconds",
        ),
        (
            SimConfig {
                exposure_popular: 0.7,
                exposure_interest: 0.5,
                ..SimConfig::tiny()
            },
            "exposure_popular + exposure_interest",
        ),
    ];
    for (cfg, key) in cases {
        let err = Simulator::try_new(cfg).unwrap_err();
        assert!(err.contains(key), "{err:?} should name {key}");
    }
}

#[test]
fn configs_round_trip_and_reference_matches_the_benchmark() {
    let r = SimConfig::reference();
    assert_eq!(
        (r.n_users, r.n_items, r.n_author),
        (100_000, 200_000, 20_000)
    );
    assert_eq!(
        (
            r.n_age,
            r.n_gender,
            r.n_city,
            r.n_user_tags,
            r.n_hour,
            r.n_network
        ),
        (8, 3, 400, 2_000, 24, 4)
    );
    assert_eq!(
        (
            r.n_category,
            r.n_sub_category,
            r.n_item_tags,
            r.n_length_bucket
        ),
        (40, 400, 2_000, 10)
    );
    let text = toml::to_string(&r).unwrap();
    assert_eq!(toml::from_str::<SimConfig>(&text).unwrap(), r);
    // Missing keys take the defaults.
    let partial: SimConfig = toml::from_str("n_users = 7\nseed = 3").unwrap();
    assert_eq!(
        partial,
        SimConfig {
            n_users: 7,
            seed: 3,
            ..SimConfig::default()
        }
    );
    assert!(toml::from_str::<SimConfig>("n_userz = 7").is_err());
}

#[test]
fn odd_sizes_still_generate_consistent_logs() {
    // Fewer authors and sub-categories than topics, one day, one length bucket, more topics
    // than items: the generator must cope, not panic.
    let cfg = SimConfig {
        n_users: 50,
        n_items: 30,
        n_impressions: 500,
        n_days: 1,
        n_topics: 40,
        n_author: 3,
        n_sub_category: 5,
        n_category: 2,
        n_length_bucket: 1,
        n_age: 3,
        n_gender: 2,
        n_network: 6,
        n_hour: 3,
        n_user_tags: 4,
        n_item_tags: 2,
        ..SimConfig::tiny()
    };
    let sim = Simulator::new(cfg);
    let log = sim.impressions();
    assert_eq!(log.n_rows, 500);
    assert_eq!(sim.item_table().n_rows, 30);
    let schema: toml::Value = toml::from_str(&sim.schema_toml()).unwrap();
    assert_eq!(schema["split"]["test_from"].as_integer(), Some(1)); // one day: no test period
    for (u, i) in pairs(&sim, &log) {
        assert!((0.0..=1.0).contains(&sim.p_click(u, i)));
    }
}
