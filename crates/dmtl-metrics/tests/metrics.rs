//! Metrics against hand-computed values and brute-force pair counts.

// The brute-force references index by position on purpose: they mirror the definitions.
#![allow(clippy::needless_range_loop)]

use dmtl_metrics::*;
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::HashMap;

/// O(n^2) Mann-Whitney: every (positive, negative) pair, ties 1/2, optional weights.
fn brute_auc(scores: &[f32], labels: &[f32], weights: Option<&[f32]>) -> Option<f64> {
    let w = |i: usize| weights.map_or(1.0, |w| w[i] as f64);
    let (mut num, mut pos, mut neg) = (0.0, 0.0, 0.0);
    for i in 0..scores.len() {
        if labels[i] > 0.5 {
            pos += w(i);
        } else {
            neg += w(i);
        }
    }
    for i in (0..scores.len()).filter(|&i| labels[i] > 0.5) {
        for j in (0..scores.len()).filter(|&j| labels[j] <= 0.5) {
            let s = if scores[i] > scores[j] {
                1.0
            } else if scores[i] == scores[j] {
                0.5
            } else {
                0.0
            };
            num += s * w(i) * w(j);
        }
    }
    (pos > 0.0 && neg > 0.0).then(|| num / (pos * neg))
}

fn random_case(rng: &mut StdRng, n: usize, levels: u32) -> (Vec<f32>, Vec<f32>) {
    // Few score levels force many ties.
    let scores = (0..n)
        .map(|_| rng.gen_range(0..levels) as f32 / levels as f32 - 0.5)
        .collect();
    let labels = (0..n)
        .map(|_| if rng.gen_bool(0.3) { 1.0 } else { 0.0 })
        .collect();
    (scores, labels)
}

#[test]
fn auc_hand_cases() {
    // All scores equal: every pair is a tie.
    assert_eq!(auc(&[0.3; 6], &[1.0, 0.0, 1.0, 0.0, 0.0, 1.0]), Some(0.5));
    // Perfect and reversed rankings.
    let s = [0.1, 0.2, 0.3, 0.4];
    assert_eq!(auc(&s, &[0.0, 0.0, 1.0, 1.0]), Some(1.0));
    assert_eq!(auc(&s, &[1.0, 1.0, 0.0, 0.0]), Some(0.0));
    // One of 3 * 2 pairs inverted: positives {0.4, 0.9, 0.2}, negatives {0.3, 0.1}
    // -> 0.4 beats both, 0.9 both, 0.2 beats 0.1 only: 5 / 6.
    let a = auc(&[0.4, 0.3, 0.9, 0.1, 0.2], &[1.0, 0.0, 1.0, 0.0, 1.0]).unwrap();
    assert!((a - 5.0 / 6.0).abs() < 1e-12);
    // -0.0 and +0.0 tie.
    assert_eq!(auc(&[-0.0, 0.0], &[1.0, 0.0]), Some(0.5));
    // Infinite scores rank at the ends.
    assert_eq!(
        auc(&[f32::NEG_INFINITY, f32::INFINITY], &[0.0, 1.0]),
        Some(1.0)
    );
    // Missing class.
    assert_eq!(auc(&[0.1, 0.2], &[0.0, 0.0]), None);
    assert_eq!(auc(&[], &[]), None);
    // Labels are thresholded at 0.5.
    assert_eq!(auc(&[0.1, 0.9], &[0.5, 0.51]), Some(1.0));
}

#[test]
fn auc_errors() {
    assert!(matches!(
        try_auc(&[0.1], &[1.0, 0.0]),
        Err(MetricError::LengthMismatch {
            left_len: 1,
            right_len: 2,
            ..
        })
    ));
    assert!(matches!(
        try_auc(&[0.1, 0.2], &[1.0, 1.0]),
        Err(MetricError::OneClass { negatives, .. }) if negatives == 0.0
    ));
    let r = std::panic::catch_unwind(|| auc(&[f32::NAN, 0.1], &[0.0, 1.0]));
    assert!(r.is_err());
}

#[test]
fn auc_matches_brute_force_seeded() {
    let mut rng = StdRng::seed_from_u64(7);
    for case in 0..200 {
        let n = rng.gen_range(1..300);
        let levels = [2, 5, 50, 100_000][case % 4];
        let (s, y) = random_case(&mut rng, n, levels);
        let (fast, slow) = (auc(&s, &y), brute_auc(&s, &y, None));
        match (fast, slow) {
            (Some(a), Some(b)) => assert!((a - b).abs() < 1e-12, "case {case}: {a} vs {b}"),
            (a, b) => assert_eq!(a, b, "case {case}"),
        }
    }
}

