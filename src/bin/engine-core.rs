//! `engine-core`: the whole engine (the supervisor, the image store, every verb), run by the
//! `engine` front for what it does not do itself. Re-exec'd as `engine-init`, the same binary is
//! a container's PID 1 (see container::init).
fn main() {
    let argv0 = std::env::args_os().next().unwrap_or_default();
    if argv0 == engine::container::spawn::INIT_ARGV0 {
        std::process::exit(engine::container::init::main());
    }
    if argv0 == engine::container::exec::HELPER_ARGV0 {
        std::process::exit(engine::container::exec::helper_main());
    }
    std::process::exit(engine::cli::main());
}
