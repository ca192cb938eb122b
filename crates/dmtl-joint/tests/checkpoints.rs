//! A teacher's checkpoint where a student's should be, and the reverse: errors naming the
//! file and the tensor or key (both models, so here, above both crates).

use std::path::Path;

use dmtl_data::{Schema, Vocabularies};
use dmtl_student::synthetic::{schema_and_vocabs, tiny_fields};
use dmtl_student::{Student, StudentConfig};
use dmtl_teacher::{Teacher, TeacherConfig};

/// An untrained student's configuration: towers `user` and `[16, 8]`.
fn config(user: Vec<usize>) -> StudentConfig {
    StudentConfig {
        user_layers: user,
        item_layers: vec![16, 8],
        ..Default::default()
    }
}

fn saved_student(dir: &Path, cfg: StudentConfig) -> (Schema, Vocabularies) {
    let (schema, vocabs) = schema_and_vocabs(&tiny_fields(), 4);
    Student::new(cfg, &schema, &vocabs)
        .unwrap()
        .save(dir)
        .unwrap();
    (schema, vocabs)
}

#[test]
fn another_models_checkpoint_names_the_file_and_a_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let (s_dir, t_dir) = (dir.path().join("student"), dir.path().join("teacher"));
    let (schema, vocabs) = saved_student(&s_dir, config(vec![16, 8]));
    Teacher::new(TeacherConfig::default(), &schema, &vocabs)
        .unwrap()
        .save(&t_dir)
        .unwrap();

    // A student's weights where the teacher's should be.
    std::fs::copy(
        s_dir.join("student.safetensors"),
        t_dir.join("teacher.safetensors"),
    )
    .unwrap();
    let err = Teacher::load(&t_dir, &schema, &vocabs)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("teacher.safetensors") && err.contains("`teacher.") && err.contains("missing"),
        "{err}"
    );

    // A teacher's weights where the student's should be.
    let t_weights = dir.path().join("t.safetensors");
    Teacher::new(TeacherConfig::default(), &schema, &vocabs)
        .unwrap()
        .store()
        .save(&t_weights)
        .unwrap();
    std::fs::copy(&t_weights, s_dir.join("student.safetensors")).unwrap();
    let err = Student::load(&s_dir, &schema, &vocabs)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("student.safetensors") && err.contains("missing"),
        "{err}"
    );

    // A student's configuration read as a teacher's: the unknown key and the file are named.
    std::fs::copy(s_dir.join("student.toml"), t_dir.join("teacher.toml")).unwrap();
    let err = Teacher::load(&t_dir, &schema, &vocabs)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("teacher.toml") && err.contains("user_layers"),
        "{err}"
    );
}
