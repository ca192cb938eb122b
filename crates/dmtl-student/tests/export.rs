//! Export round trip: vectors and ids written for numpy/Faiss read back exactly, with
//! ndarray-npy for the vectors and byte-for-byte numpy's unicode format for the ids.

use dmtl_student::export::{
    export, ids_npy_bytes, load_vectors, read_ids_npy, Vectors, ITEM_IDS, ITEM_VECTORS, USER_IDS,
    USER_VECTORS,
};
use dmtl_student::synthetic::{random_dataset, schema_and_vocabs, tiny_fields};
use dmtl_student::{Student, StudentConfig};
use ndarray::Array2;
use ndarray_npy::read_npy;

fn model() -> (
    Student,
    dmtl_data::Dataset,
    dmtl_data::Vocabularies,
    dmtl_data::Schema,
) {
    let fields = tiny_fields();
    let (schema, vocabs) = schema_and_vocabs(&fields, 4);
    let cfg = StudentConfig {
        user_layers: vec![8, 6],
        item_layers: vec![8, 6],
        ..Default::default()
    };
    let student = Student::new(cfg, &schema, &vocabs).unwrap();
    (student, random_dataset(&fields, 500, 3), vocabs, schema)
}

#[test]
fn vectors_and_ids_round_trip_through_npy() {
    let (student, data, vocabs, schema) = model();
    let users = Vectors::users(&student, &data).unwrap();
    let items = Vectors::items(&student, &data).unwrap();
    assert_eq!(users.ids, data.user_ids);
    assert_eq!(users.vectors.dim(), (data.user_ids.len(), 6));
    let dir = tempfile::tempdir().unwrap();
    export(dir.path(), &student, &vocabs, &users, &items).unwrap();

    // Read with ndarray-npy directly, as any other Rust program would.
    let u: Array2<f32> = read_npy(dir.path().join(USER_VECTORS)).unwrap();
    let v: Array2<f32> = read_npy(dir.path().join(ITEM_VECTORS)).unwrap();
    assert_eq!(u, users.vectors);
    assert_eq!(v, items.vectors);
    // Each exported row is the model's own vector for that id: recompute from the first row.
    let first = data.first_row_per_user();
    let again = student.user_vectors(&data, &first[3..4]).unwrap();
    assert_eq!(u.row(3), again.row(0));
    assert_eq!(
        read_ids_npy(&dir.path().join(USER_IDS)).unwrap(),
        data.user_ids
    );
    assert_eq!(
        read_ids_npy(&dir.path().join(ITEM_IDS)).unwrap(),
        data.item_ids
    );

    let (lu, li) = load_vectors(dir.path()).unwrap();
    assert_eq!(lu, users);
    assert_eq!(li, items);

    // The saved model and vocabularies rebuild a student with identical scores.
    let vocabs2 = dmtl_data::Vocabularies::load(dir.path().join("vocab.json")).unwrap();
    let back = Student::load(dir.path(), &schema, &vocabs2).unwrap();
    assert_eq!(
        back.score_dataset(&data).unwrap(),
        student.score_dataset(&data).unwrap()
    );
    // No temporary file is left behind.
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// The exact bytes numpy writes for `np.array(["a", "bcd"])` with `np.save` (version 1.0,
/// header padded to 64 bytes): little-endian UTF-32, entries padded with NULs to 3 characters.
#[test]
fn id_files_match_numpys_own_bytes() {
    let bytes = ids_npy_bytes(&["a".to_string(), "bcd".to_string()]);
    let header = "{'descr': '<U3', 'fortran_order': False, 'shape': (2,), }";
    assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00");
    let hlen = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    assert_eq!((10 + hlen) % 64, 0);
    let h = std::str::from_utf8(&bytes[10..10 + hlen]).unwrap();
    assert!(h.starts_with(header) && h.ends_with('\n'), "{h:?}");
    assert!(h[header.len()..h.len() - 1].bytes().all(|b| b == b' '));
    let data = &bytes[10 + hlen..];
    let expect: Vec<u8> = ['a', '\0', '\0', 'b', 'c', 'd']
        .iter()
        .flat_map(|&c| (c as u32).to_le_bytes())
        .collect();
    assert_eq!(data, &expect[..]);
}

#[test]
fn odd_ids_survive_and_bad_files_name_themselves() {
    let dir = tempfile::tempdir().unwrap();
    let ids: Vec<String> = vec![
        "".into(),
        "ünïcødé 🙂".into(),
        "a,b'c\"".into(),
        "x\ny".into(),
    ];
    let p = dir.path().join("ids.npy");
    std::fs::write(&p, ids_npy_bytes(&ids)).unwrap();
    assert_eq!(read_ids_npy(&p).unwrap(), ids);
    let empty: Vec<String> = Vec::new();
    std::fs::write(&p, ids_npy_bytes(&empty)).unwrap();
    assert_eq!(read_ids_npy(&p).unwrap(), empty);

    let bytes = ids_npy_bytes(&ids);
    std::fs::write(&p, &bytes[..bytes.len() - 3]).unwrap();
    let err = read_ids_npy(&p).unwrap_err().to_string();
    assert!(
        err.contains("ids.npy") && err.contains("data bytes"),
        "{err}"
    );
    assert!(load_vectors(&dir.path().join("missing"))
        .unwrap_err()
        .to_string()
        .contains(USER_VECTORS));
}

#[test]
fn mismatched_ids_and_rows_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let users = Vectors {
        ids: vec!["u".into()],
        vectors: Array2::zeros((2, 3)),
    };
    let items = Vectors {
        ids: vec!["i".into()],
        vectors: Array2::zeros((1, 3)),
    };
    let err = dmtl_student::export::write_vectors(dir.path(), &users, &items).unwrap_err();
    assert!(err.to_string().contains("1 ids for 2 vectors"), "{err}");
}
