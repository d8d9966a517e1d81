//! A failed request: the sentence for the user and the exit code for the CLI.
use crate::container::exit;

#[derive(Debug)]
pub struct Failure {
    pub message: String,
    pub exit_code: i32,
    /// The image reference a start named that the store lacks: the client may pull it and ask
    /// again (Docker's pull on `run`), so it travels as its own response.
    pub missing_image: Option<String>,
}

impl Failure {
    pub fn engine(message: impl std::fmt::Display) -> Failure {
        Failure::with_code(exit::ENGINE_ERROR, message)
    }

    pub fn with_code(exit_code: i32, message: impl std::fmt::Display) -> Failure {
        Failure { message: message.to_string(), exit_code, missing_image: None }
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
        Failure::with_code(e.exit_code(), e)
    }
}
