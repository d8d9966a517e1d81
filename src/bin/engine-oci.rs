//! `engine-oci`: engine as an OCI runtime, speaking runc's command line (see `engine::oci`).
//! Re-exec'd as `engine-init` through /proc/self/exe, the same binary is a container's init: that
//! dispatch comes first, before any argument parsing.
fn main() {
    let argv0 = std::env::args_os().next().unwrap_or_default();
    if argv0 == engine::container::spawn::INIT_ARGV0 {
        std::process::exit(engine::container::init::main());
    }
    // engine-oci never starts a thread: its clones may run the container's init without exec.
    engine::container::spawn::allow_init_without_exec();
    std::process::exit(engine::oci::main());
}
