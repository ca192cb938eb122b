//! The one-process collective, gathered parts, rank shares and the parameter hash.

mod common;

use common::{store, Hub};
use dmtl_dist::{check_same_params, param_hash, Collective, DistError, Gathered, Local, Shares};
use dmtl_tensor::{Init, ParamKind, ParamStore};
use ndarray::array;

#[test]
fn gathered_parts_follow_the_counts() {
    let g = Gathered::from_parts(vec![vec![1u32, 2], vec![], vec![3]]);
    assert_eq!(g.counts, vec![2, 0, 1]);
    assert_eq!(g.part(0), &[1, 2]);
    assert!(g.part(1).is_empty());
    assert_eq!(g.part(2), &[3]);
    assert_eq!(g.parts().collect::<Vec<_>>(), vec![&[1, 2][..], &[], &[3]]);
}

#[test]
fn local_is_one_rank_and_leaves_data_as_it_is() {
    let mut buf = vec![1.5f32, -2.0];
    Local.all_reduce_sum(&mut buf).unwrap();
    assert_eq!(buf, vec![1.5, -2.0]);
    let g = Local.all_gather_u32(&[4, 5]).unwrap();
    assert_eq!((g.values, g.counts), (vec![4, 5], vec![2]));
    let mut bytes = b"keep".to_vec();
    Local.broadcast_bytes(&mut bytes).unwrap();
    assert_eq!(bytes, b"keep");
    assert_eq!((Local.rank(), Local.size()), (0, 1));
}

#[test]
fn thread_ranks_broadcast_rank_0s_bytes() {
    let got = Hub::run(3, |c| {
        let mut b = vec![c.rank() as u8; c.rank() + 1];
        c.broadcast_bytes(&mut b).unwrap();
        b
    });
    assert_eq!(got, vec![vec![0u8]; 3]);
}

#[test]
fn shares_weigh_ranks_by_their_rows() {
    let s = Shares::from_counts(vec![3.0, 1.0]);
    assert_eq!((s.weight(0), s.weight(1), s.total()), (0.75, 0.25, 4.0));
    let none = Shares::from_counts(vec![0.0, 0.0, 0.0, 0.0]);
    assert_eq!(none.weight(2), 0.25);
    let gathered = Hub::run(3, |c| {
        Shares::gather(c, (c.rank() + 1) as f64 * 0.1).unwrap()
    });
    for s in &gathered {
        assert_eq!(s, &Shares::from_counts(vec![0.1, 0.2, 0.30000000000000004]));
    }
    assert_eq!(Shares::gather(&Local, 17.0).unwrap().weight(0), 1.0);
}

#[test]
fn the_hash_changes_with_any_bit_and_not_with_registration_order() {
    let a = store();
    let h = param_hash(&a);
    assert_eq!(param_hash(&a.clone()), h);
    let mut flipped = a.clone();
    let id = flipped.id("emb.item").unwrap();
    let x = flipped.value_mut(id)[[24, 1]];
    flipped.value_mut(id)[[24, 1]] = f32::from_bits(x.to_bits() ^ 1);
    assert_ne!(param_hash(&flipped), h);
    // The same parameters registered in another order.
    let mut reordered = ParamStore::new();
    let mut params: Vec<_> = a.iter().map(|(_, p)| p.clone()).collect();
    params.reverse();
    for p in params {
        reordered
            .try_add(&p.name, p.value, p.kind, p.saved_1d)
            .unwrap();
    }
    assert_eq!(param_hash(&reordered), h);
    // Same values under another name, or another shape.
    let mut one = ParamStore::new();
    one.add("x", array![[1.0f32, 2.0]], ParamKind::Dense);
    let mut renamed = ParamStore::new();
    renamed.add("y", array![[1.0f32, 2.0]], ParamKind::Dense);
    let mut reshaped = ParamStore::new();
    reshaped.add("x", array![[1.0f32], [2.0]], ParamKind::Dense);
    assert_ne!(param_hash(&one), param_hash(&renamed));
    assert_ne!(param_hash(&one), param_hash(&reshaped));
}

#[test]
fn every_rank_names_the_first_rank_whose_parameters_differ() {
    let a = store();
    assert_eq!(check_same_params(&Local, &a).unwrap(), param_hash(&a));
    let same = Hub::run(3, |c| check_same_params(c, &a).unwrap());
    assert_eq!(same, vec![param_hash(&a); 3]);
    let results = Hub::run(4, |c| {
        let mut mine = a.clone();
        if c.rank() >= 2 {
            let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(1);
            mine = ParamStore::new();
            mine.weight("other", 2, 2, Init::XavierUniform, &mut rng);
        }
        check_same_params(c, &mine).unwrap_err()
    });
    for (rank, e) in results.iter().enumerate() {
        match e {
            DistError::ParamsDiffer {
                rank: r,
                first,
                expected,
                ..
            } => {
                assert_eq!((*r, *first, *expected), (rank, 2, param_hash(&a)));
                assert_eq!(e.rank(), Some(rank));
                assert!(e.to_string().starts_with(&format!("rank {rank}: ")), "{e}");
            }
            other => panic!("{other}"),
        }
    }
}
