mod device_harness;
fn main() -> std::process::ExitCode {
    device_harness::run(vec![])
}
