//! The dmtl side of the reference workload (BENCHMARKS.md), timed in clean windows exactly as
//! its PyTorch twin `benches/anchors/torch_reference.py` times itself, so that `cargo xtask
//! bench` can run the two alternately and compare like with like.
//!
//! `cargo run --release -p dmtl-benches --bin reference -- --task TASK [--threads 2]
//!  [--windows 7] [--window_s 1.5] [--max_s 60] [--warmup_s 3] [--wait_quiet_s 300] [--bf16]`
//!
//! Tasks, with the same names as the twin's: `teacher_train` (one MMoE+ESMM training step of
//! 1,024 impressions with Adam), `student_train` (one distillation step), `teacher_infer`
//! (scoring 16 batches of 1,024 in parallel), `user_tower_infer` (user vectors of 1,024
//! impressions). `--bf16`: the training steps' dense products in bf16 with f32 accumulation
//! (`precision = "bf16"`), the user tower's MLP in bf16; f32 with a line saying so on a CPU
//! without AVX-512 BF16. Prints one JSON line with the twin's keys.

#[path = "../../../crates/dmtl-teacher/benches/reference/mod.rs"]
mod reference;

use dmtl_benches::windows::{json_line, measure, WindowOptions};
use dmtl_data::Batch;
use dmtl_student::step::loss_and_grads_in;
use dmtl_student::synthetic::{random_dataset, reference_fields, schema_and_vocabs};
use dmtl_student::{Precision, Student, StudentConfig};
use dmtl_teacher::{Teacher, TeacherConfig};
use dmtl_tensor::optim::{Adam, Optimizer};
use dmtl_tensor::Precision as TrainPrecision;
use rand::{Rng, SeedableRng};

const B: usize = 1024;
/// Batches built beforehand and cycled, as the twin's `--n_batches` default.
const N_BATCHES: usize = 64;

fn value<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    let i = args.iter().position(|a| a == name)?;
    match args.get(i + 1) {
        Some(v) => Some(v),
        None => fail(&format!("{name} needs a value")),
    }
}

fn number<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> T {
    match value(args, name) {
        None => default,
        Some(v) => v
            .parse()
            .unwrap_or_else(|_| fail(&format!("{name}: `{v}` is not a number"))),
    }
}

fn fail(msg: &str) -> ! {
    eprintln!("error: {msg}");
    std::process::exit(2)
}

fn teacher_batches(precision: TrainPrecision) -> (Teacher, Vec<Batch>) {
    let (schema, vocabs) = reference::reference_schema();
    let data = reference::random_dataset(N_BATCHES * B, 1);
    let batches = data.batches(B, None, true).collect();
    let mut config = TeacherConfig::default();
    config.train.precision = precision;
    let teacher = Teacher::new(config, &schema, &vocabs).expect("teacher");
    (teacher, batches)
}

fn student_batches() -> (Student, Vec<(Batch, Vec<f32>)>) {
    let fields = reference_fields();
    let (schema, vocabs) = schema_and_vocabs(&fields, 16);
    let student = Student::new(StudentConfig::default(), &schema, &vocabs).expect("student");
    let data = random_dataset(&fields, B * N_BATCHES, 42);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(43);
    let batches = (0..N_BATCHES)
        .map(|b| {
            let rows: Vec<u32> = ((b * B) as u32..((b + 1) * B) as u32).collect();
            let soft: Vec<f32> = (0..B).map(|_| rng.gen_range(0.0f32..0.3)).collect();
            (data.batch(&rows), soft)
        })
        .collect();
    (student, batches)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let task = value(&args, "--task").unwrap_or_else(|| fail("--task is required"));
    let d = WindowOptions::default();
    let opts = WindowOptions {
        windows: number(&args, "--windows", d.windows),
        window_s: number(&args, "--window_s", d.window_s),
        max_s: number(&args, "--max_s", d.max_s),
        warmup_s: number(&args, "--warmup_s", d.warmup_s),
        wait_quiet_s: number(&args, "--wait_quiet_s", d.wait_quiet_s),
    };
    let bf16 = args.iter().any(|a| a == "--bf16");
    let threads = dmtl_tensor::threads::init(
        value(&args, "--threads").map(|_| number(&args, "--threads", 0)),
    );
    let train_precision = if bf16 {
        TrainPrecision::Bf16
    } else {
        TrainPrecision::F32
    };
    if task.ends_with("_train") {
        if let Some(notice) = train_precision.fallback_notice(&task[..task.len() - 6]) {
            eprintln!("{notice}");
        }
    }
    let mut i = 0usize;
    let mut next = || {
        i += 1;
        (i - 1) % N_BATCHES
    };
    let w = match task {
        "teacher_train" => {
            let (mut teacher, batches) = teacher_batches(train_precision);
            let mut adam = Adam::new(1e-3);
            measure(B as f64, &opts, || {
                teacher.train_step(&mut adam, &batches[next()], None);
            })
        }
        "teacher_infer" => {
            let (teacher, _) = teacher_batches(TrainPrecision::F32);
            let log = reference::random_dataset(16 * B, 2);
            measure(log.n_rows as f64, &opts, || {
                teacher.predict(&log).expect("fits");
            })
        }
        "student_train" => {
            let (mut student, batches) = student_batches();
            let mut adam = Adam::new(1e-3);
            let objective = student.config().objective.build();
            measure(B as f64, &opts, || {
                let (batch, soft) = &batches[next()];
                let (_, grads) = loss_and_grads_in(
                    student.store(),
                    train_precision,
                    student.towers(),
                    objective.as_ref(),
                    batch,
                    Some(soft),
                    1.0,
                );
                adam.step(student.store_mut(), &grads);
            })
        }
        "user_tower_infer" if bf16 => {
            let (student, batches) = student_batches();
            let encoder = student.user_encoder(Precision::Bf16).expect("packs");
            measure(B as f64, &opts, || {
                encoder
                    .user_vectors_batch(&batches[next()].0)
                    .expect("fits");
            })
        }
        "user_tower_infer" => {
            let (student, batches) = student_batches();
            measure(B as f64, &opts, || {
                student
                    .user_vectors_batch(&batches[next()].0)
                    .expect("fits");
            })
        }
        other => fail(&format!(
            "unknown task `{other}` (teacher_train, student_train, teacher_infer, user_tower_infer)"
        )),
    };
    println!(
        "{}",
        json_line(task, threads, &w, &format!("\"bf16\": {bf16}"))
    );
}
