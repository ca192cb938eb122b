//! Encoding, labels, groups, batches, shuffling and the train/test split.

mod common;

use common::*;
use dmtl_data::*;

fn encoded(n: usize, seed: u64) -> (Schema, RawLog, Dataset) {
    let s = schema();
    let raw = log(n, seed);
    let v = Vocabularies::build(&s, &raw).unwrap();
    let d = Dataset::encode(&s, &raw, &v).unwrap();
    (s, raw, d)
}

#[test]
fn labels_and_long_read() {
    let (s, raw, d) = encoded(500, 1);
    let (c, dur) = (raw.click.unwrap(), raw.duration.unwrap());
    assert_eq!(d.click, c);
    for r in 0..500 {
        let want = c[r] == 1.0 && dur[r] > s.long_read_threshold;
        assert_eq!(d.long_read[r] == 1.0, want, "row {r}");
    }
    // Exactly at the threshold is not a long read (strictly greater).
    let mut edge = log(2, 1);
    edge.click = Some(vec![1.0, 1.0]);
    edge.duration = Some(vec![30.0, 30.1]);
    let v = Vocabularies::build(&s, &edge).unwrap();
    assert_eq!(
        Dataset::encode(&s, &edge, &v).unwrap().long_read,
        vec![0.0, 1.0]
    );
}

#[test]
fn groups_match_raw_ids() {
    let (_, raw, d) = encoded(800, 2);
    let Some(RawColumn::Categorical(users)) = raw.column("user_id") else {
        panic!()
    };
    for (user, &g) in users.iter().zip(&d.user_group) {
        assert_eq!(&d.user_ids[g as usize], user);
    }
    let distinct: std::collections::HashSet<_> = users.iter().collect();
    assert_eq!(d.user_ids.len(), distinct.len());
    let first = d.first_row_per_user();
    assert_eq!(first.len(), d.user_ids.len());
    for (g, &r) in first.iter().enumerate() {
        assert_eq!(d.user_group[r as usize] as usize, g);
        assert!(
            d.user_group[..r as usize].iter().all(|&x| x as usize != g),
            "first occurrence"
        );
    }
    let Some(RawColumn::Categorical(items)) = raw.column("item_id") else {
        panic!()
    };
    for (g, &r) in d.first_row_per_item().iter().enumerate() {
        assert_eq!(&items[r as usize], &d.item_ids[g]);
    }
}

#[test]
fn batch_gathers_exactly_the_requested_rows() {
    let (_, _, d) = encoded(300, 3);
    let rows = [17u32, 0, 299, 17, 42];
    let b = d.batch(&rows);
    assert_eq!(b.n_rows, 5);
    for (f_all, f_b) in d.fields.iter().zip(&b.fields) {
        match (f_all, f_b) {
            (FieldData::Ids(a), FieldData::Ids(x)) => {
                assert_eq!(x, &rows.iter().map(|&r| a[r as usize]).collect::<Vec<_>>())
            }
            (FieldData::Dense(a), FieldData::Dense(x)) => {
                assert_eq!(x, &rows.iter().map(|&r| a[r as usize]).collect::<Vec<_>>())
            }
            (
                FieldData::Bag { ids, offsets },
                FieldData::Bag {
                    ids: bi,
                    offsets: bo,
                },
            ) => {
                assert_eq!(bo.len(), 6);
                for (k, &r) in rows.iter().enumerate() {
                    let want = &ids[offsets[r as usize] as usize..offsets[r as usize + 1] as usize];
                    assert_eq!(&bi[bo[k] as usize..bo[k + 1] as usize], want);
                }
            }
            _ => panic!("field kinds differ"),
        }
    }
    assert_eq!(
        b.click,
        rows.iter()
            .map(|&r| d.click[r as usize])
            .collect::<Vec<_>>()
    );
    assert_eq!(
        b.long_read,
        rows.iter()
            .map(|&r| d.long_read[r as usize])
            .collect::<Vec<_>>()
    );
    assert_eq!(
        b.user_group,
        rows.iter()
            .map(|&r| d.user_group[r as usize])
            .collect::<Vec<_>>()
    );
    assert_eq!(
        b.item_group,
        rows.iter()
            .map(|&r| d.item_group[r as usize])
            .collect::<Vec<_>>()
    );
}

#[test]
fn shuffling_is_deterministic_per_seed_and_epoch_and_covers_every_row_once() {
    let (_, _, d) = encoded(1000, 4);
    let order = |seed, epoch| -> Vec<u32> {
        d.batches(64, Some((seed, epoch)), false)
            .flat_map(|b| b.rows)
            .collect()
    };
    let a = order(7, 0);
    assert_eq!(a, order(7, 0), "same seed and epoch, same order");
    assert_ne!(a, order(7, 1), "another epoch, another order");
    assert_ne!(a, order(8, 0), "another seed, another order");
    assert_ne!(a, (0..1000).collect::<Vec<u32>>(), "shuffled");
    for o in [a, order(7, 1)] {
        let mut sorted = o.clone();
        sorted.sort_unstable();
        assert_eq!(
            sorted,
            (0..1000).collect::<Vec<u32>>(),
            "every row exactly once"
        );
    }
    let plain: Vec<u32> = d.batches(64, None, false).flat_map(|b| b.rows).collect();
    assert_eq!(plain, (0..1000).collect::<Vec<u32>>());
    // 1000 = 15 * 64 + 40.
    let sizes: Vec<usize> = d
        .batches(64, Some((1, 1)), false)
        .map(|b| b.n_rows)
        .collect();
    assert_eq!(sizes.len(), 16);
    assert_eq!(sizes[15], 40);
    let dropped: Vec<usize> = d
        .batches(64, Some((1, 1)), true)
        .map(|b| b.n_rows)
        .collect();
    assert_eq!(dropped, vec![64; 15]);
}

