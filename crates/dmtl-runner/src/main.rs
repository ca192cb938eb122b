//! The `dmtl` command line (placeholder until the pipeline lands).
fn main() {
    dmtl_tensor::threads::init(None);
    eprintln!("dmtl: the pipeline is not assembled yet");
    std::process::exit(1);
}
