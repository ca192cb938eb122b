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
