// Included as it is by the `engine` client (src/bin/engine, no std there) and by the crate
// (`cli::shared`): what both must agree on.

/// Where the supervisor listens unless --socket or $ENGINE_SOCKET says otherwise.
pub const DEFAULT_SOCKET: &str = "/run/engine/engine.sock";

/// The verbs `engine-front` runs itself (their clap commands are `cli::VERBS`); the client hands
/// these to it and any other command line to `engine-core`.
pub const FRONT_VERBS: &[&str] = &[
    "start", "run", "exec", "attach", "top", "stop", "ps", "logs", "inspect", "port", "rm", "wait", "stats", "events",
];

/// The verbs whose command line the client sends to the supervisor as it is (`Request::Cli`),
/// with no parsing of its own; the supervisor answers for the forms it takes and hands the rest
/// back (see `cli::thin`).
pub const SENT_VERBS: &[&str] = &["run", "start"];

/// The two binaries beside `engine` (`engine-front`, `engine-core`).
pub const FRONT: &str = "engine-front";
pub const CORE: &str = "engine-core";