#[test]
fn time_split() {
    let s = schema();
    let raw = log(1000, 5);
    let (train, test) = split_train_test(&raw, &s, 0).unwrap();
    let t = raw.time.as_ref().unwrap();
    assert!(train.time.as_ref().unwrap().iter().all(|&d| d < 3));
    assert!(test.time.as_ref().unwrap().iter().all(|&d| d >= 3));
    assert_eq!(test.n_rows, t.iter().filter(|&&d| d >= 3).count());
    assert_eq!(train.n_rows + test.n_rows, 1000);
    // Row order is kept: the train part is the raw rows with day < 3, in order.
    let keep: Vec<usize> = (0..1000).filter(|&r| t[r] < 3).collect();
    assert_eq!(train, raw.take(&keep));

    let mut late = s.clone();
    late.split.as_mut().unwrap().test_from = Some(99);
    let e = split_train_test(&raw, &late, 0).unwrap_err().to_string();
    assert!(
        e.contains("split `split.test_from`: no row has day >= 99, the test set would be empty (`day` ranges over 0..=4)"),
        "{e}"
    );
    let mut no_time = raw.clone();
    no_time.time = None;
    let e = split_train_test(&no_time, &s, 0).unwrap_err().to_string();
    assert!(
        e.contains("split `split.time_column`: the log has no time column `day`"),
        "{e}"
    );
}

#[test]
fn fraction_split() {
    let mut s = schema();
    s.split = Some(SplitSpec {
        time_column: None,
        test_from: None,
        test_fraction: Some(0.25),
    });
    s.validate("edited").unwrap();
    let raw = log(1000, 6);
    let (train, test) = split_train_test(&raw, &s, 42).unwrap();
    assert_eq!((train.n_rows, test.n_rows), (750, 250));
    let (train2, test2) = split_train_test(&raw, &s, 42).unwrap();
    assert_eq!((&train, &test), (&train2, &test2), "same seed, same split");
    let (_, test3) = split_train_test(&raw, &s, 43).unwrap();
    assert_ne!(test, test3, "another seed, another split");
    // Together the parts hold every row once: compare multisets of (user, item, price) rows.
    let key = |l: &RawLog| -> Vec<(String, String, u32)> {
        let Some(RawColumn::Categorical(u)) = l.column("user_id") else {
            panic!()
        };
        let Some(RawColumn::Categorical(i)) = l.column("item_id") else {
            panic!()
        };
        let Some(RawColumn::Dense(p)) = l.column("price") else {
            panic!()
        };
        (0..l.n_rows)
            .map(|r| (u[r].to_string(), i[r].to_string(), p[r].to_bits()))
            .collect()
    };
    let mut all = key(&train);
    all.extend(key(&test));
    all.sort();
    let mut want = key(&raw);
    want.sort();
    assert_eq!(all, want);

    let tiny = log(3, 1);
    s.split.as_mut().unwrap().test_fraction = Some(0.1);
    let e = split_train_test(&tiny, &s, 0).unwrap_err().to_string();
    assert!(e.contains("split `split.test_fraction`: 0.1 of 3 rows rounds to 0 test rows, the test set would be empty"), "{e}");
}

#[test]
fn encode_refuses_a_column_of_the_wrong_kind() {
    let s = schema();
    let raw = log(10, 1);
    let v = Vocabularies::build(&s, &raw).unwrap();
    let mut bad = raw.clone();
    bad.columns[6].1 = RawColumn::Categorical(vec!["x"; 10].into());
    let e = Dataset::encode(&s, &bad, &v).unwrap_err().to_string();
    assert!(
        e.contains("column `price` is categorical but the schema says dense"),
        "{e}"
    );
    let mut short = raw;
    short.columns[0].1 = RawColumn::Categorical(vec!["x"; 9].into());
    let e = Dataset::encode(&s, &short, &v).unwrap_err().to_string();
    assert!(
        e.contains("column `user_id` has 9 rows, the log has 10"),
        "{e}"
    );
}

#[test]
fn a_batch_slice_is_the_batch_of_those_rows() {
    let (_, _, d) = encoded(300, 4);
    let rows: Vec<u32> = (0..100u32).map(|i| (i * 7) % 300).collect();
    let b = d.batch(&rows);
    for range in [0..40, 40..100, 0..100, 55..55] {
        let part = b.slice_rows(range.clone());
        assert_eq!(part, d.batch(&rows[range.clone()]));
        assert_eq!(*b.part(range), part);
    }
    assert!(matches!(b.part(0..100), std::borrow::Cow::Borrowed(_)));
}
