//! A failed request: the sentence for the user and the exit code for the CLI.
use crate::container::exit;

#[derive(Debug)]
pub struct Failure {
    pub message: String,
    pub exit_code: i32,
}

impl Failure {
    pub fn engine(message: impl std::fmt::Display) -> Failure {
        Failure { message: message.to_string(), exit_code: exit::ENGINE_ERROR }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

impl From<super::registry::RegistryError> for Failure {
    fn from(e: super::registry::RegistryError) -> Failure {
        Failure::engine(e)
    }
}

impl From<crate::container::CoreError> for Failure {
    fn from(e: crate::container::CoreError) -> Failure {
        Failure { exit_code: e.exit_code(), message: e.to_string() }
    }
}
