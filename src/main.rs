//! `engine-front`, the command line's front (see cli::front): the verbs that only talk to the
//! supervisor run here; everything else is handed to `engine-core`. The `engine` client execs it.
fn main() {
    std::process::exit(engine::cli::front::main());
}