#[test]
fn auc_large_input_takes_parallel_path() {
    // Above the parallel threshold; compared with brute force on a few score levels via counts.
    let mut rng = StdRng::seed_from_u64(3);
    let n = 100_000;
    let (s, y) = random_case(&mut rng, n, 16);
    // Brute force by level: pairs counted from per-level class counts, still independent of
    // the sorted implementation.
    let mut pos = [0f64; 16];
    let mut neg = [0f64; 16];
    for (&s, &y) in s.iter().zip(&y) {
        let l = ((s + 0.5) * 16.0).round() as usize;
        if y > 0.5 {
            pos[l] += 1.0
        } else {
            neg[l] += 1.0
        }
    }
    let mut num = 0.0;
    for i in 0..16 {
        for j in 0..16 {
            num += pos[i]
                * neg[j]
                * if i > j {
                    1.0
                } else if i == j {
                    0.5
                } else {
                    0.0
                };
        }
    }
    let want = num / (pos.iter().sum::<f64>() * neg.iter().sum::<f64>());
    assert!((auc(&s, &y).unwrap() - want).abs() < 1e-12);
}

#[test]
fn auc_invariant_to_monotone_transforms() {
    let mut rng = StdRng::seed_from_u64(11);
    let (s, y) = random_case(&mut rng, 500, 40);
    let base = auc(&s, &y).unwrap();
    let exp: Vec<f32> = s.iter().map(|x| x.exp()).collect();
    let affine: Vec<f32> = s.iter().map(|x| 3.0 * x - 7.0).collect();
    let cube: Vec<f32> = s.iter().map(|x| x * x * x).collect();
    for t in [&exp, &affine, &cube] {
        assert!((auc(t, &y).unwrap() - base).abs() < 1e-12);
    }
    // A decreasing transform mirrors the AUC.
    let neg: Vec<f32> = s.iter().map(|x| -x).collect();
    assert!((auc(&neg, &y).unwrap() - (1.0 - base)).abs() < 1e-12);
}

#[test]
fn weighted_auc_matches_brute_force_and_unweighted() {
    let mut rng = StdRng::seed_from_u64(5);
    for case in 0..100 {
        let n = rng.gen_range(2..200);
        let (s, y) = random_case(&mut rng, n, [3, 1000][case % 2]);
        let w: Vec<f32> = (0..n).map(|_| rng.gen_range(0.0..3.0)).collect();
        match (auc_weighted(&s, &y, &w), brute_auc(&s, &y, Some(&w))) {
            (Some(a), Some(b)) => assert!((a - b).abs() < 1e-9, "case {case}: {a} vs {b}"),
            (a, b) => assert_eq!(a, b),
        }
        let ones = vec![1.0; n];
        assert_eq!(auc_weighted(&s, &y, &ones), auc(&s, &y));
    }
}

fn brute_gauc(s: &[f32], y: &[f32], g: &[u32]) -> Option<(f64, usize, usize, usize)> {
    let mut by: HashMap<u32, Vec<usize>> = HashMap::new();
    for (i, &gi) in g.iter().enumerate() {
        by.entry(gi).or_default().push(i);
    }
    let (mut num, mut den, mut used) = (0.0, 0usize, 0usize);
    for rows in by.values() {
        let ss: Vec<f32> = rows.iter().map(|&i| s[i]).collect();
        let yy: Vec<f32> = rows.iter().map(|&i| y[i]).collect();
        if let Some(a) = brute_auc(&ss, &yy, None) {
            num += a * rows.len() as f64;
            den += rows.len();
            used += 1;
        }
    }
    (used > 0).then(|| (num / den as f64, used, by.len(), den))
}

#[test]
fn gauc_matches_brute_force() {
    let mut rng = StdRng::seed_from_u64(13);
    for case in 0..100 {
        let n = rng.gen_range(1..400);
        let (s, y) = random_case(&mut rng, n, [4, 1000][case % 2]);
        // Many small groups, so plenty have a single class and must be skipped.
        let n_groups = rng.gen_range(1..60u32);
        let g: Vec<u32> = (0..n).map(|_| rng.gen_range(0..n_groups) * 977).collect();
        match (gauc(&s, &y, &g), brute_gauc(&s, &y, &g)) {
            (Some(r), Some((want, used, total, imps))) => {
                assert!((r.gauc - want).abs() < 1e-12, "case {case}");
                assert_eq!(
                    (r.groups_used, r.groups_total, r.impressions_used),
                    (used, total, imps)
                );
            }
            (None, None) => {}
            (a, b) => panic!("case {case}: {a:?} vs {b:?}"),
        }
    }
}

