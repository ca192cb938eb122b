//! Parameter files: safetensors round trip and clear errors for files that do not fit.

use dmtl_tensor::{Init, ParamKind, ParamStore};
use ndarray::array;
use rand::SeedableRng;

fn model() -> ParamStore {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let mut s = ParamStore::new();
    s.weight(
        "teacher.expert.0.layer.0.weight",
        4,
        3,
        Init::XavierUniform,
        &mut rng,
    );
    s.bias("teacher.expert.0.layer.0.bias", 4);
    s.embedding(
        "teacher.embedding.user_id",
        10,
        2,
        Init::Normal(0.1),
        &mut rng,
    );
    s
}

#[test]
fn save_load_round_trip_is_exact() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    let mut a = model();
    a.value_mut(a.id("teacher.expert.0.layer.0.bias").unwrap())
        .assign(&array![[1.0f32, -2.0, 3.5, 0.25]]);
    a.save(&path).unwrap();
    let mut b = ParamStore::new();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(77);
    b.weight(
        "teacher.expert.0.layer.0.weight",
        4,
        3,
        Init::HeNormal,
        &mut rng,
    );
    b.bias("teacher.expert.0.layer.0.bias", 4);
    b.embedding(
        "teacher.embedding.user_id",
        10,
        2,
        Init::Normal(1.0),
        &mut rng,
    );
    b.load(&path).unwrap();
    for ((_, pa), (_, pb)) in a.iter().zip(b.iter()) {
        assert_eq!(pa.value, pb.value, "{}", pa.name);
    }
    // Biases are stored 1-d, as PyTorch's nn.Linear expects.
    let bytes = std::fs::read(&path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    assert_eq!(
        st.tensor("teacher.expert.0.layer.0.bias").unwrap().shape(),
        &[4]
    );
    assert_eq!(
        st.tensor("teacher.expert.0.layer.0.weight")
            .unwrap()
            .shape(),
        &[4, 3]
    );
}

#[test]
fn truncated_file_is_refused_and_nothing_changes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    let a = model();
    a.save(&path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let mut b = model();
    let before: Vec<_> = b.iter().map(|(_, p)| p.value.clone()).collect();
    let err = b.load(&path).unwrap_err().to_string();
    assert!(
        err.contains("m.safetensors") && err.contains("not a valid safetensors"),
        "{err}"
    );
    assert!(b.iter().zip(before).all(|((_, p), v)| p.value == v));
}

#[test]
fn other_model_and_wrong_shape_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.safetensors");
    let mut other = ParamStore::new();
    other.add(
        "student.user_tower.layer.0.weight",
        array![[1.0f32]],
        ParamKind::Dense,
    );
    other.save(&path).unwrap();
    let err = model().load(&path).unwrap_err().to_string();
    assert!(
        err.contains("teacher.expert.0.layer.0.weight") && err.contains("missing"),
        "{err}"
    );

    let mut wrong = ParamStore::new();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    wrong.weight(
        "teacher.expert.0.layer.0.weight",
        4,
        5,
        Init::Zeros,
        &mut rng,
    );
    wrong.bias("teacher.expert.0.layer.0.bias", 4);
    wrong.embedding("teacher.embedding.user_id", 10, 2, Init::Zeros, &mut rng);
    wrong.save(&path).unwrap();
    let err = model().load(&path).unwrap_err().to_string();
    assert!(
        err.contains("shape [4, 5]") && err.contains("[4, 3]"),
        "{err}"
    );
}

#[test]
fn duplicate_names_are_refused() {
    let mut s = ParamStore::new();
    s.bias("b", 2);
    let err = s
        .try_add("b", array![[0.0f32]], ParamKind::Dense, false)
        .unwrap_err();
    assert!(err.to_string().contains("`b` is already registered"));
}

#[test]
fn merge_equals_adding_each_gradient_in_turn() {
    use dmtl_tensor::{Grad, Grads, ParamId, SparseGrad};
    use ndarray::Array2;
    // Dense + dense, sparse + sparse (shared and new rows), sparse into dense, dense onto
    // sparse, and parameters only one side has.
    let dense = |seed: usize| {
        Array2::from_shape_fn((300, 130), |(r, c)| {
            ((r * 31 + c * 7 + seed) % 17) as f32 * 0.1 - 0.8
        })
    };
    let sparse_of = |rows: Vec<u32>, width: usize, seed: usize| SparseGrad {
        values: Array2::from_shape_fn((rows.len(), width), |(r, c)| {
            (r * 3 + c + seed) as f32 * 0.25
        }),
        rows,
    };
    let sparse = |rows: Vec<u32>, seed: usize| sparse_of(rows, 4, seed);
    let mut a = Grads::new(7);
    a.accumulate_dense(ParamId(0), dense(1));
    a.accumulate_sparse(ParamId(1), sparse(vec![2, 9, 40], 1));
    a.accumulate_dense(ParamId(2), dense(2));
    a.accumulate_sparse(ParamId(3), sparse(vec![1, 3], 2));
    a.accumulate_dense(ParamId(4), dense(3));
    let mut b = Grads::new(7);
    b.accumulate_dense(ParamId(0), dense(4));
    b.accumulate_sparse(ParamId(1), sparse(vec![9, 1, 40, 77], 3));
    b.accumulate_sparse(ParamId(2), sparse_of(vec![0, 299], 130, 4));
    b.accumulate_dense(ParamId(3), Array2::from_elem((8, 4), 0.5));
    b.accumulate_sparse(ParamId(5), sparse(vec![5], 5));
    let mut one_by_one = a.clone();
    for (id, g) in b.iter() {
        match g {
            Grad::Dense(d) => one_by_one.accumulate_dense(id, d.clone()),
            Grad::Sparse(s) => one_by_one.accumulate_sparse(id, s.clone()),
        }
    }
    a.merge(b);
    let bits = |g: &Grads| -> Vec<(usize, bool, Vec<u32>, Vec<u32>)> {
        g.iter()
            .map(|(id, g)| match g {
                Grad::Dense(d) => (id.0, true, vec![], d.iter().map(|x| x.to_bits()).collect()),
                Grad::Sparse(s) => (
                    id.0,
                    false,
                    s.rows.clone(),
                    s.values.iter().map(|x| x.to_bits()).collect(),
                ),
            })
            .collect()
    };
    assert_eq!(bits(&a), bits(&one_by_one));
    assert_eq!(a.iter().count(), 6);
}

#[test]
fn first_non_finite_names_the_lowest_id_among_several() {
    use dmtl_tensor::{Grads, ParamId};
    use ndarray::Array2;
    let mut g = Grads::new(40);
    for i in 0..40 {
        let mut d = Array2::from_elem((50, 70), 0.25f32);
        match i {
            17 => d[[49, 69]] = f32::NAN,
            23 => d[[0, 0]] = f32::INFINITY,
            31 => d[[10, 3]] = f32::NEG_INFINITY,
            _ => {}
        }
        g.accumulate_dense(ParamId(i), d);
    }
    assert_eq!(g.first_non_finite(), Some(ParamId(17)));
    let mut ok = Grads::new(2);
    ok.accumulate_dense(ParamId(1), Array2::from_elem((3, 65), f32::MAX));
    assert_eq!(ok.first_non_finite(), None);
}