#[test]
fn gauc_one_group_is_auc_and_skips_single_class_groups() {
    let s = [0.1, 0.5, 0.3, 0.9, 0.2];
    let y = [0.0, 1.0, 1.0, 0.0, 0.0];
    let r = gauc(&s, &y, &[4; 5]).unwrap();
    assert!((r.gauc - auc(&s, &y).unwrap()).abs() < 1e-12);
    // Adding a large all-negative group changes nothing but the group count.
    let s2 = [&s[..], &[0.7; 10]].concat();
    let y2 = [&y[..], &[0.0; 10]].concat();
    let g2 = [&[4u32; 5][..], &[u32::MAX; 10]].concat();
    let r2 = gauc(&s2, &y2, &g2).unwrap();
    assert!((r2.gauc - r.gauc).abs() < 1e-12);
    assert_eq!((r2.groups_used, r2.groups_total), (1, 2));
    assert_eq!(r2.impressions_used, 5);
}

#[test]
fn logloss_and_calibration_hand_cases() {
    let l = logloss(&[0.9, 0.2, 0.6], &[1.0, 0.0, 0.0]);
    let want = -(0.9f64.ln() + 0.8f64.ln() + 0.4f64.ln()) / 3.0;
    assert!((l - want).abs() < 1e-6);
    // Clipping: p = 1 on a negative costs -ln(1e-7).
    assert!((logloss(&[1.0], &[0.0]) - 16.118_095_65).abs() < 1e-3);
    // Soft labels: minimised at p = y, where it equals the entropy of y.
    let h = -(0.3f64 * 0.3f64.ln() + 0.7 * 0.7f64.ln());
    assert!((logloss(&[0.3], &[0.3]) - h).abs() < 1e-6);
    assert!(logloss(&[0.35], &[0.3]) > logloss(&[0.3], &[0.3]));
    assert!(logloss(&[], &[]).is_nan());
    assert!((calibration(&[0.5, 0.5], &[1.0, 0.0]) - 1.0).abs() < 1e-12);
    assert!((calibration(&[0.1, 0.1, 0.1, 0.1], &[1.0, 0.0, 0.0, 0.0]) - 0.4).abs() < 1e-6);
    assert_eq!(calibration(&[0.1], &[0.0]), f64::INFINITY);
}

#[test]
fn recall_and_ndcg_hand_cases() {
    assert_eq!(recall_at_k(&[1, 2, 3], &[3, 2, 1]), 1.0);
    assert_eq!(recall_at_k(&[], &[3]), 0.0);
    // Duplicates in either list count once.
    assert_eq!(recall_at_k(&[3, 3, 3], &[3, 3, 4]), 0.5);
    // Ideal order gives 1, the same items lower down less.
    assert_eq!(ndcg_at_k(&[1, 2, 9], &[1, 2]), 1.0);
    let n = ndcg_at_k(&[9, 1, 2], &[1, 2]);
    let want = (1.0 / 3f64.log2() + 0.5) / (1.0 + 1.0 / 3f64.log2());
    assert!((n - want).abs() < 1e-12);
    assert_eq!(ndcg_at_k(&[], &[1]), 0.0);
    let m = mean_ndcg_at_k(&[vec![9, 1, 2], vec![]], &[vec![1, 2], vec![5]]).unwrap();
    assert!((m.mean - want / 2.0).abs() < 1e-12);
    assert_eq!(mean_recall_at_k(&[vec![1]], &[vec![]]), None);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn auc_proptest_brute_force(
        pairs in prop::collection::vec((0u8..6, prop::bool::ANY), 0..120)
    ) {
        let s: Vec<f32> = pairs.iter().map(|p| p.0 as f32 * 0.25).collect();
        let y: Vec<f32> = pairs.iter().map(|p| p.1 as u8 as f32).collect();
        let (a, b) = (auc(&s, &y), brute_auc(&s, &y, None));
        match (a, b) {
            (Some(a), Some(b)) => prop_assert!((a - b).abs() < 1e-12),
            (a, b) => prop_assert_eq!(a, b),
        }
        // Swapping the classes and negating the scores leaves AUC unchanged.
        let s_neg: Vec<f32> = s.iter().map(|x| -x).collect();
        let y_flip: Vec<f32> = y.iter().map(|x| 1.0 - x).collect();
        prop_assert_eq!(auc(&s_neg, &y_flip), a);
    }
}
